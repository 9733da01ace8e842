// CUDA per-channel scaling: the twin of tensor/channel_scale.cpp (formulas in
// tensor/channel_scale.h). The element-wise kernels use one thread per element and IEEE division
// and square root, as the CPU does, so they agree bit for bit. channel_dot gives each channel one
// block: its threads stride over the channel's elements in a fixed pattern, accumulating in
// double, and a shared-memory tree combines them, so repeated runs agree exactly. Along axis 1, a
// channels-last x is viewed as [N*H*W, C, 1] (tensor/channel_scale.cpp): the same values, visited
// in the same order as the NCHW walk. Along axis 0 its images are whole in either format, but
// the values of an image are visited in NHWC order.
#include "tensor/cuda_runtime.h"
#include "tensor/channel_scale.h"

namespace qnn::cuda {

namespace {

__global__ void channel_mul_kernel(const float* x, const float* s, float* y, ChannelView v, bool divide) {
  const int64_t total = v.outer * v.channels * v.inner;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const float f = s[(t / v.inner) % v.channels];
    y[t] = divide ? __fdiv_rn(x[t], f) : __fmul_rn(x[t], f);
  }
}

constexpr int kDotThreads = 256;

__global__ void channel_dot_kernel(const float* a, const float* b, float* d, ChannelView v) {
  __shared__ double partial[kDotThreads];
  const int64_t c = blockIdx.x, per_channel = v.outer * v.inner;
  double acc = 0;
  for (int64_t k = threadIdx.x; k < per_channel; k += kDotThreads) {
    const int64_t o = k / v.inner, i = k % v.inner;
    const int64_t at = (o * v.channels + c) * v.inner + i;
    acc += double(a[at]) * double(b[at]);
  }
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int width = kDotThreads / 2; width > 0; width /= 2) {
    if (threadIdx.x < width) partial[threadIdx.x] += partial[threadIdx.x + width];
    __syncthreads();
  }
  if (threadIdx.x == 0) d[c] = float(partial[0]);
}

__global__ void sqrt_plus_kernel(const float* v, float* y, float eps, int64_t n) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x)
    y[t] = __fsqrt_rn(__fadd_rn(v[t], eps));
}

__global__ void inverse_std_kernel(const float* v, float* y, float eps, int64_t n) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < n; t += int64_t(gridDim.x) * blockDim.x)
    y[t] = float(__drcp_rn(__dsqrt_rn(__dadd_rn(double(v[t]), double(eps)))));
}

Tensor scaled(const Tensor& x, const Tensor& s, ChannelView v, bool divide) {
  Tensor y = Tensor::empty_like(x);
  if (y.numel() == 0) return y;
  channel_mul_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(x.data(), s.data(), y.data(), v, divide);
  QNN_LAUNCH_CHECK(divide ? "channel_div" : "channel_mul", " x ", shape_str(x.shape()), " s ", shape_str(s.shape()));
  return y;
}

}  // namespace

Tensor channel_mul(const Tensor& x, const Tensor& s, ChannelView v) { return scaled(x, s, v, false); }
Tensor channel_div(const Tensor& x, const Tensor& s, ChannelView v) { return scaled(x, s, v, true); }

Tensor channel_dot(const Tensor& a, const Tensor& b, ChannelView v) {
  Tensor d({v.channels}, Device::CUDA);
  if (v.channels == 0) return d;
  channel_dot_kernel<<<unsigned(v.channels), kDotThreads, 0, stream()>>>(a.data(), b.data(), d.data(), v);
  QNN_LAUNCH_CHECK("channel_dot a ", shape_str(a.shape()));
  return d;
}

Tensor sqrt_plus(const Tensor& v, float eps) {
  Tensor y(v.shape(), Device::CUDA);
  if (y.numel() == 0) return y;
  sqrt_plus_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(v.data(), y.data(), eps, y.numel());
  QNN_LAUNCH_CHECK("sqrt_plus v ", shape_str(v.shape()));
  return y;
}

Tensor inverse_std(const Tensor& v, float eps) {
  Tensor y(v.shape(), Device::CUDA);
  if (y.numel() == 0) return y;
  inverse_std_kernel<<<blocks_for(y.numel()), kThreads, 0, stream()>>>(v.data(), y.data(), eps, y.numel());
  QNN_LAUNCH_CHECK("inverse_std v ", shape_str(v.shape()));
  return y;
}

}  // namespace qnn::cuda
