// Pooling kernels on NCHW tensors (on the GPU also channels-last ones, with the same results).
// Max pooling, kernel k, stride s, padding p (padded cells never win, as if they were -inf):
//   y[n, c, i, j] = max over 0 <= u, v < k of x[n, c, i*s + u - p, j*s + v - p]
//   Ho = (H + 2p - k) / s + 1 (rounded down), the same for W.
//   Backward sends dy[n, c, i, j] to the window's first maximum (row-major order); the maxima are
//   found again from x instead of being saved, so pooling keeps no index tensor alive.
// Global average pooling: y[n, c] = (1 / HW) sum_{h, w} x[n, c, h, w]; dx = dy[n, c] / HW.
// Planes (n, c) are independent: threads take whole planes, so results are deterministic.
// The average's sum runs in double over eight interleaved lanes combined in a fixed tree
// (plane_sum below), the same on the CPU and the GPU, so both give the same bits.
// bf16 (GPU only, docs/bf16.md): max pooling takes bf16 x (and dy) and returns bf16 y (and dx);
// the maxima are exact, and the backward sums a pixel's gradients in float and rounds once.
// Global average pooling takes bf16 x and returns a float y (the classifier after it is float);
// its backward takes float dy and returns dx in x's type and format, dy / HW rounded to bf16.
#pragma once
#include "tensor/bf16.h"    // to_float
#include "tensor/random.h"  // QNN_HOST_DEVICE
#include "tensor/tensor.h"

namespace qnn {

struct PoolParams {
  int kernel = 2;
  int stride = 2;
  int padding = 0;
};

Tensor max_pool2d_forward(const Tensor& x, PoolParams p);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p);

Tensor global_avg_pool_forward(const Tensor& x);  // [N, C, H, W] -> [N, C]
// Float [N, C] -> x_shape, in x's memory format and element type (channels-last and bf16 only
// on the GPU).
Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape,
                                MemoryFormat x_format = MemoryFormat::contiguous, DType x_dtype = DType::f32);

// Sum of x[0..n) in double: lane l adds x[l], x[l + 8], ... in order, then the lanes are combined
// as ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). A fixed order that the CPU vectorises
// and a GPU thread repeats exactly.
// The values may lie `step` elements apart (a channels-last plane on the GPU): same order, same
// sum. T is the stored type, float or uint16_t (bf16 bits, on the GPU); each value is widened to
// float and then to double, both exactly, so a bf16 plane sums to the very double that plane_sum
// gives for the same values held as floats.
template <class T>
QNN_HOST_DEVICE double plane_sum(const T* x, int64_t n, int64_t step = 1) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lane[l] += to_float(x[(i + l) * step]);
  for (int l = 0; i < n; ++i, ++l) lane[l] += to_float(x[i * step]);
  return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

// The CUDA twins (tensor/pool.cu), called by the functions above for CUDA tensors; all four
// give the CPU's results bit for bit (max pooling only compares and adds in the CPU's order),
// and on bf16 tensors the CPU's results on the same values, rounded once to bf16 where the
// result is bf16.
namespace cuda {
Tensor max_pool2d_forward(const Tensor& x, PoolParams p);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p);
Tensor global_avg_pool_forward(const Tensor& x);
Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape, MemoryFormat x_format, DType x_dtype);
}  // namespace cuda

}  // namespace qnn
