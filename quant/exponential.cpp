// `exponential` (IST-DASLab/smart-quantizer, quantization.py). With k = levels/2, for
// each bucket a:
//
//   vnorm   = ||a||_2 (1e-11 if zero);  s_i = sign(a_i) (0 counts as +);  m_i = |a_i|/vnorm
//   g_i     = log2(m_i) (-32 if m_i = 0);  max_pow = trunc(max_i g_i);  min_pow = max_pow - k + 2
//   e_i     = trunc(clamp(g_i, min_pow, max_pow));  l = 2^(e_i - 1), r = 2^e_i
//   m_i     = clamp(m_i, l, r);  q_i = r with probability (m_i - l)/(r - l), else l
//   out_i   = s_i * q_i * vnorm
//
// Magnitude levels 2^(max_pow-k+1) .. 2^max_pow (k per sign, no zero level). g <= 0, so
// trunc(g) = ceil(g): here computed exactly from the float's exponent bits rather than by a
// float log2 (quant/bucket_math.h); ||a||_2 sums the squares in double in a fixed lane order.
// Pitfall kept on purpose (KAT E4): a coordinate below the smallest level is clamped UP to it
// and always returned as +-smallest level, so tiny coordinates are biased upwards; the rest is
// unbiased. The variance is the reference's: (m - l)(r - m) on the normalized, clamped
// coordinates (0 for the clamped ones), times vnorm^2.
//
// Non-finite input: a bucket holding NaN or an infinity has a norm that is not finite (so does a
// bucket whose norm exceeds the largest float); it is sent with norm NaN and exponent 0, its
// indices 0, its variance NaN, and it decodes to NaN throughout (quant/quantizer.h).
#include "quant/exponential.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "quant/bucket_loop.h"
#include "quant/bucket_math.h"
#include "quant/bucketing.h"
#include "quant/rounding.h"
#include "tensor/avx512.h"
#include "tensor/random_block.h"

namespace qnn {

namespace {

struct Bucket {
  float norm;
  int max_pow;
};

Bucket bucket_scale(const float* a, int64_t d) {
  float largest = 0;
  for (int64_t k = 0; k < d; ++k) largest = std::max(largest, std::fabs(a[k]));
  // The sum of squares in the fixed lane order the CUDA kernel reproduces (quant/bucket_math.h).
  float norm = float(std::sqrt(lane_sum_of_squares(a, d)));
  if (!is_finite_float(norm)) return Bucket{bucket_nan(), 0};  // NaN or an infinity in it, or overflow
  if (norm == 0.0f) norm = 1e-11f;
  const float m = largest / norm;
  // trunc(log2 m) with m <= 1 up to rounding: 0 when float rounding put m just above 1.
  return Bucket{norm, m == 0.0f ? -32 : std::min(ceil_log2(m), 0)};
}

// Magnitude levels T[j] = 2^(max_pow - k + 1 + j), j < k.
void magnitudes(int max_pow, int k, float* t) {
  for (int j = 0; j < k; ++j) t[j] = std::ldexp(1.0f, max_pow - k + 1 + j);
}

// The 2k signed output values in input units, sorted; index i is what the payload stores.
void signed_levels(const Bucket& bucket, int k, const float* t, float* out) {
  for (int i = 0; i < k; ++i) {
    out[k + i] = t[i] * bucket.norm;
    out[k - 1 - i] = -out[k + i];
  }
}

// The rounding loop of encode_slice over a[0, 16 floor(d / 16)) sixteen values at a time; returns
// how many it did (0 without AVX-512, or for more than 16 magnitude levels or levels reaching
// below float's normal range, where the loop does it all). The exponent is E - 126 from m's
// exponent field E, which is ceil_log2(m) except at an exact power of two m = 2^p, where it is
// p + 1: the interval above m instead of the one below. Both round m to itself (m is the low end
// of the one, never rounded up; the high end of the other, always rounded up, u being below 1),
// so the index is the loop's. A zero or subnormal m (E = 0) lies below every level, as there.
int64_t round_magnitudes_avx512(const float* a, int64_t d, float norm, int min_pow, int k, const float* t,
                                const float* u, uint32_t* index) {
#if defined(__AVX512F__)
  if (k > 16 || min_pow <= -126) return 0;
  float points[16];
  for (int j = 0; j < 16; ++j) points[j] = t[j < k ? j : k - 1];
  const __m512 levels = _mm512_loadu_ps(points);
  const __m512i one = _mm512_set1_epi32(1), lowest = _mm512_set1_epi32(min_pow);
  const __m512i widest = _mm512_set1_epi32(k - 2), middle = _mm512_set1_epi32(k);
  int64_t i = 0;
  for (; i + 16 <= d; i += 16) {
    const __m512 value = _mm512_loadu_ps(a + i);
    const __m512 m = _mm512_div_ps(_mm512_abs_ps(value), _mm512_set1_ps(norm));
    const __m512i e = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_castps_si512(m), 23), _mm512_set1_epi32(126));
    const __m512i j = _mm512_min_epi32(_mm512_sub_epi32(_mm512_max_epi32(e, lowest), lowest), widest);
    const __m512 low = _mm512_permutexvar_ps(j, levels), high = _mm512_permutexvar_ps(_mm512_add_epi32(j, one), levels);
    // clamped = min(max(m, low), high) as std::min and std::max choose.
    const __m512 raised = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(m, low, _CMP_LT_OQ), m, low);
    const __m512 clamped = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(high, raised, _CMP_LT_OQ), raised, high);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_loadu_ps(u + i), _mm512_sub_ps(high, low)),
                                            _mm512_sub_ps(clamped, low), _CMP_LT_OQ);
    const __m512i magnitude = _mm512_mask_add_epi32(j, up, j, one);
    const __mmask16 negative = _mm512_cmp_ps_mask(value, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512i code = _mm512_mask_sub_epi32(_mm512_add_epi32(middle, magnitude), negative,
                                               _mm512_sub_epi32(middle, one), magnitude);  // k - 1 - magnitude
    _mm512_storeu_si512(index + i, code);
  }
  return i;
#else
  (void)a, (void)d, (void)norm, (void)min_pow, (void)k, (void)t, (void)u, (void)index;
  return 0;
#endif
}

}  // namespace

ExponentialQuantizer::ExponentialQuantizer(QuantizerOptions options) : GradientQuantizer(std::move(options)) {
  QNN_CHECK(options_.levels >= 4 && options_.levels % 2 == 0,
            "exponential needs an even level count >= 4 (levels/2 powers of two per sign), got ", options_.levels);
  check_bucket_size(options_.bucket_size);
  QNN_CHECK(options_.levels <= kMaxLevels, "levels must be <= ", kMaxLevels, ", got ", options_.levels);
}

Payload ExponentialQuantizer::encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                           uint64_t step) const {
  const int k = options_.levels / 2;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  Payload p = bucketed_payload(name(), x, n, first, buckets, index_bits_for(2 * k), 2, seed, step);
  std::vector<uint32_t> index(buckets.quantized);
  const uint64_t stream = quant_stream(step);
  const auto make_scratch = [&] {  // the magnitudes and the bucket's draws
    return std::pair(std::vector<float>(k), std::vector<float>(std::min(buckets.size, buckets.quantized)));
  };
  const bool threads = parallel_worthwhile(buckets.quantized);
  const auto quantize_bucket = [&, seed, stream, first, k](int64_t b, auto& scratch) {
    auto& [t, u] = scratch;
    const int64_t begin = buckets.begin(b), d = buckets.length(b);
    const float* a = x + begin;
    const Bucket bucket = bucket_scale(a, d);
    p.scales[2 * b] = bucket.norm;
    p.scales[2 * b + 1] = float(bucket.max_pow);
    if (!is_finite_float(bucket.norm)) {
      std::fill(index.begin() + begin, index.begin() + begin + d, 0u);
      return;
    }
    const int min_pow = bucket.max_pow - k + 2;
    magnitudes(bucket.max_pow, k, t.data());
    random_uniforms(seed, stream, uint64_t(first + begin), d, u.data());
    const int64_t done = round_magnitudes_avx512(a, d, bucket.norm, min_pow, k, t.data(), u.data(), index.data() + begin);
    for (int64_t i = done; i < d; ++i) {
      const float m = std::fabs(a[i]) / bucket.norm;
      const int j = exponential_interval(m, min_pow, k);
      const float low = t[j], high = t[j + 1], clamped = std::min(std::max(m, low), high);
      const int magnitude = j + (u[i] * (high - low) < clamped - low ? 1 : 0);
      index[begin + i] = uint32_t(a[i] < 0.0f ? k - 1 - magnitude : k + magnitude);
    }
  };
  for_each_bucket_with_scratch(buckets.count, threads, make_scratch, quantize_bucket);
  pack_indices(index.data(), buckets.quantized, p.index_bits, p.indices);
  return p;
}

void ExponentialQuantizer::decode(const Payload& p, float* out) const {
  const Buckets buckets = check_payload(p, "exponential", options_.bucket_size, 2);
  const int k = options_.levels / 2;
  // The exponent becomes an int below: a whole number in range first (a float-to-int conversion
  // of anything else is undefined). Encoders write max_pow in [-32, 0]; 2^-160 is 0 in float.
  for (int64_t b = 0; b < buckets.count; ++b) {
    const float e = p.scales[2 * b + 1];
    QNN_CHECK(e >= -160.0f && e <= 0.0f && e == std::floor(e), "payload bucket ", b,
              " has exponent scale ", e, ", expected a whole number in [-160, 0]");
  }
  const auto make_scratch = [k] { return std::pair(std::vector<float>(k), std::vector<float>(2 * k)); };
  const bool threads = parallel_worthwhile(buckets.quantized);
  for_each_bucket_with_scratch(buckets.count, threads, make_scratch, [&](int64_t b, auto& scratch) {
    auto& [t, values] = scratch;
    const int64_t begin = buckets.begin(b), d = buckets.length(b);
    const Bucket bucket{p.scales[2 * b], int(p.scales[2 * b + 1])};
    if (!is_finite_float(bucket.norm)) {
      std::fill(out + begin, out + begin + d, bucket_nan());
      return;
    }
    magnitudes(bucket.max_pow, k, t.data());
    signed_levels(bucket, k, t.data(), values.data());
    read_levels(p.indices.data(), begin, d, p.index_bits, values.data(), out + begin);
  });
  std::copy(p.passthrough.begin(), p.passthrough.end(), out + buckets.quantized);
}

std::vector<std::vector<float>> ExponentialQuantizer::bucket_levels_slice(const float* x, int64_t n, int64_t,
                                                                          uint64_t, uint64_t) const {
  const int k = options_.levels / 2;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  std::vector<std::vector<float>> out(buckets.count, std::vector<float>(2 * k));
  std::vector<float> t(k);
  for (int64_t b = 0; b < buckets.count; ++b) {
    const Bucket bucket = bucket_scale(x + buckets.begin(b), buckets.length(b));
    if (!is_finite_float(bucket.norm)) {
      std::fill(out[b].begin(), out[b].end(), bucket_nan());
      continue;
    }
    magnitudes(bucket.max_pow, k, t.data());
    signed_levels(bucket, k, t.data(), out[b].data());
  }
  return out;
}

double ExponentialQuantizer::variance_slice(const float* x, int64_t n, int64_t, uint64_t, uint64_t) const {
  const int k = options_.levels / 2;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  const auto make_magnitudes = [k] { return std::vector<float>(k); };
  const bool threads = parallel_worthwhile(buckets.quantized);
  return sum_over_buckets(buckets.count, threads, make_magnitudes, [&](int64_t b, std::vector<float>& t) {
    const int64_t d = buckets.length(b);
    const float* a = x + buckets.begin(b);
    const Bucket bucket = bucket_scale(a, d);
    if (!is_finite_float(bucket.norm)) return std::numeric_limits<double>::quiet_NaN();
    const int min_pow = bucket.max_pow - k + 2;
    magnitudes(bucket.max_pow, k, t.data());
    double sum = 0;
    for (int64_t i = 0; i < d; ++i) {
      const float m = std::fabs(a[i]) / bucket.norm;
      const int j = exponential_interval(m, min_pow, k);
      const double clamped = std::min(std::max(m, t[j]), t[j + 1]);
      sum += (clamped - t[j]) * (double(t[j + 1]) - clamped);
    }
    return sum * double(bucket.norm) * double(bucket.norm);
  });
}

std::unique_ptr<GradientQuantizer> make_exponential_quantizer(const QuantizerOptions& options) {
  return std::make_unique<ExponentialQuantizer>(options);
}

}  // namespace qnn
