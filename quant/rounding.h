// Unbiased stochastic rounding between adjacent levels, and the variance it adds.
//
// With sorted levels l_0 <= ... <= l_m and r in [l_j, l_{j+1}]:
//   Q(r) = l_{j+1} with probability (r - l_j) / (l_{j+1} - l_j), else l_j,
// so E[Q(r)] = r and Var[Q(r)] = (r - l_j)(l_{j+1} - r) (zero when r is on a level).
// Values outside [l_0, l_m] are clamped to the nearest end (the schemes choose their levels
// so that this does not happen, except where the reference code is deliberately biased).
// The uniform draw for coordinate i at training step t comes from the counter-based generator
// keyed by (seed, quant_stream(t), i): the same on every thread, machine and device.
#pragma once
#include <cstdint>

#include "tensor/random.h"

namespace qnn {

// The random stream of quantization at training step `step` (tag "QNT" in the high bits keeps
// it apart from initialisation, shuffling and augmentation).
QNN_HOST_DEVICE uint64_t quant_stream(uint64_t step) { return (0x514E54ull << 40) ^ step; }

// Index j with levels[j] <= r <= levels[j+1] (binary search; clamped to [0, count-2]).
QNN_HOST_DEVICE int interval_index(const float* levels, int count, float r) {
  int lo = 0, hi = count - 2;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (levels[mid] <= r) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// The index of the level r rounds to, given a uniform draw u in [0, 1).
QNN_HOST_DEVICE int stochastic_round(const float* levels, int count, float r, float u) {
  if (count == 1) return 0;
  if (r <= levels[0]) return 0;
  if (r >= levels[count - 1]) return count - 1;
  const int j = interval_index(levels, count, r);
  const float low = levels[j], high = levels[j + 1];
  if (high <= low) return j;
  return (u * (high - low) < r - low) ? j + 1 : j;
}

// The variance stochastic rounding adds to r: (r - l)(u - r) for its interval, 0 outside.
QNN_HOST_DEVICE double rounding_variance(const float* levels, int count, float r) {
  if (count == 1 || r <= levels[0] || r >= levels[count - 1]) return 0.0;
  const int j = interval_index(levels, count, r);
  return (double(r) - levels[j]) * (double(levels[j + 1]) - r);
}

}  // namespace qnn
