// CUDA option-A shortcut: the twin of tensor/shortcut.cpp (formulas in tensor/shortcut.h). One
// thread per output element, each a copy or a zero, so the results equal the CPU's bit for bit.
//   forward:  y[n, k, i, j] = x[n, k - before, i*s, j*s] for before <= k < before + C, else 0
//   backward: dx[n, c, y, x] = dy[n, before + c, y/s, x/s] where s divides y and x, else 0
// (a gather over dx, so every element is written once and no zeroing pass is needed).
#include "tensor/cuda_runtime.h"
#include "tensor/shortcut.h"

namespace qnn::cuda {

namespace {

struct Geometry {
  int64_t n, c, h, w, out_c, ho, wo, before;
  int stride;
};

Geometry geometry(const Shape& x, int64_t out_channels, int stride) {  // validated by shortcut.cpp
  return {x[0], x[1], x[2], x[3], out_channels, (x[2] + stride - 1) / stride,
          (x[3] + stride - 1) / stride, (out_channels - x[1]) / 2, stride};
}

__global__ void shortcut_forward_kernel(const float* x, float* y, Geometry g) {
  const int64_t total = g.n * g.out_c * g.ho * g.wo;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = t % g.wo, i = (t / g.wo) % g.ho, q = t / (g.wo * g.ho);
    const int64_t img = q / g.out_c, c = q % g.out_c - g.before;
    y[t] = (c < 0 || c >= g.c) ? 0.0f : x[((img * g.c + c) * g.h + i * g.stride) * g.w + j * g.stride];
  }
}

__global__ void shortcut_backward_kernel(const float* dy, float* dx, Geometry g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t x = t % g.w, y = (t / g.w) % g.h, q = t / (g.w * g.h);
    const int64_t img = q / g.c, c = q % g.c;
    dx[t] = (y % g.stride != 0 || x % g.stride != 0)
                ? 0.0f
                : dy[((img * g.out_c + g.before + c) * g.ho + y / g.stride) * g.wo + x / g.stride];
  }
}

}  // namespace

Tensor shortcut_pad_forward(const Tensor& x, int64_t out_channels, int stride) {
  const Geometry g = geometry(x.shape(), out_channels, stride);
  Tensor y({g.n, g.out_c, g.ho, g.wo}, Device::CUDA);
  if (y.numel() == 0) return y;
  shortcut_forward_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(x.data(), y.data(), g);
  QNN_LAUNCH_CHECK("shortcut_pad x ", shape_str(x.shape()), " out_channels ", out_channels, " stride ", stride);
  return y;
}

Tensor shortcut_pad_backward(const Tensor& dy, const Shape& x_shape, int stride) {
  const Geometry g = geometry(x_shape, dy.size(1), stride);
  Tensor dx(x_shape, Device::CUDA);
  if (dx.numel() == 0) return dx;
  shortcut_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(dy.data(), dx.data(), g);
  QNN_LAUNCH_CHECK("shortcut_pad_backward dy ", shape_str(dy.shape()), " x ", shape_str(x_shape), " stride ", stride);
  return dx;
}

}  // namespace qnn::cuda
