// The option-A shortcut of CIFAR ResNets (He et al. 2016): when a block halves the resolution and
// widens the channels, the identity path subsamples and pads channels with zeros instead of
// using a 1x1 convolution. With before = (out_channels - C) / 2:
//   y[n, before + c, i, j] = x[n, c, i*s, j*s]        (0 <= c < C)
//   y[n, k, i, j] = 0 for the other channels (before of them first, the rest after)
//   Ho = ceil(H / s), Wo = ceil(W / s)  (x[:, :, ::s, ::s] in PyTorch)
// Backward is the adjoint: dx[n, c, i*s, j*s] = dy[n, before + c, i, j], zero elsewhere.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

Tensor shortcut_pad_forward(const Tensor& x, int64_t out_channels, int stride);
Tensor shortcut_pad_backward(const Tensor& dy, const Shape& x_shape, int stride);

// The CUDA twins (tensor/shortcut.cu), called by the functions above for CUDA tensors: pure
// copies and zeros, so bit-identical to the CPU.
namespace cuda {
Tensor shortcut_pad_forward(const Tensor& x, int64_t out_channels, int stride);
Tensor shortcut_pad_backward(const Tensor& dy, const Shape& x_shape, int stride);
}  // namespace cuda

}  // namespace qnn
