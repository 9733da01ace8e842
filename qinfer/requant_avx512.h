// The AVX-512 form of qinfer/gemm.h's requantization, shared by the VNNI GEMM
// (qinfer/gemm_vnni.cpp) and the direct convolution (qinfer/conv_direct.cpp): 16 output channels
// of one output position per call, in the float operations of requantize_value and in its order
//   v = fma(float(acc - offset), multiplier, bias); v = fma(float(r - z_r), m_r, v) (residual)
//   q = clamp(round_to_nearest_even(clamp(v, -2^30, 2^30)) + z_out, lo, hi)
// so every path gives the same bytes. Only for translation units whose functions carry QNN_VNNI.
#pragma once
#include <immintrin.h>

#include "qinfer/gemm.h"

#define QNN_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,fma")))

namespace qnn::qinfer::kernels {

// The constants of channels c0 .. c0 + 15 (lanes past n masked off).
struct RequantBlock {
  __mmask16 mask;
  __m512i offset, zero_point, lo, hi, residual_zero;
  __m512 multiplier, bias, residual_multiplier, vmin, vmax;
  bool residual;

  QNN_VNNI RequantBlock(const Requant& rq, int64_t c0, int64_t n) {
    mask = n - c0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - c0)) - 1);
    offset = _mm512_maskz_loadu_epi32(mask, rq.offset + c0);
    multiplier = _mm512_maskz_loadu_ps(mask, rq.multiplier + c0);
    bias = _mm512_maskz_loadu_ps(mask, rq.bias + c0);
    zero_point = _mm512_set1_epi32(rq.zero_point);
    lo = _mm512_set1_epi32(rq.lo);
    hi = _mm512_set1_epi32(rq.hi);
    residual_zero = _mm512_set1_epi32(rq.residual_zero);
    residual_multiplier = _mm512_set1_ps(rq.residual_multiplier);
    vmin = _mm512_set1_ps(-1073741824.0f);
    vmax = _mm512_set1_ps(1073741824.0f);
    residual = rq.residual != nullptr;
  }

  // out[0..15] = requantize(acc), adding residual[0..15] when the block has a residual.
  QNN_VNNI void store(__m512i acc, const uint8_t* residual_row, uint8_t* out) const {
    __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, offset)), multiplier, bias);
    if (residual) {
      const __m512i res = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, residual_row));
      v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(res, residual_zero)), residual_multiplier, v);
    }
    v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);
    __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero_point);
    q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
    _mm_mask_storeu_epi8(out, mask, _mm512_cvtepi32_epi8(q));
  }
};

}  // namespace qnn::qinfer::kernels
