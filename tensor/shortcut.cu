// CUDA option-A shortcut: the twin of tensor/shortcut.cpp (formulas in tensor/shortcut.h). One
// thread per output element, each a copy or a zero, so the results equal the CPU's bit for bit.
//   forward:  y[n, k, i, j] = x[n, k - before, i*s, j*s] for before <= k < before + C, else 0
//   backward: dx[n, c, y, x] = dy[n, before + c, y/s, x/s] where s divides y and x, else 0
// (a gather over dx, so every element is written once and no zeroing pass is needed).
// Channels-last tensors (tensor/tensor.h) give channels-last results: the same values, in NHWC.
// bf16 tensors (docs/bf16.md) give bf16 results: the kernels are templated on the stored type T
// (float, or uint16_t holding bf16 bits) and copy words, so the values are again exactly x's (dy's).
#include "tensor/bf16.h"
#include "tensor/cuda_runtime.h"
#include "tensor/shortcut.h"

namespace qnn::cuda {

namespace {

struct Geometry {
  int64_t n, c, h, w, out_c, ho, wo, before;
  int stride;
  bool channels_last;
};

Geometry geometry(const Shape& x, int64_t out_channels, int stride, bool channels_last) {  // validated by shortcut.cpp
  return {x[0], x[1], x[2], x[3], out_channels, (x[2] + stride - 1) / stride,
          (x[3] + stride - 1) / stride, (out_channels - x[1]) / 2, stride, channels_last};
}

// Element (n, c, y, x) of a [N, channels, H, W] tensor in either format; at() is its offset.
struct Index {
  int64_t n, c, y, x;
};
__device__ Index index_of(int64_t t, int64_t channels, int64_t h, int64_t w, bool channels_last) {
  if (channels_last) return {t / (channels * w * h), t % channels, (t / (channels * w)) % h, (t / channels) % w};
  return {t / (w * h * channels), (t / (w * h)) % channels, (t / w) % h, t % w};
}
__device__ int64_t at(Index i, int64_t channels, int64_t h, int64_t w, bool channels_last) {
  return channels_last ? ((i.n * h + i.y) * w + i.x) * channels + i.c : ((i.n * channels + i.c) * h + i.y) * w + i.x;
}

template <class T>
__global__ void shortcut_forward_kernel(const T* x, T* y, Geometry g) {
  const int64_t total = g.n * g.out_c * g.ho * g.wo;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const Index o = index_of(t, g.out_c, g.ho, g.wo, g.channels_last);
    const Index in{o.n, o.c - g.before, o.y * g.stride, o.x * g.stride};
    y[t] = (in.c < 0 || in.c >= g.c) ? from_float<T>(0.0f) : x[at(in, g.c, g.h, g.w, g.channels_last)];
  }
}

template <class T>
__global__ void shortcut_backward_kernel(const T* dy, T* dx, Geometry g) {
  const int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const Index i = index_of(t, g.c, g.h, g.w, g.channels_last);
    const Index o{i.n, g.before + i.c, i.y / g.stride, i.x / g.stride};
    dx[t] = (i.y % g.stride != 0 || i.x % g.stride != 0) ? from_float<T>(0.0f)
                                                          : dy[at(o, g.out_c, g.ho, g.wo, g.channels_last)];
  }
}

template <class T>
void forward(const Tensor& x, Tensor& y, const Geometry& g) {
  shortcut_forward_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(static_cast<const T*>(x.raw()),
                                                                           static_cast<T*>(y.raw()), g);
}
template <class T>
void backward(const Tensor& dy, Tensor& dx, const Geometry& g) {
  shortcut_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, stream()>>>(static_cast<const T*>(dy.raw()),
                                                                             static_cast<T*>(dx.raw()), g);
}

}  // namespace

Tensor shortcut_pad_forward(const Tensor& x, int64_t out_channels, int stride) {
  const Geometry g = geometry(x.shape(), out_channels, stride, x.is_channels_last());
  Tensor y({g.n, g.out_c, g.ho, g.wo}, Device::CUDA, x.format(), x.dtype());
  if (y.numel() == 0) return y;
  if (x.is_bf16())
    forward<uint16_t>(x, y, g);
  else
    forward<float>(x, y, g);
  QNN_LAUNCH_CHECK("shortcut_pad x ", shape_str(x.shape()), " out_channels ", out_channels, " stride ", stride);
  return y;
}

Tensor shortcut_pad_backward(const Tensor& dy, const Shape& x_shape, int stride) {
  const Geometry g = geometry(x_shape, dy.size(1), stride, dy.is_channels_last());
  Tensor dx(x_shape, Device::CUDA, dy.format(), dy.dtype());
  if (dx.numel() == 0) return dx;
  if (dy.is_bf16())
    backward<uint16_t>(dy, dx, g);
  else
    backward<float>(dy, dx, g);
  QNN_LAUNCH_CHECK("shortcut_pad_backward dy ", shape_str(dy.shape()), " x ", shape_str(x_shape), " stride ", stride);
  return dx;
}

}  // namespace qnn::cuda
