// A direct 3x3 convolution for the layers of CIFAR ResNets (16, 32 or 64 input channels, a
// multiple of 16 output channels, stride 1 or 2, padding 1; and the RGB stem's accumulators),
// with output pixels in the vector lanes. The GEMM of qinfer/gemm.h puts output channels in the
// lanes and broadcasts 4 activation bytes per vpdpbusd; with only 16 output channels that is one
// broadcast per vpdpbusd, and the broadcasts bound it. Here a zmm holds 4 input channels of 16 consecutive pixels, and the weights (4 bytes
// of one output channel) are the broadcast operand, which vpdpbusd takes from memory itself
// ({1to16}): 16 accumulators, one per output channel, each holding 16 output pixels.
//
// The input rows a thread needs are first rearranged into a lane layout, padded with the zero
// point: for input row ih and channel group g (channels 4g .. 4g+3), a row of 4-byte pixels
//   t[(ih, g)][1 + iw] = x[ih][iw][4g .. 4g+3],  t[(ih, g)][0] and t[(ih, g)][1 + w ..] = padding
// so tap (kh, kw) of output pixels ow0 .. ow0+15 is one unaligned load at t[(oh - 1 + kh, g)][ow0 + kw]
// (stride 2: the even dwords of two loads from t[(2 oh - 1 + kh, g)][2 ow0 + kw]). The accumulators are transposed (16 x 16 s32) to positions x channels and requantized by the
// GEMM's epilogue (qinfer/requant_avx512.h), so the bytes equal the GEMM path's, which the tests
// check. AVX-512 VNNI only; the scalar path keeps the im2col GEMM.
#pragma once
#include <cstdint>
#include <vector>

#include "qinfer/conv.h"

namespace qnn::qinfer {

// Whether conv2d_u8_direct computes this convolution.
bool direct_conv_fits(const ConvShape& s);

// conv2d_u8 (qinfer/conv.h) for a shape where direct_conv_fits, on a CPU with AVX-512 VNNI.
// Images, and the rows of an image when there are fewer images than threads, are split over the
// OpenMP threads (one thread when called inside a parallel region).
void conv2d_u8_direct(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                      const PackedWeights& weights, const Requant& rq, uint8_t* y);

// The stem's form: raw accumulators of a 3x3 convolution (stride 1, padding 1) over RGB pixels
// to a multiple of 16 outputs. Each pixel is read as 4 bytes (its 3 and one of the next pixel),
// so the weights are packed from [out][kh][kw][4] with a zero 4th channel (k = 36;
// rgb_weights_as_4_channels makes them from [out][kh][kw][3]). consume(m0, rows, acc) gets
// acc [rows][weights.n] for one output row (two on 8-wide images) at a time, on the thread that
// computed it, as conv2d_u8_s32_tiles does.
bool direct_rgb_fits(const ConvShape& s);
std::vector<int8_t> rgb_weights_as_4_channels(const std::vector<int8_t>& w_nhwc, const ConvShape& s);
void conv2d_rgb_s32_direct(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                           const PackedWeights& weights, const AccumulatorConsumer& consume);

}  // namespace qnn::qinfer
