// The arithmetic of the smart quantizer's level fit (quant/level_dp.{h,cpp},
// quant/level_dp_scan.h) written once for the host and the CUDA kernel (quant/smart_device.cu),
// operation for operation as the CPU's level DP writes it, so that the GPU chooses the same
// levels bit for bit:
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
// The divide-and-conquer nodes are built breadth first as in level_dp.cpp's build_nodes; each
// node scans exactly the range the CPU's scan does, so the argmins are the CPU's.
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/exact_math.h"

namespace qnn::smart_fit {

constexpr int kMaxCandidates = 512;  // the device kernel's limit (shared-memory arrays)
constexpr int kMaxDepths = 16;       // depth_begin entries: log2(512) + 2 suffice

QNN_HOST_DEVICE double shift_of(const float* sorted, int count) {
  return mul_rn(0.5, add_rn(double(sorted[0]), double(sorted[count - 1])));
}

// err(i, j) (quant/level_dp.h interval_cost, as compiled).
QNN_HOST_DEVICE double interval_cost(const double* a, const double* s, const double* ss, int i, int j) {
  const double ai = a[i], aj = a[j];
  const double p = mul_rn(-double(j - i + 1), ai);
  const double q = mul_rn(add_rn(ai, aj), sub_rn(s[j + 1], s[i]));
  return sub_rn(fma_rn(p, aj, q), sub_rn(ss[j + 1], ss[i]));
}

QNN_HOST_DEVICE double coefficient_c(const double* a, const double* s, int j) { return fma_rn(double(j), a[j], -s[j]); }
QNN_HOST_DEVICE double coefficient_x(const double* a, const double* s, int m) {
  return fma_rn(-double(m + 1), a[m], s[m + 1]);
}
QNN_HOST_DEVICE double coefficient_z(const double* a, const double* s, const double* ss, int m) {
  return fma_rn(a[m], s[m + 1], -ss[m + 1]);
}
QNN_HOST_DEVICE double row_base(const double* a, const double* s, const double* ss, const double* dp, int j) {
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

// The breadth-first divide-and-conquer nodes of `count` rows (level_dp.cpp build_nodes): node n
// solves row mid[n] over [bounds[left[n]], min(mid[n], bounds[right[n]])]; depth k's nodes are
// [depth_begin[k], depth_begin[k+1]). Returns the number of depths. count <= kMaxCandidates.
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

// Shifted candidates and prefix sums (level_dp.cpp shifted_prefix_sums, sequential).
QNN_HOST_DEVICE void prefix_sums(const float* sorted, int count, double* a, double* s, double* ss) {
  const double shift = shift_of(sorted, count);
  s[0] = ss[0] = 0.0;
  for (int t = 0; t < count; ++t) {
    a[t] = sub_rn(double(sorted[t]), shift);
    s[t + 1] = add_rn(s[t], a[t]);
    ss[t + 1] = fma_rn(a[t], a[t], ss[t]);
  }
}

}  // namespace qnn::smart_fit
