// Pooling kernels on NCHW tensors.
// Max pooling, kernel k, stride s, padding p (padded cells never win, as if they were -inf):
//   y[n, c, i, j] = max over 0 <= u, v < k of x[n, c, i*s + u - p, j*s + v - p]
//   Ho = (H + 2p - k) / s + 1 (rounded down), the same for W.
//   Backward sends dy[n, c, i, j] to the window's first maximum (row-major order); the maxima are
//   found again from x instead of being saved, so pooling keeps no index tensor alive.
// Global average pooling: y[n, c] = (1 / HW) sum_{h, w} x[n, c, h, w]; dx = dy[n, c] / HW.
// Planes (n, c) are independent: threads take whole planes, so results are deterministic.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

struct PoolParams {
  int kernel = 2;
  int stride = 2;
  int padding = 0;
};

Tensor max_pool2d_forward(const Tensor& x, PoolParams p);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p);

Tensor global_avg_pool_forward(const Tensor& x);                     // [N, C, H, W] -> [N, C]
Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape);  // [N, C] -> x_shape

}  // namespace qnn
