// The arithmetic of the smart quantizer's level fit, written once for the CPU's level DP
// (quant/level_dp.{h,cpp}, whose vector scan quant/level_dp_scan.h evaluates the same two fused
// steps) and the CUDA kernel (quant/smart_device.cu), so that the GPU chooses the same levels bit
// for bit:
//   a_t   = double(v_t) - shift,  shift = 0.5 (v_0 + v_{c-1})      (no fused step)
//   S_t+1 = S_t + a_t;            SS_t+1 = fma(a_t, a_t, SS_t)
//   err(i, j) = fma(-(j-i+1) a_i, a_j, (a_i + a_j)(S_j+1 - S_i)) - (SS_j+1 - SS_i)
//   C_j = fma(j, a_j, -S_j);   X_M = fma(-(M+1), a_M, S_M+1);   Z_M = fma(a_M, S_M+1, -SS_M+1)
//   base_j = fma(-a_j, S_j, dp_j) + SS_j
//   v_j = fma(C_j, a_M, fma(a_j, X_M, base_j)),  first strict minimum;   dp_M = low + Z_M
// Both sides write every fused step as an explicit fma_rn and every other product or sum as
// mul_rn/add_rn/sub_rn (tensor/exact_math.h: intrinsics nvcc never contracts on the device,
// plain operators on the host whose results only feed an fma or a final subtraction), so
// neither depends on the compiler's contraction of a * b + c.
//
// Both build the divide-and-conquer nodes with build_nodes below, so each node scans exactly the
// same range on both, and the argmins agree.
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/exact_math.h"

namespace qnn::smart_fit {

constexpr int kMaxCandidates = 512;  // the device kernel's limit (shared-memory arrays)
constexpr int kMaxDepths = 16;       // depth_begin entries: log2(512) + 2 suffice

QNN_HOST_DEVICE double shift_of(const float* sorted, int64_t count) {
  return mul_rn(0.5, add_rn(double(sorted[0]), double(sorted[count - 1])));
}

// err(i, j) (quant/level_dp.h interval_cost, as compiled).
QNN_HOST_DEVICE double interval_cost(const double* a, const double* s, const double* ss, int64_t i, int64_t j) {
  const double ai = a[i], aj = a[j];
  const double p = mul_rn(-double(j - i + 1), ai);
  const double q = mul_rn(add_rn(ai, aj), sub_rn(s[j + 1], s[i]));
  return sub_rn(fma_rn(p, aj, q), sub_rn(ss[j + 1], ss[i]));
}

QNN_HOST_DEVICE double coefficient_c(const double* a, const double* s, int64_t j) { return fma_rn(double(j), a[j], -s[j]); }
QNN_HOST_DEVICE double coefficient_x(const double* a, const double* s, int64_t m) {
  return fma_rn(-double(m + 1), a[m], s[m + 1]);
}
QNN_HOST_DEVICE double coefficient_z(const double* a, const double* s, const double* ss, int64_t m) {
  return fma_rn(a[m], s[m + 1], -ss[m + 1]);
}
QNN_HOST_DEVICE double row_base(const double* a, const double* s, const double* ss, const double* dp, int64_t j) {
  return add_rn(fma_rn(-a[j], s[j], dp[j]), ss[j]);
}

// dp_M for row M over j in [first, last] and its smallest argmin (level_dp::scan_*).
QNN_HOST_DEVICE double scan(const double* a, const double* s, const double* ss, const double* base, int m,
                            int first, int last, int* best_j) {
  const double xm = coefficient_x(a, s, m), am = a[m];
  double low = HUGE_VAL;
  int best = first;
  for (int j = first; j <= last; ++j) {
    const double v = fma_rn(coefficient_c(a, s, j), am, fma_rn(a[j], xm, base[j]));
    if (v < low) low = v, best = j;
  }
  *best_j = best;
  return add_rn(low, coefficient_z(a, s, ss, m));
}

// The divide and conquer over rows [0, count) as nodes, breadth first: the node [lo, hi) solves
// row mid = lo + (hi - lo) / 2, then its halves [lo, mid) and [mid + 1, hi). Parents come before
// children, and the depth-first recursion
//   solve(lo, hi, opt_lo, opt_hi): mid; solve(lo, mid, opt_lo, arg[mid]);
//                                  solve(mid + 1, hi, arg[mid], opt_hi)
// hands node [lo, hi) the argmin range opt_lo = arg[lo - 1] (0 when lo = 0) and
// opt_hi = arg[hi] (count - 1 when hi = count): rows lo - 1 and hi are its ancestors' mids.
// With the row's argmins stored between two sentinels, bounds[0] = 0, bounds[1 + M] = arg[M],
// bounds[count + 1] = count - 1, node n solves row mid[n] over
// [bounds[left[n]], min(mid[n], bounds[right[n]])] (left = lo, right = hi + 1), with no test for
// either end. Depth k's nodes are [depth_begin[k], depth_begin[k+1]); returns the number of
// depths (at most log2(count) + 2). Each array holds `count` entries (the device kernel's
// count <= kMaxCandidates; depth_begin kMaxDepths there).
QNN_HOST_DEVICE int build_nodes(int count, int* left, int* right, int* mid, int* depth_begin) {
  left[0] = 0, right[0] = count;  // lo and hi while queueing
  int tail = 1;
  for (int head = 0; head < tail; ++head) {
    const int l = left[head], h = right[head], m = l + (h - l) / 2;
    mid[head] = m;
    if (l < m) left[tail] = l, right[tail] = m, ++tail;
    if (m + 1 < h) left[tail] = m + 1, right[tail] = h, ++tail;
  }
  int depths = 0, begin = 0, end = 1;
  depth_begin[0] = 0;
  while (begin < count) {
    int children = 0;
    for (int n = begin; n < end; ++n) children += (left[n] < mid[n]) + (mid[n] + 1 < right[n]);
    depth_begin[++depths] = end;
    begin = end, end += children;
  }
  for (int n = 0; n < count; ++n) right[n] += 1;
  return depths;
}

// Shifted candidates a_t = v_t - shift and their prefix sums s (s[0] = 0) and ss (of the squares),
// sequentially. The halving in shift_of is exact, so a_t is the same fused or not.
QNN_HOST_DEVICE void prefix_sums(const float* sorted, int64_t count, double* a, double* s, double* ss) {
  const double shift = shift_of(sorted, count);
  s[0] = ss[0] = 0.0;
  for (int64_t t = 0; t < count; ++t) {
    a[t] = sub_rn(double(sorted[t]), shift);
    s[t + 1] = add_rn(s[t], a[t]);
    ss[t + 1] = fma_rn(a[t], a[t], ss[t]);
  }
}

}  // namespace qnn::smart_fit
