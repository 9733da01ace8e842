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
// bf16 tensors (docs/bf16.md): every kernel is templated on the stored type T (float, or uint16_t
// holding bf16 bits) and reads its values as floats (tensor/bf16.h's to_float), so the float
// instantiation is the float kernel. Max pooling compares the widened values (exact: the same
// winners) and stores y as bf16 (a copy of an input word); its backward sums the gradients in
// float as above and rounds dx once. The average reads bf16 x through plane_sum<uint16_t> and
// writes a float y; its backward writes dx = dy[q] / HW rounded once to bf16.
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
template <class T>
__device__ int64_t window_argmax(const T* plane, int64_t step, const Geometry& g, int64_t i, int64_t j) {
  const int64_t top = i * g.stride - g.padding, left = j * g.stride - g.padding;
  const int64_t y0 = top > 0 ? top : 0, y1 = top + g.kernel < g.h ? top + g.kernel : g.h;
  const int64_t x0 = left > 0 ? left : 0, x1 = left + g.kernel < g.w ? left + g.kernel : g.w;
  int64_t best = y0 * g.w + x0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x)
      if (to_float(plane[(y * g.w + x) * step]) > to_float(plane[best * step])) best = y * g.w + x;
  return best;
}

template <class T>
__global__ void max_pool_forward_kernel(const T* x, T* y, Geometry g) {
  const int64_t total = g.planes * g.ho * g.wo;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const PlaneCell out = plane_cell(t, g.ho * g.wo, g.channels, g.channels_last);
    const T* plane = x + plane_start(out, g.ho * g.wo, g.h * g.w, g);
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

template <class T>
__global__ void max_pool_backward_kernel(const T* dy, const T* x, T* dx, Geometry g) {
  const int64_t total = g.planes * g.h * g.w;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const PlaneCell in = plane_cell(t, g.h * g.w, g.channels, g.channels_last);
    const int64_t pixel = in.cell, r = pixel / g.w, c = pixel % g.w;
    const T* plane = x + in.plane;
    const T* gout = dy + plane_start(in, g.h * g.w, g.ho * g.wo, g);
    int64_t i0, i1, j0, j1;
    covering_cells(r, g, g.ho, i0, i1);
    covering_cells(c, g, g.wo, j0, j1);
    float sum = 0.0f;  // the CPU's zeroed dx element
    for (int64_t i = i0; i <= i1; ++i)
      for (int64_t j = j0; j <= j1; ++j)
        if (window_argmax(plane, in.step, g, i, j) == pixel) sum += to_float(gout[(i * g.wo + j) * in.step]);
    dx[t] = from_float<T>(sum);
  }
}

// Plane q = (n, c) starts at q * hw in NCHW, at n * hw * C + c in NHWC (values C apart).
template <class T>
__global__ void global_avg_forward_kernel(const T* x, float* y, int64_t planes, int64_t hw, int64_t channels,
                                          bool channels_last) {
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < planes; q += int64_t(gridDim.x) * blockDim.x) {
    const T* plane = channels_last ? x + (q / channels) * hw * channels + q % channels : x + q * hw;
    y[q] = static_cast<float>(plane_sum(plane, hw, channels_last ? channels : 1) / hw);
  }
}

template <class T>
__global__ void global_avg_backward_kernel(const float* dy, T* dx, int64_t planes, int64_t hw, int64_t channels,
                                           bool channels_last) {
  const int64_t total = planes * hw;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t q = channels_last ? t / (hw * channels) * channels + t % channels : t / hw;
    dx[t] = from_float<T>(dy[q] / static_cast<float>(hw));
  }
}

// The elements of a tensor whose stored type is T: float for float32, uint16_t for bf16.
template <class T>
const T* elements(const Tensor& t) {
  QNN_CHECK(t.dtype() == (sizeof(T) == 2 ? DType::bf16 : DType::f32), "pooling: a ", dtype_name(t.dtype()), " ",
            shape_str(t.shape()), " tensor among ", sizeof(T) == 2 ? "bfloat16" : "float32", " operands");
  return static_cast<const T*>(t.raw());
}
template <class T>
T* elements(Tensor& t) {
  return const_cast<T*>(elements<T>(static_cast<const Tensor&>(t)));
}

template <class T>
void max_pool_forward(const Tensor& x, Tensor& y, const Geometry& g) {
  max_pool_forward_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(elements<T>(x), elements<T>(y), g);
}
template <class T>
void max_pool_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const Geometry& g) {
  max_pool_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(elements<T>(dy), elements<T>(x),
                                                                              elements<T>(dx), g);
}
template <class T>
void global_avg_forward(const Tensor& x, Tensor& y) {
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  global_avg_forward_kernel<<<blocks_for(planes), kThreads, 0, stream()>>>(elements<T>(x), y.data(), planes, hw,
                                                                           x.size(1), x.is_channels_last());
}
template <class T>
void global_avg_backward(const Tensor& dy, Tensor& dx) {
  const int64_t planes = dx.size(0) * dx.size(1), hw = dx.size(2) * dx.size(3);
  global_avg_backward_kernel<<<blocks_for(planes * hw), kThreads, 0, stream()>>>(
      dy.data(), elements<T>(dx), planes, hw, dx.size(1), dx.is_channels_last());
}

}  // namespace

Tensor max_pool2d_forward(const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x, p);
  Tensor y({x.size(0), x.size(1), g.ho, g.wo}, Device::CUDA, x.format(), x.dtype());
  if (y.numel() == 0) return y;
  if (x.is_bf16())
    max_pool_forward<uint16_t>(x, y, g);
  else
    max_pool_forward<float>(x, y, g);
  QNN_LAUNCH_CHECK("max_pool2d x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return y;
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p) {
  const Geometry g = geometry(x, p);
  QNN_CHECK(dy.format() == x.format(), "max_pool2d_backward: the output gradient and x differ in memory format");
  Tensor dx = Tensor::empty_like(x);
  if (dx.numel() == 0) return dx;
  if (x.is_bf16())
    max_pool_backward<uint16_t>(dy, x, dx, g);
  else
    max_pool_backward<float>(dy, x, dx, g);
  QNN_LAUNCH_CHECK("max_pool2d_backward x ", shape_str(x.shape()), " kernel ", p.kernel, " stride ", p.stride);
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  Tensor y({x.size(0), x.size(1)}, Device::CUDA);  // float whatever x's type
  if (y.numel() == 0) return y;
  if (x.is_bf16())
    global_avg_forward<uint16_t>(x, y);
  else
    global_avg_forward<float>(x, y);
  QNN_LAUNCH_CHECK("global_avg_pool x ", shape_str(x.shape()));
  return y;
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape, MemoryFormat x_format, DType x_dtype) {
  Tensor dx(x_shape, Device::CUDA, x_format, x_dtype);
  if (dx.numel() == 0) return dx;
  if (x_dtype == DType::bf16)
    global_avg_backward<uint16_t>(dy, dx);
  else
    global_avg_backward<float>(dy, dx);
  QNN_LAUNCH_CHECK("global_avg_pool_backward x ", shape_str(x_shape));
  return dx;
}

}  // namespace qnn::cuda
