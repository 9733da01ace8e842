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
// Channels-last tensors (tensor/tensor.h) are pooled in place of their planes: a plane (n, c) is
// then the values c, c + C, c + 2C, ... of image n, visited in the same order, so the results are
// the same bits; results keep the input's format.
#include "tensor/cuda_runtime.h"
#include "tensor/pool.h"

namespace qnn::cuda {

namespace {

struct Geometry {
  int64_t planes, channels, h, w, ho, wo;
  int kernel, stride, padding;
  bool channels_last;
};

Geometry geometry(const Tensor& x, PoolParams p) {  // shapes were validated by tensor/pool.cpp
  Geometry g{x.size(0) * x.size(1), x.size(1), x.size(2), x.size(3), 0, 0, p.kernel, p.stride, p.padding,
             x.is_channels_last()};
  g.ho = (g.h + 2 * p.padding - p.kernel) / p.stride + 1;
  g.wo = (g.w + 2 * p.padding - p.kernel) / p.stride + 1;
  return g;
}

// Element t of a tensor of planes of `cells` values: its plane's first value (`plane`, an offset),
// the distance between the plane's values (`step`) and its cell within the plane.
struct PlaneCell {
  int64_t plane, step, cell;
};
__device__ PlaneCell plane_cell(int64_t t, int64_t cells, int64_t channels, bool channels_last) {
  if (!channels_last) return {t / cells * cells, 1, t % cells};
  const int64_t c = t % channels, cell = (t / channels) % cells, n = t / (channels * cells);
  return {n * cells * channels + c, channels, cell};
}
// The same plane's first value in a tensor of planes of `cells` values.
__device__ int64_t plane_start(const PlaneCell& p, int64_t from_cells, int64_t cells, const Geometry& g) {
  if (!g.channels_last) return p.plane / from_cells * cells;
  const int64_t n = p.plane / (from_cells * g.channels), c = p.plane % g.channels;
  return n * cells * g.channels + c;
}

// Index (within the plane, in cells) of the first maximum of output cell (i, j)'s window: the
// CPU's window_argmax in tensor/pool.cpp, line for line; the plane's values lie `step` apart.
__device__ int64_t window_argmax(const float* plane, int64_t step, const Geometry& g, int64_t i, int64_t j) {
  const int64_t top = i * g.stride - g.padding, left = j * g.stride - g.padding;
  const int64_t y0 = top > 0 ? top : 0, y1 = top + g.kernel < g.h ? top + g.kernel : g.h;
  const int64_t x0 = left > 0 ? left : 0, x1 = left + g.kernel < g.w ? left + g.kernel : g.w;
  int64_t best = y0 * g.w + x0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x)
      if (plane[(y * g.w + x) * step] > plane[best * step]) best = y * g.w + x;
  return best;
}

__global__ void max_pool_forward_kernel(const float* x, float* y, Geometry g) {
  const int64_t total = g.planes * g.ho * g.wo;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const PlaneCell out = plane_cell(t, g.ho * g.wo, g.channels, g.channels_last);
    const float* plane = x + plane_start(out, g.ho * g.wo, g.h * g.w, g);
    y[t] = plane[window_argmax(plane, out.step, g, out.cell / g.wo, out.cell % g.wo) * out.step];
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
    const PlaneCell in = plane_cell(t, g.h * g.w, g.channels, g.channels_last);
    const int64_t pixel = in.cell, r = pixel / g.w, c = pixel % g.w;
    const float* plane = x + in.plane;
    const float* gout = dy + plane_start(in, g.h * g.w, g.ho * g.wo, g);
    int64_t i0, i1, j0, j1;
    covering_cells(r, g, g.ho, i0, i1);
    covering_cells(c, g, g.wo, j0, j1);
    float sum = 0.0f;  // the CPU's zeroed dx element
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j)
        if (window_argmax(plane, in.step, g, i, j) == pixel) sum += gout[(i * g.wo + j) * in.step];
    dx[t] = sum;
  }
}

// Plane q = (n, c) starts at q * hw in NCHW, at n * hw * C + c in NHWC (values C apart).
__global__ void global_avg_forward_kernel(const float* x, float* y, int64_t planes, int64_t hw, int64_t channels,
                                          bool channels_last) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < planes; q += int64_t(gridDim.x) * blockDim.x) {
    const float* plane = channels_last ? x + (q / channels) * hw * channels + q % channels : x + q * hw;
    y[q] = static_cast<float>(plane_sum(plane, hw, channels_last ? channels : 1) / hw);
  }
}

__global__ void global_avg_backward_kernel(const float* dy, float* dx, int64_t planes, int64_t hw, int64_t channels,
                                           bool channels_last) {
  const int64_t total = planes * hw;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = channels_last ? t / (hw * channels) * channels + t % channels : t / hw;
    dx[t] = dy[q] / static_cast<float>(hw);
  }
}

}  // namespace

Tensor max_pool2d_forward(const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x, p);
  Tensor y({x.size(0), x.size(1), g.ho, g.wo}, Device::CUDA, x.format());
  if (y.numel() == 0) return y;
  max_pool_forward_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(x.data(), y.data(), g);
  QNN_LAUNCH_CHECK("max_pool2d x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return y;
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x, p);
  QNN_CHECK(dy.format() == x.format(), "max_pool2d_backward: the output gradient and x differ in memory format");
  Tensor dx = Tensor::empty_like(x);
  if (dx.numel() == 0) return dx;
  max_pool_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(dy.data(), x.data(), dx.data(), g);
  QNN_LAUNCH_CHECK("max_pool2d_backward x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor y({x.size(0), x.size(1)}, Device::CUDA);
  if (planes == 0) return y;
  global_avg_forward_kernel<<<blocks_for(planes), kThreads, 0, stream()>>>(x.data(), y.data(), planes, hw, x.size(1),
                                                                           x.is_channels_last());
  QNN_LAUNCH_CHECK("global_avg_pool x ", shape_str(x.shape()));
  return y;
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape, MemoryFormat x_format) {
  const int64_t planes = x_shape[0] * x_shape[1], hw = x_shape[2] * x_shape[3];
  Tensor dx(x_shape, Device::CUDA, x_format);
  if (planes * hw == 0) return dx;
  global_avg_backward_kernel<<<blocks_for(planes * hw), kThreads, 0, stream()>>>(
      dy.data(), dx.data(), planes, hw, x_shape[1], x_format == MemoryFormat::channels_last);
  QNN_LAUNCH_CHECK("global_avg_pool_backward x ", shape_str(x_shape));
  return dx;
}

}  // namespace qnn::cuda
