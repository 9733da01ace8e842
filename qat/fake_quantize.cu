// CUDA affine fake quantization: the twin of qat/fake_quantize.cpp (formulas in
// qat/fake_quant_math.h, shared by both, so results equal the CPU's bit for bit; the per-channel
// sums of the learnable backward are in double, grouped differently from the CPU's, see
// qat/channel_reduce_cuda.h). Scale and zero point are read from device memory by every thread,
// so the ops run inside a captured CUDA graph with qparams that change between replays.
#include "qat/channel_reduce_cuda.h"
#include "qat/channel_reduce.h"
#include "qat/fake_quant_math.h"
#include "qat/fake_quantize.h"

namespace qnn::cuda {

namespace {

__global__ void fake_quantize_kernel(const float* x, const float* scale, const float* zero_point, float* y, int64_t n,
                                     int64_t inner, float qmin, float qmax) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / inner;
    const float s = scale[c];
    y[i] = fake_quantize_value(x[i], s, 1.0f / s, forward_zero_point(zero_point[c], qmin, qmax), qmin, qmax);
  }
}

__global__ void fake_quantize_backward_kernel(const float* dy, const float* x, const float* scale,
                                              const float* zero_point, float* dx, int64_t n, int64_t inner,
                                              float qmin, float qmax) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = i / inner;
    const bool passes =
        fake_quantize_passes(x[i], 1.0f / scale[c], forward_zero_point(zero_point[c], qmin, qmax), qmin, qmax);
    dx[i] = dy[i] * (passes ? 1.0f : 0.0f);
  }
}

// One element of the learnable backward: writes dx and adds the scale and zero-point terms.
struct LearnableLoad {
  const float *dy, *x, *scale, *zero_point;
  float* dx;
  float qmin, qmax, grad_factor;
  bool per_tensor;
  __device__ void operator()(int64_t c, int64_t i, Sum2& acc) const {
    const float s = scale[c];
    const float z = per_tensor ? backward_zero_point_per_tensor(zero_point[c], qmin, qmax)
                               : forward_zero_point(zero_point[c], qmin, qmax);
    const LearnableGrads g = fake_quantize_learnable_grads(x[i], dy[i], s, 1.0f / s, z, qmin, qmax, grad_factor);
    dx[i] = g.dx;
    acc.a += g.dscale;
    acc.b += g.dzero_point;
  }
};

struct AddSum2 {
  __device__ void operator()(Sum2& a, const Sum2& b) const {
    a.a += b.a;
    a.b += b.b;
  }
};

struct StoreSum2 {
  float *a, *b;
  __device__ void operator()(int64_t c, const Sum2& s) const {
    a[c] = float(s.a);
    b[c] = float(s.b);
  }
};

}  // namespace

Tensor fake_quantize_forward(const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantRange range) {
  Tensor y = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  fake_quantize_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x.data(), scale.data(), zero_point.data(), y.data(),
                                                                  n, n / scale.numel(), float(range.qmin),
                                                                  float(range.qmax));
  QNN_LAUNCH_CHECK("fake_quantize ", shape_str(x.shape()));
  return y;
}

Tensor fake_quantize_backward(const Tensor& dy, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                              QuantRange range) {
  Tensor dx = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return dx;
  fake_quantize_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(
      dy.data(), x.data(), scale.data(), zero_point.data(), dx.data(), n, n / scale.numel(), float(range.qmin),
      float(range.qmax));
  QNN_LAUNCH_CHECK("fake_quantize_backward ", shape_str(x.shape()));
  return dx;
}

LearnableGradients fake_quantize_learnable_backward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                                    const Tensor& zero_point, QuantRange range,
                                                    Granularity granularity, float grad_factor) {
  LearnableGradients g{Tensor::empty_like(x), Tensor::zeros(scale.shape(), Device::CUDA),
                       Tensor::zeros(zero_point.shape(), Device::CUDA)};
  const int64_t channels = scale.numel();
  const LearnableLoad load{dy.data(), x.data(), scale.data(), zero_point.data(), g.dx.data(), float(range.qmin),
                           float(range.qmax), grad_factor, granularity == Granularity::PerTensor};
  reduce_channels("fake_quantize_learnable_backward", channels, x.numel() / channels, Sum2{0.0, 0.0}, load, AddSum2{},
                  StoreSum2{g.dscale.data(), g.dzero_point.data()});
  return g;
}

}  // namespace qnn::cuda
