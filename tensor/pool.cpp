// CPU pooling kernels, one thread per group of (n, c) planes (see tensor/pool.h). The checks
// here run before a CUDA tensor is sent to its twin (tensor/pool.cu) and touch no elements, so
// bf16 tensors, which only the GPU holds, pass through them; the CPU loops are float only.
#include "tensor/pool.h"

#include "tensor/device.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace qnn {

namespace {

struct PoolGeometry {
  int64_t planes, h, w, ho, wo;
};

PoolGeometry pool_geometry(const char* op, const Shape& x, PoolParams p) {
  if (x.size() != 4)
    throw Error(str("[", op, "] expected x of shape [N, C, H, W], got ", shape_str(x)));
  if (p.kernel < 1 || p.stride < 1 || p.padding < 0 || 2 * p.padding > p.kernel)
    throw Error(str("[", op, "] expected kernel >= 1, stride >= 1 and 0 <= padding <= kernel / 2, got kernel ",
                    p.kernel, ", stride ", p.stride, ", padding ", p.padding));
  PoolGeometry g{x[0] * x[1], x[2], x[3], 0, 0};
  g.ho = (g.h + 2 * p.padding - p.kernel) / p.stride + 1;
  g.wo = (g.w + 2 * p.padding - p.kernel) / p.stride + 1;
  if (g.h + 2 * p.padding < p.kernel || g.w + 2 * p.padding < p.kernel)
    throw Error(str("[", op, "] kernel ", p.kernel, " larger than padded input ", shape_str(x)));
  return g;
}

// Index (within the plane) of the first maximum of output cell (i, j)'s window.
inline int64_t window_argmax(const float* plane, const PoolGeometry& g, PoolParams p, int64_t i,
                             int64_t j) {
  const int64_t y0 = std::max<int64_t>(i * p.stride - p.padding, 0);
  const int64_t y1 = std::min<int64_t>(i * p.stride - p.padding + p.kernel, g.h);
  const int64_t x0 = std::max<int64_t>(j * p.stride - p.padding, 0);
  const int64_t x1 = std::min<int64_t>(j * p.stride - p.padding + p.kernel, g.w);
  int64_t best = y0 * g.w + x0;
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x)
      if (plane[y * g.w + x] > plane[best]) best = y * g.w + x;
  return best;
}

}  // namespace

Tensor max_pool2d_forward(const Tensor& x, PoolParams p) {
  const PoolGeometry g = pool_geometry("max_pool2d", x.shape(), p);
  QNN_ON_CUDA(x, cuda::max_pool2d_forward(x, p));
  Tensor y({x.size(0), x.size(1), g.ho, g.wo}, x.device());
#pragma omp parallel for schedule(static)
  for (int64_t q = 0; q < g.planes; ++q) {
    const float* plane = x.data() + q * g.h * g.w;
    float* out = y.data() + q * g.ho * g.wo;
    for (int64_t i = 0; i < g.ho; ++i)
      for (int64_t j = 0; j < g.wo; ++j) out[i * g.wo + j] = plane[window_argmax(plane, g, p, i, j)];
  }
  return y;
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, PoolParams p) {
  const PoolGeometry g = pool_geometry("max_pool2d_backward", x.shape(), p);
  QNN_CHECK(dy.shape() == Shape({x.size(0), x.size(1), g.ho, g.wo}), "output gradient ",
            shape_str(dy.shape()), " expected ", shape_str({x.size(0), x.size(1), g.ho, g.wo}));
  QNN_CHECK(dy.device() == x.device(), "output gradient on ", device_name(dy.device()), ", x on ",
            device_name(x.device()));
  QNN_CHECK(dy.dtype() == x.dtype(), "output gradient is ", dtype_name(dy.dtype()), ", x is ",
            dtype_name(x.dtype()), ": expected the same element type");
  QNN_ON_CUDA(x, cuda::max_pool2d_backward(dy, x, p));
  // Each thread zeroes the planes it scatters into (no serial pass over the whole tensor). The
  // maxima of an output row are found first and then scattered: interleaving the two, every
  // store into dx (which the compiler must assume may alias x) would force the window's values
  // to be reloaded, and overlapping windows would chain on store-to-load forwarding (measured
  // 1.6x slower for ResNet's 3x3 stride-2 stem pool).
  Tensor dx(x.shape(), x.device());
#pragma omp parallel
  {
    std::vector<int64_t> at(static_cast<size_t>(g.wo));
#pragma omp for schedule(static)
    for (int64_t q = 0; q < g.planes; ++q) {
      const float* plane = x.data() + q * g.h * g.w;
      const float* gout = dy.data() + q * g.ho * g.wo;
      float* gin = dx.data() + q * g.h * g.w;
      std::fill(gin, gin + g.h * g.w, 0.0f);
      for (int64_t i = 0; i < g.ho; ++i) {
        for (int64_t j = 0; j < g.wo; ++j) at[j] = window_argmax(plane, g, p, i, j);
        for (int64_t j = 0; j < g.wo; ++j) gin[at[j]] += gout[i * g.wo + j];
      }
    }
  }
  return dx;
}

Tensor global_avg_pool_forward(const Tensor& x) {
  QNN_CHECK(x.dim() == 4 && x.size(2) * x.size(3) > 0, "expected x of shape [N, C, H, W] with H, W > 0, got ",
            shape_str(x.shape()));
  QNN_ON_CUDA(x, cuda::global_avg_pool_forward(x));
  const int64_t planes = x.size(0) * x.size(1), hw = x.size(2) * x.size(3);
  Tensor y({x.size(0), x.size(1)}, x.device());
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static) if (planes * hw >= 32768)
  for (int64_t q = 0; q < planes; ++q) py[q] = static_cast<float>(plane_sum(px + q * hw, hw) / hw);
  return y;
}

Tensor global_avg_pool_backward(const Tensor& dy, const Shape& x_shape, MemoryFormat x_format, DType x_dtype) {
  QNN_CHECK(x_shape.size() == 4 && dy.shape() == Shape({x_shape[0], x_shape[1]}), "output gradient ",
            shape_str(dy.shape()), " does not fit input ", shape_str(x_shape));
  QNN_CHECK(dy.dtype() == DType::f32, "the output gradient is ", dtype_name(dy.dtype()),
            ", expected float32 (the pooled values are float whatever x's type)");
  QNN_ON_CUDA(dy, cuda::global_avg_pool_backward(dy, x_shape, x_format, x_dtype));
  QNN_CHECK(x_format == MemoryFormat::contiguous, "global_avg_pool_backward: channels-last is a GPU format");
  QNN_CHECK(x_dtype == DType::f32, "x's type ", dtype_name(x_dtype), " is a GPU type: on the CPU x is float32");
  const int64_t planes = x_shape[0] * x_shape[1], hw = x_shape[2] * x_shape[3];
  Tensor dx(x_shape, dy.device());
  const float* pdy = dy.data();
  float* pdx = dx.data();
#pragma omp parallel for schedule(static) if (planes * hw >= 32768)
  for (int64_t q = 0; q < planes; ++q) {
    const float v = pdy[q] / static_cast<float>(hw);
#pragma omp simd
    for (int64_t i = 0; i < hw; ++i) pdx[q * hw + i] = v;
  }
  return dx;
}

}  // namespace qnn
