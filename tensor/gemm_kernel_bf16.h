// The bf16 twins of tensor/gemm_kernel.h's two kernels, on AVX-512 BF16 (VDPBF16PS; see
// tensor/bf16.h for the arithmetic). Each 32-bit lane of a VDPBF16PS operand holds a *pair* of
// bf16 along the reduction, so the reduction runs over pairs:
//
// micro_kernel_bf16: one MR x 16*NV tile of C = A * B with k2 pairs along the reduction,
//   acc[r][j] = sum_{p < k2} A(r, 2p) B(2p, j) + A(r, 2p+1) B(2p+1, j)
//   A packed in panels, a[p*MR + r] = the pair (A(r, 2p), A(r, 2p+1)) as one 32-bit word;
//   B as rows of pairs, row p = b + b_rows[p] (or b + p*ldb), word j = (B(2p, j), B(2p+1, j)).
//   Each step loads NV vectors of B, broadcasts MR words of A and issues MR*NV VDPBF16PS: twice
//   the multiply-adds of the float kernel's step. C is stored as in the float kernel: + C with
//   `accumulate`, + row_init[r] when given; only mr rows and nr columns are written.
// dot_tile_bf16: MO x NK dot products of bf16 rows along their length, 32 elements (16 pairs)
//   a step, out[r*ldo + t] += sum_g sum_q a[g*a_step + r*lda + q] * b[g*b_step + b_rows[t] + q],
//   the lanes summed once at the end (kernel::lane_sum): kernel::dot_tile's loop
//   (kernel::dot_tile_lanes) over Bf16Lanes.
// In both, every output is one fixed sequence of operations that depends only on the sizes, so
// results do not depend on threads or tiling.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tensor/gemm_kernel.h"

#if defined(__AVX512BF16__)
#include <immintrin.h>

namespace qnn {
namespace kernel {

template <int MR, int NV>
inline void micro_kernel_bf16(int64_t k2, const uint32_t* a, const uint32_t* b, const int64_t* b_rows,
                              int64_t ldb, float* c, int64_t ldc, int mr, int nr, bool accumulate,
                              const float* row_init) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = lane_mask(nr, v);
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k2; ++p) {
    const uint32_t* bp = b_rows ? b + b_rows[p] : b + p * ldb;
    __m512bh bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_maskz_loadu_epi32(mask[v], bp + 16 * v);
    const uint32_t* ap = a + p * MR;
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, bv[v]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      __m512 out = acc[r][v];
      if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      if (row_init) out = _mm512_add_ps(out, _mm512_set1_ps(row_init[r]));
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], out);
    }
  }
}

// Lanes [0, n) of a 32-lane mask, n clamped to [0, 32].
inline __mmask32 lanes_below_32(int64_t n) {
  return n <= 0 ? 0 : n >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1u << n) - 1u);
}

// The bf16 lanes of kernel::dot_tile_lanes: 32 bf16 a step, 16 pairs multiplied and added with
// VDPBF16PS.
struct Bf16Lanes {
  using Element = uint16_t;
  using Vector = __m512bh;
  static constexpr int kStep = 32;
  using Mask = __mmask32;
  static Mask mask(int64_t n) { return lanes_below_32(n); }
  static Vector load(Mask m, const uint16_t* p) { return (__m512bh)_mm512_maskz_loadu_epi16(m, p); }
  static __m512 multiply_add(__m512 acc, Vector a, Vector b) { return _mm512_dpbf16_ps(acc, a, b); }
};

template <int MO, int NK>
inline void dot_tile_bf16(int64_t len, int groups, const uint16_t* a, int64_t lda, int64_t a_step,
                          const uint16_t* b, const int64_t* b_rows, int64_t b_step, float* out,
                          int64_t ldo, int mo, int nk) {
  dot_tile_lanes<Bf16Lanes, MO, NK>(len, groups, a, lda, a_step, b, b_rows, b_step, out, ldo, mo, nk);
}

}  // namespace kernel
}  // namespace qnn

#endif
