// The first layer's requantization, scalar and AVX-512 (see qinfer/stem.h).
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics as maybe-uninitialized when AVX-512 comes from a target attribute (as in
// qinfer/gemm_vnni.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "qinfer/stem.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "qinfer/gemm.h"

namespace qnn::qinfer {

namespace kernels {

void stem_requantize_scalar(const int32_t* acc, const float* correction, const StemRequant& rq, uint8_t* out) {
  const int64_t co = rq.out_channels;
  for (int64_t o = 0; o < co; ++o) {
    float t = 0;
    for (int64_t c = 0; c < rq.in_channels; ++c) t = std::fma(rq.pixel_scale[c], float(acc[c * co + o]), t);
    float v = std::fma(t - correction[o], rq.multiplier[o], rq.bias[o]);
    v = std::min(std::max(v, -1073741824.0f), 1073741824.0f);
    const int32_t q = int32_t(std::nearbyint(v)) + rq.zero_point;
    out[o] = uint8_t(std::min(std::max(q, rq.zero_point), rq.qmax));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) void stem_requantize_avx512(
    const int32_t* acc, const float* correction, const StemRequant& rq, uint8_t* out) {
  const int64_t co = rq.out_channels;
  const __m512i zero_point = _mm512_set1_epi32(rq.zero_point), qmax = _mm512_set1_epi32(rq.qmax);
  const __m512 vmin = _mm512_set1_ps(-1073741824.0f), vmax = _mm512_set1_ps(1073741824.0f);
  for (int64_t o = 0; o < co; o += 16) {
    const __mmask16 mask = co - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (co - o)) - 1);
    __m512 t = _mm512_setzero_ps();
    for (int64_t c = 0; c < rq.in_channels; ++c)
      t = _mm512_fmadd_ps(_mm512_set1_ps(rq.pixel_scale[c]), _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, acc + c * co + o)), t);
    t = _mm512_sub_ps(t, _mm512_maskz_loadu_ps(mask, correction + o));
    __m512 v = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(mask, rq.multiplier + o), _mm512_maskz_loadu_ps(mask, rq.bias + o));
    v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);
    __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero_point);
    q = _mm512_min_epi32(_mm512_max_epi32(q, zero_point), qmax);
    _mm_mask_storeu_epi8(out + o, mask, _mm512_cvtepi32_epi8(q));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vl,fma"))) void stem_requantize_positions_avx512(
    const int32_t* acc, int64_t count, const float* const* corrections, const StemRequant& rq, uint8_t* out) {
  constexpr int64_t kMaxChannels = 4;  // RGB and the like; wider inputs go position by position
  const int64_t ci = rq.in_channels, co = rq.out_channels;
  if (ci > kMaxChannels) {
    for (int64_t i = 0; i < count; ++i) stem_requantize_avx512(acc + i * ci * co, corrections[i], rq, out + i * co);
    return;
  }
  const __m512i zero_point = _mm512_set1_epi32(rq.zero_point), qmax = _mm512_set1_epi32(rq.qmax);
  const __m512 vmin = _mm512_set1_ps(-1073741824.0f), vmax = _mm512_set1_ps(1073741824.0f);
  __m512 scale[kMaxChannels];
  for (int64_t c = 0; c < ci; ++c) scale[c] = _mm512_set1_ps(rq.pixel_scale[c]);
  for (int64_t o = 0; o < co; o += 16) {
    const __mmask16 mask = co - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (co - o)) - 1);
    const __m512 multiplier = _mm512_maskz_loadu_ps(mask, rq.multiplier + o), bias = _mm512_maskz_loadu_ps(mask, rq.bias + o);
    for (int64_t i = 0; i < count; ++i) {
      const int32_t* a = acc + i * ci * co + o;
      __m512 t = _mm512_setzero_ps();
      for (int64_t c = 0; c < ci; ++c)
        t = _mm512_fmadd_ps(scale[c], _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, a + c * co)), t);
      t = _mm512_sub_ps(t, _mm512_maskz_loadu_ps(mask, corrections[i] + o));
      __m512 v = _mm512_fmadd_ps(t, multiplier, bias);
      v = _mm512_min_ps(_mm512_max_ps(v, vmin), vmax);
      __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), zero_point);
      q = _mm512_min_epi32(_mm512_max_epi32(q, zero_point), qmax);
      _mm_mask_storeu_epi8(out + i * co + o, mask, _mm512_cvtepi32_epi8(q));
    }
  }
}

}  // namespace kernels

void stem_requantize_positions(const int32_t* acc, int64_t count, const float* const* corrections,
                               const StemRequant& rq, uint8_t* out) {
  if (active_gemm_path() == GemmPath::Vnni) {
    kernels::stem_requantize_positions_avx512(acc, count, corrections, rq, out);
    return;
  }
  const int64_t ci = rq.in_channels, co = rq.out_channels;
  for (int64_t i = 0; i < count; ++i) kernels::stem_requantize_scalar(acc + i * ci * co, corrections[i], rq, out + i * co);
}

}  // namespace qnn::qinfer
