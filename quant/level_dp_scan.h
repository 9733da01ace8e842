// The inner step of the smart quantizer's level DP (quant/level_dp.h): for one row M,
//   low = min_{first <= j <= last} base_j + a_j X_M + C_j a_M     and its smallest argmin,
// evaluated exactly as the plain loop
//   v = fma(c_j, a_M, fma(a_j, X_M, base_j));  if (v < low) low = v, best = j;   (low from +inf)
// with both fused multiply-adds written out (fma_rn, tensor/exact_math.h), as the CUDA kernel's
// quant/smart_fit.h scan does (the DP then adds Z_M to low). With AVX-512 eight j are evaluated
// at once with the same two FMAs (_mm512_fmadd_pd): the minimum is exact (min does not round),
// the first lane holding it is the smallest argmin, and the value returned is that lane's, so
// even -0 against +0 comes out as in the scalar loop. Without AVX-512 the scalar loop runs.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "tensor/exact_math.h"

#if defined(__AVX512F__) && defined(__FMA__)
#include <immintrin.h>
#define QNN_LEVEL_DP_AVX512 1
#endif

namespace qnn::level_dp {

// One DP row in the form its inner loop evaluates fast (quant/level_dp.cpp):
//   dp[k-1][j] + err(j, M) = A_j + a_j X_M + C_j a_M + Z_M, with base = A_j for this row.
struct Row {
  const double* a;     // shifted candidates
  const double* c;     // C_j
  const double* x;     // X_M
  const double* z;     // Z_M
  const double* base;  // A_j for this row
};

// The plain loop (and the reference the vector versions must equal).
inline void scan_scalar(const Row& row, int64_t m, int64_t first, int64_t last, double& low,
                        int64_t& best_j) {
  const double xm = row.x[m], am = row.a[m];
  low = std::numeric_limits<double>::infinity();
  best_j = first;
  for (int64_t j = first; j <= last; ++j) {
    const double v = fma_rn(row.c[j], am, fma_rn(row.a[j], xm, row.base[j]));
    if (v < low) low = v, best_j = j;
  }
}

#ifdef QNN_LEVEL_DP_AVX512
constexpr int64_t kHead = 8;  // scan_head covers [first, min(last, first + kHead - 1)]

// The minimum of the eight lanes, in every lane: swap 256-bit halves, 128-bit pairs, then
// neighbours. (The masked forms with an explicit source: the plain ones pass GCC an undefined
// register, which it warns about.)
inline __m512d lane_minimum(__m512d v) {
  const __mmask8 all = 0xFF;
  v = _mm512_mask_min_pd(v, all, v, _mm512_mask_shuffle_f64x2(v, all, v, v, 0x4E));
  v = _mm512_mask_min_pd(v, all, v, _mm512_mask_shuffle_f64x2(v, all, v, v, 0xB1));
  return _mm512_mask_min_pd(v, all, v, _mm512_mask_permute_pd(v, all, v, 0x55));
}

// The first (up to) eight j of the range in one step, without branches.
inline void scan_head(const Row& row, int64_t m, int64_t first, int64_t last, double& low,
                      int64_t& best_j) {
  const int64_t count = std::min<int64_t>(last - first + 1, kHead);
  const __mmask8 live = __mmask8((1u << count) - 1u);
  const __m512d partial = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, row.a + first),
                                          _mm512_set1_pd(row.x[m]),
                                          _mm512_maskz_loadu_pd(live, row.base + first));
  const __m512d computed =
      _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, row.c + first), _mm512_set1_pd(row.a[m]), partial);
  // Lanes past the range, and NaN values (which the scalar loop's v < low never takes), count
  // as +inf.
  const __mmask8 numbers = _mm512_mask_cmp_pd_mask(live, computed, computed, _CMP_ORD_Q);
  const __m512d v = _mm512_mask_mov_pd(_mm512_set1_pd(std::numeric_limits<double>::infinity()), numbers, computed);
  const __m512d least = lane_minimum(v);
  // The first lane holding the minimum: lane 0 when every value is +inf, as the scalar loop then
  // keeps j = first.
  const unsigned hits = _mm512_cmp_pd_mask(v, least, _CMP_EQ_OQ);
  const int lane = __builtin_ctz(hits);
  best_j = first + lane;
  // That lane's value: the minimum itself, unless it is a zero (the lanes may hold -0 and +0,
  // and the scalar loop keeps the first one's sign).
  low = _mm512_cvtsd_f64(least);
  if (low == 0.0) low = _mm512_cvtsd_f64(_mm512_mask_permutexvar_pd(v, __mmask8(0xFF), _mm512_set1_epi64(lane), v));
}

// Any range, eight j per step; every lane keeps its own first minimum, then the lanes merge.
inline void scan_rest(const Row& row, int64_t m, int64_t first, int64_t last, double& low,
                      int64_t& best_j) {
  const __m512d vxm = _mm512_set1_pd(row.x[m]), vam = _mm512_set1_pd(row.a[m]);
  const __m512i lane = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7);
  __m512d lows = _mm512_set1_pd(std::numeric_limits<double>::infinity());
  __m512i at = _mm512_set1_epi64(first);
  for (int64_t j = first; j <= last; j += 8) {
    const int64_t left = last - j + 1;
    const __mmask8 live = left >= 8 ? __mmask8(0xFF) : __mmask8((1u << left) - 1u);
    const __m512d partial = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, row.a + j), vxm,
                                            _mm512_maskz_loadu_pd(live, row.base + j));
    const __m512d v = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(live, row.c + j), vam, partial);
    const __mmask8 lower = _mm512_mask_cmp_pd_mask(live, v, lows, _CMP_LT_OQ);
    lows = _mm512_mask_mov_pd(lows, lower, v);
    at = _mm512_mask_mov_epi64(at, lower, _mm512_add_epi64(_mm512_set1_epi64(j), lane));
  }
  // The minimum in every lane, then the smallest index among the lanes that hold it (butterfly
  // steps by permutes; GCC's reduce intrinsics warn).
  // Every lane holds +inf or a value below it (v < lows is false for NaN), so some lane holds the
  // minimum; when no value was below +inf, the scalar loop keeps j = first and low = +inf.
  const __m512d least = lane_minimum(lows);
  if (_mm512_cvtsd_f64(least) == std::numeric_limits<double>::infinity()) {
    best_j = first;
    low = std::numeric_limits<double>::infinity();
    return;
  }
  const __mmask8 hits = _mm512_cmp_pd_mask(lows, least, _CMP_EQ_OQ);
  // The smallest j among the lanes holding the minimum (the same three swaps, on integers).
  const __mmask8 all = 0xFF;
  __m512i j = _mm512_mask_mov_epi64(_mm512_set1_epi64(INT64_MAX), hits, at);
  j = _mm512_mask_min_epi64(j, all, j, _mm512_mask_shuffle_i64x2(j, all, j, j, 0x4E));
  j = _mm512_mask_min_epi64(j, all, j, _mm512_mask_shuffle_i64x2(j, all, j, j, 0xB1));
  j = _mm512_mask_min_epi64(j, all, j, _mm512_mask_shuffle_epi32(j, all, j, _MM_PERM_BADC));
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, j);
  best_j = lanes[0];
  // The value at best_j, by the same two FMAs as its lane.
  low = fma_rn(row.c[best_j], row.a[m], fma_rn(row.a[best_j], row.x[m], row.base[best_j]));
}
#endif

}  // namespace qnn::level_dp
