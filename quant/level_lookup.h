// Branch-free twins of stochastic_round and rounding_variance (quant/rounding.h) for small level
// tables: the interval index j is found by counting the interior levels <= r instead of by binary
// search. The result is identical (same j, same comparison), but there is no data-dependent
// branch to mispredict: with values spread over the levels (L-infinity norms) the binary search
// costs about ten times more. Tables of more than kSmallTable levels use the binary search.
#pragma once
#include <cstdint>

#include "quant/rounding.h"

namespace qnn {

constexpr int kSmallTable = 32;

// j with levels[j] <= r < levels[j+1] for levels[0] < r < levels[count-1] (sorted levels).
QNN_HOST_DEVICE int counted_interval(const float* levels, int count, float r) {
  int j = 0;
  for (int k = 1; k < count - 1; ++k) j += levels[k] <= r;
  return j;
}

// Same value as stochastic_round(levels, count, r, u).
QNN_HOST_DEVICE int round_to_level(const float* levels, int count, float r, float u) {
  if (count > kSmallTable) return stochastic_round(levels, count, r, u);
  if (count == 1 || r <= levels[0]) return 0;
  if (r >= levels[count - 1]) return count - 1;
  const int j = counted_interval(levels, count, r);
  const float low = levels[j], high = levels[j + 1];
  if (high <= low) return j;
  return (u * (high - low) < r - low) ? j + 1 : j;
}

// Same value as rounding_variance(levels, count, r).
QNN_HOST_DEVICE double level_variance(const float* levels, int count, float r) {
  if (count > kSmallTable) return rounding_variance(levels, count, r);
  if (count == 1 || r <= levels[0] || r >= levels[count - 1]) return 0.0;
  const int j = counted_interval(levels, count, r);
  return (double(r) - levels[j]) * (double(levels[j + 1]) - r);
}

// index[k] = round_to_level(levels, count, x[k] / denom, u[k]) for k < len: the same divisions
// and comparisons, sixteen values at a time in AVX-512 registers for tables of up to 32 levels
// (quant/level_set_quantizer.cpp; host code).
void round_run_to_levels(const float* levels, int count, const float* x, float denom, const float* u, int64_t len,
                         uint32_t* index);

}  // namespace qnn
