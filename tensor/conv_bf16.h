// The CPU convolution with bf16 operands (`--precision bf16`, backend_options().bf16; the number
// format and VDPBF16PS are described in tensor/bf16.h): the same three passes as the float
// lowerings of tensor/conv.cpp and tensor/conv_weight.cpp, with inputs, weights and gradients
// rounded to bf16 as they are lowered, products accumulated in float and results stored as float.
// Internal to those two files, which call it when backend_options().bf16 is set and covers(g);
// for the convolutions it does not cover they round the operands (round_to_bf16) and run the
// float lowerings, which multiply the same bf16 values in another order.
#pragma once
#include "tensor/im2col.h"

namespace qnn {
namespace conv_bf16 {

// Whether these kernels take convolution g: a CPU with AVX-512 BF16 (the build's -march) and
// stride 1 or 2.
bool covers(const ConvGeometry& g);

// y = conv(x, w) + bias (bias may be null), all of shape g.
void forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);
// dx = conv2d_backward_data(dy, w), or dx += it with `accumulate`; returns false without touching
// dx when `accumulate` is asked of the strided (col2im) lowering, as the float path does.
bool backward_data(const ConvGeometry& g, const float* dy, const float* w, float* dx, bool accumulate);
// dw += dL/dw and, when db is not null, db += dL/dbias.
void backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db);

}  // namespace conv_bf16
}  // namespace qnn
