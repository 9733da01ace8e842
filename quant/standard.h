// The `standard` gradient quantizer of smart-quantizer: a uniform grid of `levels` points from the
// bucket's min to its max, unbiased stochastic rounding to adjacent points (source
// IST-DASLab/smart-quantizer, quantization.py). No sign bit; the scale is (fmin, unit).
//
// Also the min-max grid pieces the Hadamard quantizer reuses on its rotated buckets.
#pragma once
#include <cstdint>
#include <memory>

#include "quant/quantizer.h"

namespace qnn {

// The grid fmin + j*unit, j = 0..levels-1. unit = (max - min)/(levels - 1), rounded up by ulps
// where needed so that the top point is >= max in float (no coordinate lies above the grid).
// A constant bucket has unit 0: every point is fmin. A bucket holding NaN or an infinity, or
// whose grid is not finite in float (a range beyond the largest float with 2 levels, a top
// point that rounds up to infinity), gets the NaN grid {NaN, NaN}: it decodes to NaN throughout
// (quant/quantizer.h, "Non-finite input").
struct UniformGrid {
  float fmin = 0, unit = 0;
  bool finite(int levels) const;  // false for the NaN grid (and any grid with a non-finite point)
};
UniformGrid fit_uniform_grid(const float* a, int64_t n, int levels);
// The grid's points, table[j] = fmin + j*unit: encoder, decoder and bucket_levels share it, so
// every decoded value is exactly one of these floats. A grid that is not finite gives NaN points.
void uniform_grid_points(const UniformGrid& grid, int levels, float* table);
// The level index of each a[k]: the interval [table[j], table[j+1]] holding it, then j + 1 when
// u[k]*(table[j+1] - table[j]) < a[k] - table[j] (quant/rounding.h's rule). 0 for every
// coordinate of a constant bucket or of a grid that is not finite.
void round_to_grid(const float* a, int64_t n, const UniformGrid& grid, const float* table, int levels,
                   const float* u, uint32_t* index);
// Sum over a[k] of (a - table[j])(table[j+1] - a): the variance the rounding adds (smart-quantizer's variance metric);
// NaN for a grid that is not finite.
double grid_variance(const float* a, int64_t n, const UniformGrid& grid, const float* table, int levels);

class StandardQuantizer : public GradientQuantizer {
 public:
  explicit StandardQuantizer(QuantizerOptions options);
  std::string name() const override { return "standard"; }
  std::optional<DeviceScheme> device_scheme() const override { return DeviceScheme{DeviceKernel::standard}; }

  void decode(const Payload& payload, float* out) const override;

  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step) const override;
  double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
};

std::unique_ptr<GradientQuantizer> make_standard_quantizer(const QuantizerOptions& options);

}  // namespace qnn
