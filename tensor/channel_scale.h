// Per-channel scaling, the arithmetic of batch-norm folding (nn/conv_bn.h). A tensor x is viewed
// as [outer, C, inner] around its channel axis (axis 0 of a convolution weight [O, C, KH, KW],
// axis 1 of activations [N, C, H, W]); s holds one value per channel:
//   channel_mul:  y[o, c, i] = x[o, c, i] * s[c]
//   channel_div:  y[o, c, i] = x[o, c, i] / s[c]          (a true division, as PyTorch's x / s)
//   channel_dot:  d[c] = sum over o, i of a[o, c, i] * b[o, c, i]   (the gradient of s)
//   sqrt_plus:    y = sqrt(v + eps)                       (a batch norm's standard deviation)
//   inverse_std:  y = 1 / sqrt(v + eps), computed in double and rounded once to float
// channel_dot adds float partial sums of up to 256 products in double, in a fixed order per
// channel, so it does not depend on the number of threads; it returns floats.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

Tensor channel_mul(const Tensor& x, const Tensor& s, int axis);
Tensor channel_div(const Tensor& x, const Tensor& s, int axis);
Tensor channel_dot(const Tensor& a, const Tensor& b, int axis);
Tensor sqrt_plus(const Tensor& v, float eps);
Tensor inverse_std(const Tensor& v, float eps);

// x's [outer, C, inner] around `axis`, checked against s (or b) by the functions above.
struct ChannelView {
  int64_t outer, channels, inner;
};
ChannelView channel_view(const char* op, const Tensor& x, int axis);

// The CUDA twins (tensor/channel_scale.cu). channel_mul, channel_div, sqrt_plus and inverse_std are
// element-wise and equal the CPU's bit for bit; channel_dot sums in another order (a block per
// channel, a shared-memory tree), so its last bits may differ.
namespace cuda {
Tensor channel_mul(const Tensor& x, const Tensor& s, ChannelView v);
Tensor channel_div(const Tensor& x, const Tensor& s, ChannelView v);
Tensor channel_dot(const Tensor& a, const Tensor& b, ChannelView v);
Tensor sqrt_plus(const Tensor& v, float eps);
Tensor inverse_std(const Tensor& v, float eps);
}  // namespace cuda

}  // namespace qnn
