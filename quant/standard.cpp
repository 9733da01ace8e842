// `standard` (IST-DASLab/smart-quantizer, quantization.py): for each bucket a,
//
//   fmin = min(a), fmax = max(a), unit = (fmax - fmin)/(levels - 1)
//   q_i  = fmin + v_i*unit,  v_i = floor((a_i - fmin)/unit + U_i)
//
// i.e. unbiased stochastic rounding between the two grid points around a_i; a constant bucket
// is returned as is. Here the interval is located on the float grid itself (not by the division
// alone) so that a value exactly on a grid point is returned unchanged, and the rounding up
// happens with probability (a - low)/(high - low), drawn from random_uniform(seed,
// quant_stream(step), flat index) as everywhere in quant/. A bucket holding NaN or an infinity
// (or whose grid overflows float) is sent as the NaN grid and decodes to NaN throughout.
#include "quant/standard.h"

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

bool UniformGrid::finite(int levels) const { return grid_is_finite(fmin, unit, levels); }  // quant/bucket_math.h

UniformGrid fit_uniform_grid(const float* a, int64_t n, int levels) {
  float lo = a[0], hi = a[0];
  for (int64_t k = 1; k < n; ++k) lo = std::min(lo, a[k]), hi = std::max(hi, a[k]);
  const UniformGrid grid{lo, fit_grid_unit(lo, hi, levels)};  // quant/bucket_math.h
  if (!all_finite(a, n) || !grid.finite(levels)) return UniformGrid{bucket_nan(), bucket_nan()};
  return grid;
}

void uniform_grid_points(const UniformGrid& grid, int levels, float* table) {
  if (!grid.finite(levels)) {
    std::fill(table, table + levels, bucket_nan());
    return;
  }
  for (int j = 0; j < levels; ++j) table[j] = grid_point(grid.fmin, grid.unit, j);
}

void round_to_grid(const float* a, int64_t n, const UniformGrid& grid, const float* table, int levels,
                   const float* u, uint32_t* index) {
  if (grid.unit == 0.0f || !grid.finite(levels)) {
    for (int64_t k = 0; k < n; ++k) index[k] = 0;
    return;
  }
  int64_t k = 0;
#if defined(__AVX512F__)
  // Sixteen values at a time where the grid fits a register. The grid is nondecreasing, so the
  // interval grid_interval's corrections settle on, from any start, is the number of inner
  // points at or below the value: counted by comparisons, then its ends looked up in the register.
  if (levels <= 16) {
    float points[16];
    for (int j = 0; j < 16; ++j) points[j] = table[j < levels ? j : levels - 1];
    const __m512 grid_points = _mm512_loadu_ps(points);
    const __m512i one = _mm512_set1_epi32(1);
    for (; k + 16 <= n; k += 16) {
      const __m512 v = _mm512_loadu_ps(a + k);
      __m512i j = _mm512_setzero_si512();
      for (int p = 1; p <= levels - 2; ++p)
        j = _mm512_mask_add_epi32(j, _mm512_cmp_ps_mask(_mm512_set1_ps(table[p]), v, _CMP_LE_OQ), j, one);
      const __m512 low = _mm512_permutexvar_ps(j, grid_points);
      const __m512 high = _mm512_permutexvar_ps(_mm512_add_epi32(j, one), grid_points);
      const __m512 scaled_draw = _mm512_mul_ps(_mm512_loadu_ps(u + k), _mm512_sub_ps(high, low));
      const __mmask16 up = _mm512_cmp_ps_mask(scaled_draw, _mm512_sub_ps(v, low), _CMP_LT_OQ);
      _mm512_storeu_si512(index + k, _mm512_mask_add_epi32(j, up, j, one));
    }
  }
#endif
  const float inverse_unit = 1.0f / grid.unit;
  for (; k < n; ++k) {
    const int j = grid_interval(a[k], grid.fmin, inverse_unit, table, levels);
    const float low = table[j], high = table[j + 1];
    index[k] = uint32_t(j) + (u[k] * (high - low) < a[k] - low ? 1u : 0u);
  }
}

double grid_variance(const float* a, int64_t n, const UniformGrid& grid, const float* table, int levels) {
  if (!grid.finite(levels)) return std::numeric_limits<double>::quiet_NaN();
  if (grid.unit == 0.0f) return 0.0;
  const float inverse_unit = 1.0f / grid.unit;
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int j = grid_interval(a[k], grid.fmin, inverse_unit, table, levels);
    sum += (double(a[k]) - table[j]) * (double(table[j + 1]) - a[k]);
  }
  return sum;
}

StandardQuantizer::StandardQuantizer(QuantizerOptions options) : GradientQuantizer(std::move(options)) {
  QNN_CHECK(options_.levels >= 2, "standard needs levels >= 2, got ", options_.levels);
  check_bucket_size(options_.bucket_size);
  QNN_CHECK(options_.levels <= kMaxLevels, "levels must be <= ", kMaxLevels, ", got ", options_.levels);
}

Payload StandardQuantizer::encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                        uint64_t step) const {
  const int levels = options_.levels;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  Payload p = bucketed_payload(name(), x, n, first, buckets, index_bits_for(levels), 2, seed, step);
  std::vector<uint32_t> index(buckets.quantized);
  const uint64_t stream = quant_stream(step);
  const auto make_scratch = [&] {  // the grid's points and the bucket's draws
    return std::pair(std::vector<float>(levels), std::vector<float>(std::min(buckets.size, buckets.quantized)));
  };
  const bool threads = parallel_worthwhile(buckets.quantized);
  const auto quantize_bucket = [&, seed, stream, first, levels](int64_t b, auto& scratch) {
    auto& [table, u] = scratch;
    const int64_t begin = buckets.begin(b), d = buckets.length(b);
    const UniformGrid grid = fit_uniform_grid(x + begin, d, levels);
    uniform_grid_points(grid, levels, table.data());
    random_uniforms(seed, stream, uint64_t(first + begin), d, u.data());
    round_to_grid(x + begin, d, grid, table.data(), levels, u.data(), index.data() + begin);
    p.scales[2 * b] = grid.fmin;
    p.scales[2 * b + 1] = grid.unit;
  };
  for_each_bucket_with_scratch(buckets.count, threads, make_scratch, quantize_bucket);
  pack_indices(index.data(), buckets.quantized, p.index_bits, p.indices);
  return p;
}

void StandardQuantizer::decode(const Payload& p, float* out) const {
  const Buckets buckets = check_payload(p, "standard", options_.bucket_size, 2);
  const int levels = options_.levels;
  const auto make_table = [levels] { return std::vector<float>(levels); };
  const bool threads = parallel_worthwhile(buckets.quantized);
  for_each_bucket_with_scratch(buckets.count, threads, make_table, [&](int64_t b, std::vector<float>& table) {
    const int64_t begin = buckets.begin(b), d = buckets.length(b);
    uniform_grid_points(UniformGrid{p.scales[2 * b], p.scales[2 * b + 1]}, levels, table.data());
    read_levels(p.indices.data(), begin, d, p.index_bits, table.data(), out + begin);
  });
  std::copy(p.passthrough.begin(), p.passthrough.end(), out + buckets.quantized);
}

std::vector<std::vector<float>> StandardQuantizer::bucket_levels_slice(const float* x, int64_t n, int64_t, uint64_t,
                                                                       uint64_t) const {
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  std::vector<std::vector<float>> out(buckets.count, std::vector<float>(options_.levels));
  for (int64_t b = 0; b < buckets.count; ++b)
    uniform_grid_points(fit_uniform_grid(x + buckets.begin(b), buckets.length(b), options_.levels),
                        options_.levels, out[b].data());
  return out;
}

double StandardQuantizer::variance_slice(const float* x, int64_t n, int64_t, uint64_t, uint64_t) const {
  const int levels = options_.levels;
  const Buckets buckets(n, options_.bucket_size, options_.quantize_tail);
  const auto make_table = [levels] { return std::vector<float>(levels); };
  return sum_over_buckets(buckets.count, parallel_worthwhile(buckets.quantized), make_table,
                          [&](int64_t b, std::vector<float>& table) {
                            const float* a = x + buckets.begin(b);
                            const UniformGrid grid = fit_uniform_grid(a, buckets.length(b), levels);
                            uniform_grid_points(grid, levels, table.data());
                            return grid_variance(a, buckets.length(b), grid, table.data(), levels);
                          });
}

std::unique_ptr<GradientQuantizer> make_standard_quantizer(const QuantizerOptions& options) {
  return std::make_unique<StandardQuantizer>(options);
}

}  // namespace qnn
