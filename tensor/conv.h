// 2-D convolution kernels on NCHW tensors (no autograd: autograd/functions wraps them).
//   y[n, o, i, j] = bias[o] + sum_{c, u, v} w[o, c, u, v] * x[n, c, i*stride + u - pad, j*stride + v - pad]
// with zeros outside the image. Backward: dx is the transposed convolution of dy with w; dw is
// the correlation of x with dy. The CPU version lowers each image to a matrix (im2col) and
// multiplies with sgemm, images in parallel.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

struct ConvParams {
  int stride = 1;
  int padding = 0;
};

// Output spatial size for input size `in` and kernel size `k`.
inline int64_t conv_out_size(int64_t in, int64_t k, ConvParams p) {
  return (in + 2 * p.padding - k) / p.stride + 1;
}

// The weight w [O, C, KH, KW] in the form the convolution of images like x multiplies: w itself on
// the CPU; on the GPU in x's element type and, for channels-last x through cuDNN, in KRSC order
// (a channels-last tensor; see tensor/conv.cu). The functions below take either w or this form;
// an op that runs forward and backward with one weight makes it once and passes it to both.
Tensor conv2d_weight_for(const Tensor& x, const Tensor& w);

// x [N, C, H, W], w [O, C, KH, KW], bias [O] or undefined -> y [N, O, Ho, Wo].
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p);
// dy [N, O, Ho, Wo], w -> dx of shape x_shape.
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p);
// dx += conv2d_backward_data(dy, w, dx.shape(), p), bit for bit the same as add_into(dx, ...) on
// the CPU: on its stride-1 lowerings each value is added to dx as the kernel stores it, which saves
// the temporary and the pass over it (a ResNet block input's gradient gets the shortcut's first);
// on the GPU cuDNN adds it as it writes dx (its output blending, beta = 1).
void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p);
// Adds dL/dw into dw [O, C, KH, KW] and, when db is defined, dL/dbias into db [O].
void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p);

// The CUDA twins (tensor/conv.cu), called by the functions above for CUDA tensors, after the
// shapes are checked. They run through cuDNN (algorithms chosen once per shape and cached), or,
// with backend_options().cudnn off, through im2col + cuBLAS (tensor/conv_gemm.cu).
namespace cuda {
Tensor conv2d_weight_for(const Tensor& x, const Tensor& w);
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p);
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p);
void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p);
void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p);
}  // namespace cuda

}  // namespace qnn
