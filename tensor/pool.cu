// CUDA pooling kernels: the twins of tensor/pool.cpp (formulas in tensor/pool.h), bit-identical
// to the CPU.
//   max_pool2d_forward: one thread per output cell; the window's first maximum is searched in the
//     CPU's row-major order with the CPU's strict `>`, so the same element wins.
//   max_pool2d_backward: a gather, one thread per input pixel. The CPU scatters each dy[i, j] into
//     its window's first maximum, cells in row-major order, onto a zeroed dx; here the pixel walks
//     the output cells whose windows contain it, in the same row-major order, and adds dy[i, j]
//     wherever it is that window's first maximum (recomputed from x as the CPU does). Same
//     additions in the same order, no atomics: deterministic and equal to the CPU bit for bit.
//   global_avg_pool_forward: one thread per plane running plane_sum (tensor/pool.h), the very
//     function the CPU runs, then the same division.
//   global_avg_pool_backward: one thread per input element, dy[q] / HW as on the CPU.
#include "tensor/cuda_runtime.h"
#include "tensor/pool.h"

namespace qnn::cuda {

namespace {

struct Geometry {
  int64_t planes, h, w, ho, wo;
  int kernel, stride, padding;
};

Geometry geometry(const Shape& x, PoolParams p) {  // shapes were validated by tensor/pool.cpp
  Geometry g{x[0] * x[1], x[2], x[3], 0, 0, p.kernel, p.stride, p.padding};
  g.ho = (g.h + 2 * p.padding - p.kernel) / p.stride + 1;
  g.wo = (g.w + 2 * p.padding - p.kernel) / p.stride + 1;
  return g;
}

// Index (within the plane) of the first maximum of output cell (i, j)'s window: the CPU's
// window_argmax in tensor/pool.cpp, line for line.
__device__ int64_t window_argmax(const float* plane, const Geometry& g, int64_t i, int64_t j) {
  const int64_t top = i * g.stride - g.padding, left = j * g.stride - g.padding;
  const int64_t y0 = top > 0 ? top : 0, y1 = top + g.kernel < g.h ? top + g.kernel : g.h;
  const int64_t x0 = left > 0 ? left : 0, x1 = left + g.kernel < g.w ? left + g.kernel : g.w;
  int64_t best = y0 * g.w + x0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x)
      if (plane[y * g.w + x] > plane[best]) best = y * g.w + x;
  return best;
}

__global__ void max_pool_forward_kernel(const float* x, float* y, Geometry g) {
  const int64_t total = g.planes * g.ho * g.wo;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = t / (g.ho * g.wo), cell = t % (g.ho * g.wo);
    const float* plane = x + q * g.h * g.w;
    y[t] = plane[window_argmax(plane, g, cell / g.wo, cell % g.wo)];
  }
}

// Output cells i whose window rows [i*s - p, i*s - p + k) contain row r: i*s >= r + p - k + 1 and
// i*s <= r + p, clipped to [0, n). Writes the range [first, last] (empty when first > last).
__device__ void covering_cells(int64_t r, const Geometry& g, int64_t n, int64_t& first, int64_t& last) {
  const int64_t low = r + g.padding - g.kernel + 1;  // may be negative
  first = low <= 0 ? 0 : (low + g.stride - 1) / g.stride;
  last = (r + g.padding) / g.stride;  // r + p >= 0
  if (last > n - 1) last = n - 1;
}

__global__ void max_pool_backward_kernel(const float* dy, const float* x, float* dx, Geometry g) {
  const int64_t total = g.planes * g.h * g.w;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = t / (g.h * g.w), pixel = t % (g.h * g.w);
    const int64_t r = pixel / g.w, c = pixel % g.w;
    const float* plane = x + q * g.h * g.w;
    const float* gout = dy + q * g.ho * g.wo;
    int64_t i0, i1, j0, j1;
    covering_cells(r, g, g.ho, i0, i1);
    covering_cells(c, g, g.wo, j0, j1);
    float sum = 0.0f;  // the CPU's zeroed dx element
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j)
        if (window_argmax(plane, g, i, j) == pixel) sum += gout[i * g.wo + j];
    dx[t] = sum;
  }
}

__global__ void global_avg_forward_kernel(const float* x, float* y, int64_t planes, int64_t hw) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < planes; q += int64_t(gridDim.x) * blockDim.x)
    y[q] = static_cast<float>(plane_sum(x + q * hw, hw) / hw);
}

__global__ void global_avg_backward_kernel(const float* dy, float* dx, int64_t planes, int64_t hw) {
  const int64_t total = planes * hw;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    dx[t] = dy[t / hw] / static_cast<float>(hw);
}

}  // namespace

Tensor max_pool2d_forward(const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x.shape(), p);
  Tensor y({x.size(0), x.size(1), g.ho, g.wo}, Device::CUDA);
  if (y.numel() == 0) return y;
  max_pool_forward_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(x.data(), y.data(), g);
  QNN_LAUNCH_CHECK("max_pool2d x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return y;
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x.shape(), p);
  Tensor dx(x.shape(), Device::CUDA);
  if (dx.numel() == 0) return dx;
  max_pool_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(dy.data(), x.data(), dx.data(), g);
  QNN_LAUNCH_CHECK("max_pool2d_backward x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor y({x.size(0), x.size(1)}, Device::CUDA);
  if (planes == 0) return y;
  global_avg_forward_kernel<<<blocks_for(planes), kThreads, 0, stream()>>>(x.data(), y.data(), planes, hw);
  QNN_LAUNCH_CHECK("global_avg_pool x ", shape_str(x.shape()));
  return y;
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape) {
  const int64_t planes = x_shape[0] * x_shape[1], hw = x_shape[2] * x_shape[3];
  Tensor dx(x_shape, Device::CUDA);
  if (planes * hw == 0) return dx;
  global_avg_backward_kernel<<<blocks_for(planes * hw), kThreads, 0, stream()>>>(dy.data(), dx.data(), planes, hw);
  QNN_LAUNCH_CHECK("global_avg_pool_backward x ", shape_str(x_shape));
  return dx;
}

}  // namespace qnn::cuda
