// Winograd's minimal filtering F(4x4, 3x3) for the CPU's float 3x3 convolutions at stride 1,
// padding 1 (every 3x3 layer of the ResNets but the strided ones and the RGB stem).
//
// Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): a 4x4 block of
// outputs of a 3x3 filter g over a 6x6 block of input d is
//     Y = A^T [ (G g G^T) . (B^T d B) ] A          (. = element-wise product)
// with the 6x6, 6x3 and 4x6 matrices B^T, G, A^T of the interpolation points 0, 1, -1, 2, -2 and
// infinity (tensor/winograd_tiles.h writes them out). Summed over input channels, the element-wise
// products become 36 independent matrix products, one per position xi of the 6x6 block:
//     M[xi] (tiles x O) = V[xi] (tiles x C) * U[xi] (C x O)
// with U = G g G^T the transformed weights and V = B^T d B the transformed input tiles. They take
// 36 multiply-adds per 16 outputs and channel pair where the direct convolution takes 144: a
// quarter, paid for with the three transforms, which only add and scale.
//
// Numerics: the transforms multiply by up to 8 and the weight transform divides by up to 24, so
// the result carries a rounding error a few times that of the direct sum (measured against a
// double-precision convolution in tests/tensor/test_winograd.cpp). It is not bit-identical to the
// direct lowerings of tensor/conv.cpp, which it replaces where it covers the shape.
#pragma once
#include <cstdint>

#include "tensor/im2col.h"

namespace qnn {
namespace winograd {

// Whether this build has the Winograd path at all (it needs AVX-512); without it covers() is
// false for every shape and the direct lowerings take them all.
bool built();

// Whether this build and shape take the Winograd path: 3x3, stride 1, padding 1, the same number
// of input and output channels, 16 to 512 (the transforms run over 16 channels per vector, and
// the channel count is a template argument), maps of 8x8 and up, AVX-512; in either precision
// (`bf16` below rounds with AVX-512 BF16's instruction where the build has it, and to the same
// bits with integer operations where it does not). At 7x7 (ImageNet's last stage, 512 channels)
// a quarter of each tile's outputs fall outside the image and the transformed weights are 38 MB:
// the direct lowerings measured faster there (fp32 by 15%, bf16 by 40%).
bool covers(const ConvGeometry& g);

// y = conv(x, w) + bias (bias may be null), or y += it with `accumulate`, x [N][C][H][W],
// y [N][O][H][W]. `flipped`: w is the weight of the transposed convolution, [C][O][3][3], and
// the filter used is w rotated by 180 degrees and transposed in channels: then this computes the
// input gradient of that convolution from its output gradient x.
// `bf16` (`--precision bf16`): x and w are rounded to bf16 as they are read, and the rest runs in
// float, so that the result is the convolution of bf16 operands that the bf16 lowerings compute
// (tensor/conv_bf16.h), within this algorithm's float error. VDPBF16PS is not used: it would take
// the *transformed* values in bf16, about ten times the error (docs/winograd.md).
void forward(const ConvGeometry& g, const float* x, const float* w, bool flipped, const float* bias,
             float* y, bool accumulate, bool bf16 = false);

// Whether the weight gradient takes the Winograd path: covers(g), and at most 256 channels
// (each thread sums its own 36 C^2 transformed gradient: 9.4 MB at 256 channels, 38 MB at 512).
bool covers_weight_gradient(const ConvGeometry& g);

// dw += the weight gradient of y = conv(x, w), w [O][C][3][3], from dy = dL/dy [N][O][H][W]
// (and db += the bias gradient when db is not null):
//     dU[xi] = sum over tiles of V[xi]^T (A dY A^T)[xi],   dw = G^T dU G
// the transposes of the forward transforms, with the tiles' sum as one matrix product per xi.
// `bf16`: x and dy are rounded to bf16 as they are read (the operands of `--precision bf16`); the
// rest runs in float.
void weight_gradient(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db,
                     bool bf16 = false);

}  // namespace winograd
}  // namespace qnn
