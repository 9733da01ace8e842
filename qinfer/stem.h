// The first layer's requantization (qinfer/int_resnet.h): the image's colour channels have their
// own grids (s_c, z_c), so the stem keeps one s32 accumulator per (input channel c, output
// channel o) and combines them in float, for every output position:
//
//   t = fma(s_2, float(acc_2), fma(s_1, float(acc_1), fma(s_0, float(acc_0), 0)))   (c = 0, 1, ...)
//   v = fma(t - correction[o], multiplier[o], bias[o]);  q = clamp(nearbyint(v) + z, z, qmax)
//
// acc is [positions][C_in][C_out] (input-channel-major, so each input channel's accumulators of
// 16 output channels are one vector); `correction` the zero-point term of each position's taps
// inside the image. An AVX-512 path (chosen with the GEMM's, qinfer/gemm.h) and a scalar one run
// these operations in this order and give the same bytes.
#pragma once
#include <cstdint>

namespace qnn::qinfer {

struct StemRequant {
  int64_t in_channels = 0, out_channels = 0;
  const float* pixel_scale = nullptr;  // s_c
  const float* multiplier = nullptr;   // per output channel
  const float* bias = nullptr;
  int32_t zero_point = 0, qmax = 255;
};

// `count` consecutive positions: acc [count][C_in][C_out], corrections[i] position i's correction
// [C_out], out [count][C_out]; the operations above, with the constants loaded once.
void stem_requantize_positions(const int32_t* acc, int64_t count, const float* const* corrections,
                               const StemRequant& rq, uint8_t* out);

namespace kernels {
void stem_requantize_scalar(const int32_t* acc, const float* correction, const StemRequant& rq, uint8_t* out);
void stem_requantize_avx512(const int32_t* acc, const float* correction, const StemRequant& rq, uint8_t* out);
void stem_requantize_positions_avx512(const int32_t* acc, int64_t count, const float* const* corrections,
                                      const StemRequant& rq, uint8_t* out);
}  // namespace kernels

}  // namespace qnn::qinfer
