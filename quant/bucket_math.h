// The float arithmetic of the bucketed quantizers that the CPU code and the CUDA kernels
// (quant/device_quantizer.cu) share, written once so that both sides run the same operations in
// the same order and agree bit for bit.
//
//   * Uniform grid (standard, hadamard): point j = fmin + j*unit is computed as ONE
//     fused multiply-add, fmaf(j, unit, fmin), on both sides. (g++ -O3 -march=native contracts
//     `fmin + j*unit` into an FMA on its own, nvcc does as well, a portable build would not:
//     spelling the FMA out makes every build agree.) The fit rounds unit up until
//     fmaf(levels - 1, unit, fmin) >= max.
//   * Sums of squares (L2 norms of exponential, qsgd, nuq, alq, amq): a fixed order that a GPU
//     warp reproduces: kNormLanes = 32 lanes, lane l adds x[l], x[l+32], x[l+64], ... in
//     increasing order (in double; a float's square is exact in double, so fused or not the
//     products agree), then the lanes fold as lane[l] += lane[l + w] for w = 16, 8, 4, 2, 1: the
//     order of a warp-shuffle reduction.
//   * ceil(log2 m) from the float's bits and the interval it selects (exponential).
//   * Non-finite buckets: the bit tests for a finite float and the one NaN (0x7FC00000) that a
//     bucket holding NaN or an infinity decodes to on both sides (quant/quantizer.h, "Non-finite
//     input"); float-to-int conversions clamp first, since converting NaN or a float beyond
//     int's range is undefined behaviour.
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/float_bits.h"
#include "tensor/random.h"

namespace qnn {

// Neither NaN nor an infinity (the exponent field is not all ones).
QNN_HOST_DEVICE bool is_finite_float(float x) { return (float_bits(x) & 0x7f800000u) != 0x7f800000u; }

// The NaN a non-finite bucket decodes to: the same bits on the CPU and the GPU.
QNN_HOST_DEVICE float bucket_nan() { return bits_float(0x7fc00000u); }

// int(v) (truncation) clamped to [0, top]: negatives and NaN give 0, values >= top give top, and
// no value reaches a conversion that is undefined (NaN, or outside int's range).
QNN_HOST_DEVICE int clamped_truncation(float v, int top) {
  if (!(v > 0.0f)) return 0;
  if (!(v < float(top))) return top;
  const int j = static_cast<int>(v);  // 0 <= v < top <= INT_MAX (float(top) <= 2^31)
  return j < top ? j : top;
}

// Grid point j of a uniform grid: fmin + j*unit with a single rounding.
QNN_HOST_DEVICE float grid_point(float fmin, float unit, int j) { return fmaf(float(j), unit, fmin); }

// The unit of the `levels`-point grid from lo to hi: (hi - lo)/(levels - 1), rounded up by ulps
// until the top point covers hi (the factor bounds the loop when lo dwarfs the range); 0 when
// the range is empty (a constant bucket).
QNN_HOST_DEVICE float fit_grid_unit(float lo, float hi, int levels) {
  if (!(hi > lo)) return 0.0f;
  const float steps = float(levels - 1);
  float unit = float((double(hi) - double(lo)) / (levels - 1));
  for (int tries = 0; fmaf(steps, unit, lo) < hi; ++tries)
    unit = tries < 8 ? nextafterf(unit, HUGE_VALF) : unit * (1.0f + 0x1p-12f);
  return unit;
}

// Whether every point of the grid fmin + j*unit, j < levels, is finite: its ends are.
QNN_HOST_DEVICE bool grid_is_finite(float fmin, float unit, int levels) {
  return is_finite_float(fmin) && is_finite_float(unit) && is_finite_float(grid_point(fmin, unit, levels - 1));
}

// j with table[j] <= a < table[j+1] (j = levels - 2 for the top point), from the division and a
// correction of float error; table nondecreasing, a within [table[0], table[levels-1]]. The
// quotient is clamped before it becomes an int: with denormal units or ranges near the float
// limit it can be NaN or huge (0 * inf, inf * tiny), and the correction loops then find j.
QNN_HOST_DEVICE int grid_interval(float a, float fmin, float inverse_unit, const float* table, int levels) {
  int j = clamped_truncation((a - fmin) * inverse_unit, levels - 2);
  while (j > 0 && table[j] > a) --j;
  while (j < levels - 2 && table[j + 1] <= a) ++j;
  return j;
}

constexpr int kNormLanes = 32;

// sum x_i^2 in double, in the lane order above.
inline double lane_sum_of_squares(const float* x, int64_t n) {
  double lane[kNormLanes] = {};
  int64_t base = 0;
  for (; base + kNormLanes <= n; base += kNormLanes)
    for (int l = 0; l < kNormLanes; ++l) lane[l] += double(x[base + l]) * double(x[base + l]);
  for (int l = 0; base + l < n; ++l) lane[l] += double(x[base + l]) * double(x[base + l]);
  for (int w = kNormLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  return lane[0];
}

// Whether every x[k] is finite (the host side's test of a bucket; the kernels OR it over a block).
inline bool all_finite(const float* x, int64_t n) {
  bool finite = true;
  for (int64_t k = 0; k < n; ++k) finite &= is_finite_float(x[k]);
  return finite;
}

// ceil(log2(m)) for m > 0, exactly (subnormals included).
QNN_HOST_DEVICE int ceil_log2(float m) {
  const uint32_t bits = float_bits(m);
  const int exponent = int((bits >> 23) & 0xff);
  if (exponent == 0) {  // subnormal
    int e;
    const float f = frexpf(m, &e);
    return f == 0.5f ? e - 1 : e;
  }
  return (bits & 0x7fffff) == 0 ? exponent - 127 : exponent - 126;
}

// Exponential levels t_j = 2^(min_pow - 1 + j), j < k: the interval [t_j, t_{j+1}] in which the
// normalized magnitude m is rounded (m clamped into it).
QNN_HOST_DEVICE int exponential_interval(float m, int min_pow, int k) {
  int e = m == 0.0f ? min_pow : ceil_log2(m);
  if (e < min_pow) e = min_pow;
  return e - min_pow < k - 2 ? e - min_pow : k - 2;
}

}  // namespace qnn
