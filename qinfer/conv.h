// Quantized convolution on u8 NHWC activations: im2col of a tile of output positions into a
// per-thread u8 buffer (padding taps hold the input's zero point, so they add exactly nothing
// once the zero-point offset is subtracted), then the integer GEMM of qinfer/gemm.h with its
// fused requantization (bias, ReLU, residual add). Tiles of rows are spread over the OpenMP
// threads and stay in the core's cache between the im2col and the GEMM.
//
// Row m of the GEMM is output position (image, oh, ow), m = (image * OH + oh) * OW + ow; column
// k = (kh * KW + kw) * C + c. So the weights are packed from [out][kh][kw][in] order (not the
// [out][in][kh][kw] of a checkpoint; conv_weight_nhwc reorders), and the output, row-major
// [positions][out channels], is NHWC again.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "qinfer/gemm.h"

namespace qnn::qinfer {

struct ConvShape {
  int64_t in_channels = 0, out_channels = 0, kernel = 3, stride = 1, padding = 1;
  int64_t out_size(int64_t in) const { return (in + 2 * padding - kernel) / stride + 1; }
};

// [out][in][kh][kw] -> [out][kh][kw][in].
std::vector<int8_t> conv_weight_nhwc(const std::vector<int8_t>& w, const ConvShape& s);

// Which algorithm conv2d_u8 runs on the AVX-512 VNNI path: Auto takes the direct convolution of
// qinfer/conv_direct.h for the shapes it fits (3x3, padding 1, 16/32/64 input channels, stride 1
// or 2; the integer ResNet's RGB stem follows the same choice) and the im2col GEMM for the rest;
// Gemm always the GEMM (to compare the two). Both give the same bytes.
enum class ConvAlgorithm { Auto, Gemm };
void set_conv_algorithm(ConvAlgorithm algorithm);
ConvAlgorithm conv_algorithm();

// y[n][oh][ow][out] = requantize(sum over taps and channels of x * w): x u8 NHWC [n][h][w][C],
// pad_value the input's zero point (the value of a padding tap), w packed from [out][kh][kw][in]
// (k = kernel^2 * C). rq.residual, when set, holds rows aligned with y's (NHWC, rq.residual_ld
// per position).
void conv2d_u8(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
               const PackedWeights& weights, const Requant& rq, uint8_t* y);

// The same convolution with the raw accumulators out: acc[n][oh][ow][ch], ch < weights.n.
void conv2d_u8_s32(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                   const PackedWeights& weights, int32_t* acc);

// The raw accumulators tile by tile, each handed to `consume(m0, rows, acc)` on the thread that
// computed it (acc [rows][weights.n], positions m0 .. m0 + rows - 1), while it is in the cache.
using AccumulatorConsumer = std::function<void(int64_t m0, int64_t rows, const int32_t* acc)>;
void conv2d_u8_s32_tiles(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                         const PackedWeights& weights, const AccumulatorConsumer& consume);

}  // namespace qnn::qinfer
