// LevelSetQuantizer (see quant/level_set_quantizer.h): per bucket s = ||x||_2 or ||x||_inf,
// r = x / (s + 1e-7), unbiased stochastic rounding of r over a level table in [-1, 1],
// out = s * level (learning-to-quantize `nuq/quantize.py`; variance as smart-quantizer's metric).
#include "quant/level_set_quantizer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "quant/bucket_loop.h"
#include "quant/bucket_math.h"
#include "quant/bucketing.h"
#include "quant/level_lookup.h"
#include "quant/level_sets.h"
#include "quant/pack_parallel.h"
#include "quant/rounding.h"
#include "tensor/avx512.h"
#include "tensor/check.h"
#include "tensor/random_block.h"

namespace qnn {

namespace {

constexpr float kNormEps = 1e-7f;  // the reference's EPS, added to the norm before dividing
constexpr int64_t kChunk = 256;  // coordinates drawn, rounded or read as one run

void check_levels(const std::vector<float>& levels) {
  QNN_CHECK(levels.size() >= 2 && levels.size() <= (size_t(1) << 16),
            "a level table needs 2..65536 levels, got ", levels.size());
  for (size_t i = 0; i < levels.size(); ++i) {
    QNN_CHECK(levels[i] >= -1.0f && levels[i] <= 1.0f, "levels must lie in [-1, 1]; level ", i,
              " is ", levels[i]);
    QNN_CHECK(i == 0 || levels[i - 1] < levels[i], "levels must be sorted strictly increasing; ",
              "level ", i - 1, " = ", levels[i - 1], " then ", levels[i]);
  }
}

}  // namespace

LevelSetQuantizer::LevelSetQuantizer(std::string name, LevelNorm norm, std::vector<float> levels,
                                     QuantizerOptions options)
    : GradientQuantizer(std::move(options)), name_(std::move(name)), norm_(norm) {
  check_bucket_size(options_.bucket_size);
  set_levels(std::move(levels));
}

void LevelSetQuantizer::set_levels(std::vector<float> levels) {
  check_levels(levels);
  levels_ = std::move(levels);
}

float LevelSetQuantizer::bucket_norm(const float* x, int64_t len) const {
  if (norm_ == LevelNorm::Linf) {
    float m = 0.0f;
    bool nan = false;
    for (int64_t i = 0; i < len; ++i) {
      const float a = std::fabs(x[i]);
      m = std::max(m, a);  // skips a NaN
      nan |= a != a;
    }
    return nan ? bucket_nan() : m;
  }
  // Squares summed in double in the fixed lane order the CUDA kernel reproduces
  // (quant/bucket_math.h).
  return static_cast<float>(std::sqrt(lane_sum_of_squares(x, len)));
}

void round_run_to_levels(const float* levels, int count, const float* x, float denom, const float* u, int64_t len,
                         uint32_t* index) {
  int64_t k = 0;
#if defined(__AVX512F__)
  if (count >= 2 && count <= 32) {
    float table[32];  // the levels in two registers, the last repeated
    for (int j = 0; j < 32; ++j) table[j] = levels[j < count ? j : count - 1];
    const __m512 low_half = _mm512_loadu_ps(table), high_half = _mm512_loadu_ps(table + 16);
    const __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(count - 1);
    const __m512 bottom_level = _mm512_set1_ps(levels[0]), top_level = _mm512_set1_ps(levels[count - 1]);
    for (; k + 16 <= len; k += 16) {
      const __m512 r = _mm512_div_ps(_mm512_loadu_ps(x + k), _mm512_set1_ps(denom));
      __m512i j = _mm512_setzero_si512();  // counted_interval: the interior levels <= r
      for (int p = 1; p < count - 1; ++p)
        j = _mm512_mask_add_epi32(j, _mm512_cmp_ps_mask(_mm512_set1_ps(levels[p]), r, _CMP_LE_OQ), j, one);
      const __m512 low = _mm512_permutex2var_ps(low_half, j, high_half);
      const __m512 high = _mm512_permutex2var_ps(low_half, _mm512_add_epi32(j, one), high_half);
      const __mmask16 up =
          _mm512_cmp_ps_mask(_mm512_mul_ps(_mm512_loadu_ps(u + k), _mm512_sub_ps(high, low)), _mm512_sub_ps(r, low),
                             _CMP_LT_OQ) &
          _mm512_cmp_ps_mask(high, low, _CMP_GT_OQ);  // an empty interval keeps j
      __m512i result = _mm512_mask_add_epi32(j, up, j, one);
      result = _mm512_mask_mov_epi32(result, _mm512_cmp_ps_mask(r, top_level, _CMP_GE_OQ), top);
      result = _mm512_mask_mov_epi32(result, _mm512_cmp_ps_mask(r, bottom_level, _CMP_LE_OQ), _mm512_setzero_si512());
      _mm512_storeu_si512(index + k, result);
    }
  }
#endif
  for (; k < len; ++k) index[k] = uint32_t(round_to_level(levels, count, x[k] / denom, u[k]));
}

Payload LevelSetQuantizer::encode_slice(const float* x, int64_t n, int64_t, uint64_t seed, uint64_t step) const {
  QNN_CHECK(n >= 0 && (x != nullptr || n == 0), "needs n >= 0 coordinates and data, got n = ", n);
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  const float* levels = levels_.data();
  const int count = static_cast<int>(levels_.size());
  const uint64_t stream = quant_stream(step);
  Payload p = bucketed_payload(name_, x, n, 0, buckets, index_bits_for(count), 1, seed, step);
  p.levels = levels_;
  std::vector<uint32_t> index(buckets.quantized);
  // count by value: the index stores (uint32) could alias it through a reference and reload it.
  for_each_bucket(buckets.count, parallel_worthwhile(buckets.quantized), [&, count](int64_t b) {
    const int64_t begin = buckets.begin(b), end = begin + buckets.length(b);
    const float s = bucket_norm(x + begin, end - begin);
    p.scales[b] = s;
    if (!is_finite_float(s)) {  // NaN or an infinity in the bucket: it decodes to NaN
      p.scales[b] = bucket_nan();
      std::fill(index.begin() + begin, index.begin() + end, 0u);
      return;
    }
    const float denom = s + kNormEps;
    // Draws first, in chunks, sixteen at a time (tensor/random_block.h).
    float u[kChunk];
    for (int64_t chunk = begin; chunk < end; chunk += kChunk) {
      const int64_t len = std::min(kChunk, end - chunk);
      random_uniforms(seed, stream, uint64_t(chunk), len, u);
      round_run_to_levels(levels, count, x + chunk, denom, u, len, index.data() + chunk);
    }
  });
  pack_indices_parallel(index.data(), buckets.quantized, p.index_bits, p.indices);
  return p;
}

void LevelSetQuantizer::decode(const Payload& p, float* out) const {
  const int64_t quantized = p.size - int64_t(p.passthrough.size());
  QNN_CHECK(p.bucket_size >= 1 && quantized >= 0, "malformed payload: bucket_size ",
            p.bucket_size, ", size ", p.size, ", ", p.passthrough.size(), " passthrough");
  const int64_t bucket = p.bucket_size, buckets = (quantized + bucket - 1) / bucket;
  QNN_CHECK(int64_t(p.scales.size()) == buckets, "payload has ", p.scales.size(),
            " scales for ", buckets, " quantized buckets");
  QNN_CHECK(p.levels.size() >= 1 && p.index_bits == index_bits_for(int64_t(p.levels.size())),
            "payload has ", p.levels.size(), " levels but ", p.index_bits, "-bit indices");
  QNN_CHECK(int64_t(p.indices.size()) * 64 >= quantized * p.index_bits, "payload has ",
            p.indices.size(), " index words for ", quantized, " indices of ", p.index_bits, " bits");
  const float* levels = p.levels.data();
  const uint32_t count = static_cast<uint32_t>(p.levels.size());
  std::atomic<bool> bad{false};
  for_each_bucket(buckets, parallel_worthwhile(quantized), [&](int64_t b) {
    const int64_t begin = b * bucket, end = std::min(begin + bucket, quantized);
    const float s = p.scales[b];
    if (!is_finite_float(s)) {
      std::fill(out + begin, out + end, bucket_nan());
      return;
    }
    uint32_t k[kChunk];
    for (int64_t chunk = begin; chunk < end; chunk += kChunk) {
      const int64_t len = std::min(kChunk, end - chunk);
      read_indices(p.indices.data(), chunk, len, p.index_bits, k);
      uint32_t widest = 0;
      for (int64_t i = 0; i < len; ++i) {
        widest = std::max(widest, k[i]);
        out[chunk + i] = s * levels[std::min(k[i], count - 1)];
      }
      if (widest >= count) bad.store(true, std::memory_order_relaxed);
    }
  });
  QNN_CHECK(!bad, "payload holds a level index beyond its ", count, " levels");
  std::copy(p.passthrough.begin(), p.passthrough.end(), out + quantized);
}

std::vector<std::vector<float>> LevelSetQuantizer::bucket_levels_slice(const float* x, int64_t n, int64_t,
                                                                       uint64_t, uint64_t) const {
  QNN_CHECK(n >= 0 && (x != nullptr || n == 0), "needs n >= 0 coordinates and data, got n = ", n);
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  std::vector<std::vector<float>> result(buckets.count + (buckets.quantized < n ? 1 : 0));
  for (int64_t b = 0; b < buckets.count; ++b) {
    const float s = bucket_norm(x + buckets.begin(b), buckets.length(b));
    if (!is_finite_float(s)) {
      result[b].assign(levels_.size(), bucket_nan());
      continue;
    }
    result[b].reserve(levels_.size());
    for (float l : levels_) result[b].push_back(s * l);
  }
  return result;
}

double LevelSetQuantizer::variance_slice(const float* x, int64_t n, int64_t, uint64_t, uint64_t) const {
  QNN_CHECK(n >= 0 && (x != nullptr || n == 0), "needs n >= 0 coordinates and data, got n = ", n);
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  const float* levels = levels_.data();
  const int count = static_cast<int>(levels_.size());
  const auto no_scratch = [] { return 0; };
  return sum_over_buckets(buckets.count, parallel_worthwhile(buckets.quantized), no_scratch, [&](int64_t b, int) {
    const int64_t begin = buckets.begin(b), end = begin + buckets.length(b);
    const float s = bucket_norm(x + begin, end - begin);
    if (!is_finite_float(s)) return std::numeric_limits<double>::quiet_NaN();
    const float denom = s + kNormEps;
    double v = 0.0;
    for (int64_t i = begin; i < end; ++i) v += level_variance(levels, count, x[i] / denom);
    return double(s) * double(s) * v;
  });
}

int level_set_bits(const QuantizerOptions& options, const std::string& scheme) {
  if (options.bits != 0) {
    QNN_CHECK(options.bits >= 1 && options.bits <= 16, scheme, ": bits must be 1..16 (2^bits ",
              "levels, sign included), got ", options.bits);
    return options.bits;
  }
  const int levels = options.levels;
  QNN_CHECK(levels >= 2 && (levels & (levels - 1)) == 0, scheme, ": with bits unset the level ",
            "count must be a power of two >= 2 (2^bits levels, sign included), got ", levels);
  int bits = 0;
  while ((1 << bits) < levels) ++bits;
  return bits;
}

namespace {
QuantizerOptions tail_passed_through(QuantizerOptions options) {
  options.quantize_tail = false;
  return options;
}
}  // namespace

std::unique_ptr<GradientQuantizer> make_qsgd_quantizer(const QuantizerOptions& options) {
  return std::make_unique<LevelSetQuantizer>("qsgd", LevelNorm::L2,
                                             uniform_levels(level_set_bits(options, "qsgd")),
                                             tail_passed_through(options));
}

std::unique_ptr<GradientQuantizer> make_qinf_quantizer(const QuantizerOptions& options) {
  return std::make_unique<LevelSetQuantizer>("qinf", LevelNorm::Linf,
                                             uniform_levels(level_set_bits(options, "qinf")),
                                             tail_passed_through(options));
}

std::unique_ptr<GradientQuantizer> make_nuq_quantizer(const QuantizerOptions& options) {
  return std::make_unique<LevelSetQuantizer>(
      "nuq", LevelNorm::L2,
      exponential_levels(level_set_bits(options, "nuq"), options.nuq_multiplier),
      tail_passed_through(options));
}

std::unique_ptr<GradientQuantizer> make_trn_quantizer(const QuantizerOptions& options) {
  QNN_CHECK(options.bits >= 0, "trn: bits must be >= 0 (it is ignored), got ", options.bits);
  return std::make_unique<LevelSetQuantizer>("trn", LevelNorm::Linf, ternary_levels(),
                                             tail_passed_through(options));
}

}  // namespace qnn
