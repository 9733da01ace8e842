// `hadamard` (IST-DASLab/smart-quantizer, quantization.py). For each bucket a of
// length d, with n = 2^ceil(log2 d):
//
//   y = H (D a)          a zero-padded to n, D = diag of Rademacher signs, H = H_n/sqrt(n)
//   z = standard(y)      min-max grid of `levels` points, stochastic rounding (quant/standard.h)
//   out = (D H z)[0..d)  H is its own inverse
//
// Unbiased: out is a linear map of z and E z = y. Randomness, all at the bucket's own flat
// indices i = bucket start + j, j < d, from random_words(seed, quant_stream(step), i):
//   word 1's top bit is the sign D_j (the decoder regenerates it from payload.seed/step);
//   word 0 is the rounding draw of rotated coordinate j, and word 2 that of rotated coordinate
//   d + j when d + j < n (n - d < d, so every padded position gets a draw of its own).
// The payload holds all n rotated indices per bucket (the padding is sent: extra_indices). A
// bucket pads to the power of two of the coordinates it holds, min(bucket_size, what is left),
// so a partial last bucket (or a bucket_size beyond the vector) pads to its own length; the
// buffers are sized by that length, never by bucket_size.
//
// Variance. Rounding adds independent zero-mean noise e_j with Var e_j = (y_j - l)(r - y_j) in
// the rotated domain, and out - a = (D H e)[0..d). Every entry of D H has magnitude 1/sqrt(n), so
//   E||out - a||^2 = sum_{i<d} sum_j (DH)_{ij}^2 Var e_j = (d/n) sum_j Var e_j.
// Without padding (d = n: every full bucket when bucket_size is a power of two) DH is orthogonal
// and this is exactly the standard quantizer's variance in the rotated domain: a rotation
// preserves lengths, so the added variance is the same in input units. With padding, the
// inverse transform spreads part of the noise onto the discarded padded coordinates: the factor
// d/n accounts for it.
//
// Non-finite input: a NaN or an infinity in a bucket (or a rotation that overflows float) makes
// the rotated bucket non-finite, so its grid is the NaN grid of quant/standard.h; its variance is
// NaN and it decodes to NaN throughout. The inverse rotation of a finite rounded bucket can
// itself overflow for values near the largest float: such a bucket decodes to NaN as well.
#include "quant/hadamard.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "quant/bucket_loop.h"
#include "quant/bucket_math.h"
#include "quant/bucketing.h"
#include "quant/rounding.h"
#include "quant/standard.h"
#include "quant/walsh_hadamard.h"
#include "tensor/random_block.h"

namespace qnn {

namespace {

inline float sign_of(uint32_t word1) { return (word1 >> 31) ? -1.0f : 1.0f; }  // D_j from word 1

// Philox words are drawn for kDrawChunk coordinates at a time (tensor/random_block.h), into
// buffers on the stack.
constexpr int64_t kDrawChunk = 256;

// y = H D a (zero-padded to n), and, when u is given, the rounding draws of the n rotated
// coordinates: u[j] is word 0 of coordinate j's draw and u[d + j] word 2 (j < n - d, which is
// below d).
void rotate(const float* a, int64_t d, int64_t n, uint64_t seed, uint64_t stream, int64_t flat_begin, float* y,
            float* u) {
  uint32_t w0[kDrawChunk], w1[kDrawChunk], w2[kDrawChunk];
  for (int64_t c = 0; c < d; c += kDrawChunk) {
    const int64_t len = std::min(kDrawChunk, d - c), padded_draws = std::clamp(n - d - c, int64_t(0), len);
    random_word_columns(seed, stream, uint64_t(flat_begin + c), len, u ? w0 : nullptr, w1,
                        u && padded_draws > 0 ? w2 : nullptr, nullptr);
    for (int64_t j = 0; j < len; ++j) y[c + j] = sign_of(w1[j]) * a[c + j];
    if (!u) continue;
    for (int64_t j = 0; j < len; ++j) u[c + j] = uniform_from_word(w0[j]);
    for (int64_t j = 0; j < padded_draws; ++j) u[d + c + j] = uniform_from_word(w2[j]);
  }
  for (int64_t j = d; j < n; ++j) y[j] = 0.0f;
  walsh_hadamard(y, n);
}

// Where bucket b's rotated indices start in the packed stream: every full bucket sends
// next_power_of_two(bucket_size) of them. (Bucket 0 starts at 0 whatever the bucket size; a
// later bucket exists only when bucket_size is below the vector's length.)
int64_t rotated_begin(int64_t b, int64_t bucket_size) { return b == 0 ? 0 : b * next_power_of_two(bucket_size); }

// The padded length of the longest of `count` buckets over `quantized` coordinates: the size of a
// bucket's work buffers. Sized by the data, not by bucket_size: a bucket of 2^32 coordinates
// over 4 values holds 4 and pads to 4. (1 when there is no bucket.)
int64_t longest_padded(int64_t bucket_size, int64_t quantized) {
  return quantized == 0 ? 1 : next_power_of_two(std::min(bucket_size, quantized));
}

}  // namespace

HadamardQuantizer::HadamardQuantizer(QuantizerOptions options) : GradientQuantizer(std::move(options)) {
  QNN_CHECK(options_.levels >= 2, "hadamard needs levels >= 2, got ", options_.levels);
  check_bucket_size(options_.bucket_size);
  QNN_CHECK(options_.levels <= kMaxLevels, "levels must be <= ", kMaxLevels, ", got ", options_.levels);
}

Payload HadamardQuantizer::encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                        uint64_t step) const {
  return encode_slice_with_variance(x, n, first, seed, step, nullptr);
}

// The per-bucket variance uses variance_slice's expression on the same rotated bucket and grid,
// and is summed in bucket order as there, so both give the same double.
Payload HadamardQuantizer::encode_slice_with_variance(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step, double* variance) const {
  const int levels = options_.levels;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  Payload p = bucketed_payload(name(), x, n, first, buckets, index_bits_for(levels), 2, seed, step);
  const int64_t full_pad = longest_padded(buckets.size, buckets.quantized);
  int64_t total = 0;
  for (int64_t b = 0; b < buckets.count; ++b) total += next_power_of_two(buckets.length(b));
  p.extra_indices = total - buckets.quantized;
  std::vector<uint32_t> index(total);
  std::vector<double> per_bucket(variance ? buckets.count : 0);
  const uint64_t stream = quant_stream(step);
  const auto make_scratch = [&] {  // the grid's points, the rotated bucket and its draws
    return std::tuple(std::vector<float>(levels), std::vector<float>(full_pad), std::vector<float>(full_pad));
  };
  const bool threads = parallel_worthwhile(buckets.quantized);
  const auto quantize_bucket = [&, seed, stream, first, levels](int64_t b, auto& scratch) {
    auto& [table, y, u] = scratch;
    const int64_t begin = buckets.begin(b), d = buckets.length(b), padded = next_power_of_two(d);
    rotate(x + begin, d, padded, seed, stream, first + begin, y.data(), u.data());
    const UniformGrid grid = fit_uniform_grid(y.data(), padded, levels);
    uniform_grid_points(grid, levels, table.data());
    if (variance)
      per_bucket[b] = grid_variance(y.data(), padded, grid, table.data(), levels) * double(d) / double(padded);
    uint32_t* bucket_index = index.data() + rotated_begin(b, buckets.size);
    round_to_grid(y.data(), padded, grid, table.data(), levels, u.data(), bucket_index);
    p.scales[2 * b] = grid.fmin;
    p.scales[2 * b + 1] = grid.unit;
  };
  for_each_bucket_with_scratch(buckets.count, threads, make_scratch, quantize_bucket);
  pack_indices(index.data(), total, p.index_bits, p.indices);
  if (variance) {
    *variance = 0;
    for (double v : per_bucket) *variance += v;
  }
  return p;
}

void HadamardQuantizer::decode(const Payload& p, float* out) const {
  const Buckets buckets = check_payload(p, "hadamard", options_.bucket_size, 2);
  const int levels = options_.levels;
  const uint64_t stream = quant_stream(p.step);
  const int64_t full_pad = longest_padded(buckets.size, buckets.quantized);
  const auto make_scratch = [&] { return std::pair(std::vector<float>(levels), std::vector<float>(full_pad)); };
  const bool threads = parallel_worthwhile(buckets.quantized);
  for_each_bucket_with_scratch(buckets.count, threads, make_scratch, [&](int64_t b, auto& scratch) {
    auto& [table, z] = scratch;
    const int64_t begin = buckets.begin(b), d = buckets.length(b);
    const int64_t padded = next_power_of_two(d), at = rotated_begin(b, buckets.size);
    uniform_grid_points(UniformGrid{p.scales[2 * b], p.scales[2 * b + 1]}, levels, table.data());
    read_levels(p.indices.data(), at, padded, p.index_bits, table.data(), z.data());
    walsh_hadamard(z.data(), padded);
    if (!all_finite(z.data(), d)) {  // a NaN grid, or an inverse rotation beyond the float range
      std::fill(out + begin, out + begin + d, bucket_nan());
      return;
    }
    uint32_t w1[kDrawChunk];
    for (int64_t c = 0; c < d; c += kDrawChunk) {
      const int64_t len = std::min(kDrawChunk, d - c);
      random_word_columns(p.seed, stream, uint64_t(p.first_index + begin + c), len, nullptr, w1, nullptr, nullptr);
      for (int64_t j = 0; j < len; ++j) out[begin + c + j] = sign_of(w1[j]) * z[c + j] + 0.0f;  // + 0.0f: no -0
    }
  });
  std::copy(p.passthrough.begin(), p.passthrough.end(), out + buckets.quantized);
}

std::vector<std::vector<float>> HadamardQuantizer::bucket_levels_slice(const float* x, int64_t n, int64_t first,
                                                                       uint64_t seed, uint64_t step) const {
  const int levels = options_.levels;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  std::vector<std::vector<float>> out(buckets.count, std::vector<float>(levels));
  std::vector<float> y(longest_padded(buckets.size, buckets.quantized));
  for (int64_t b = 0; b < buckets.count; ++b) {
    const int64_t d = buckets.length(b), padded = next_power_of_two(d);
    rotate(x + buckets.begin(b), d, padded, seed, quant_stream(step), first + buckets.begin(b), y.data(), nullptr);
    uniform_grid_points(fit_uniform_grid(y.data(), padded, levels), levels, out[b].data());
  }
  return out;
}

double HadamardQuantizer::variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                         uint64_t step) const {
  const int levels = options_.levels;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  const int64_t full_pad = longest_padded(buckets.size, buckets.quantized);
  const auto make_scratch = [&] {  // the grid's points and the rotated bucket
    return std::pair(std::vector<float>(levels), std::vector<float>(full_pad));
  };
  const bool threads = parallel_worthwhile(buckets.quantized);
  return sum_over_buckets(buckets.count, threads, make_scratch, [&](int64_t b, auto& scratch) {
    auto& [table, y] = scratch;
    const int64_t d = buckets.length(b), padded = next_power_of_two(d);
    rotate(x + buckets.begin(b), d, padded, seed, quant_stream(step), first + buckets.begin(b), y.data(), nullptr);
    const UniformGrid grid = fit_uniform_grid(y.data(), padded, levels);
    uniform_grid_points(grid, levels, table.data());
    return grid_variance(y.data(), padded, grid, table.data(), levels) * double(d) / double(padded);
  });
}

std::unique_ptr<GradientQuantizer> make_hadamard_quantizer(const QuantizerOptions& options) {
  return std::make_unique<HadamardQuantizer>(options);
}

}  // namespace qnn
