// CUDA PACT: the twin of qat/pact.cpp. Every thread reads alpha from device memory and forms the
// step alpha / n and its reciprocal as the CPU does, so outputs and dx equal the CPU's bit for bit;
// alpha's gradient is a double sum grouped as in qat/channel_reduce_cuda.h.
#include "qat/channel_reduce.h"
#include "qat/channel_reduce_cuda.h"
#include "qat/fake_quant_math.h"
#include "qat/pact.h"

namespace qnn::cuda {

namespace {

__global__ void pact_kernel(const float* x, const float* alpha, float* y, int64_t n, float steps, float alpha_min) {
  const float a = pact_clip_level(alpha[0], alpha_min);
  const float s = a / steps, inv = 1.0f / s;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = fake_quantize_value(x[i], s, inv, 0.0f, 0.0f, steps);
}

struct PactLoad {
  const float *dy, *x, *alpha;
  float* dx;
  float alpha_min;
  __device__ void operator()(int64_t, int64_t i, Sum1& acc) const {
    const float a = pact_clip_level(alpha[0], alpha_min);
    dx[i] = dy[i] * (x[i] > 0.0f && x[i] < a ? 1.0f : 0.0f);
    if (x[i] >= a) acc.a += dy[i];
  }
};

struct AddSum1 {
  __device__ void operator()(Sum1& s, const Sum1& t) const { s.a += t.a; }
};

struct StoreSum1 {
  float* out;
  __device__ void operator()(int64_t c, const Sum1& s) const { out[c] = float(s.a); }
};

}  // namespace

Tensor pact_forward(const Tensor& x, const Tensor& alpha, float steps, float alpha_min) {
  Tensor y = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  pact_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x.data(), alpha.data(), y.data(), n, steps, alpha_min);
  QNN_LAUNCH_CHECK("pact_forward ", shape_str(x.shape()));
  return y;
}

PactGradients pact_backward(const Tensor& dy, const Tensor& x, const Tensor& alpha, float alpha_min) {
  PactGradients g{Tensor::empty_like(x), Tensor::zeros({1}, Device::CUDA)};
  reduce_channels("pact_backward", 1, x.numel(), Sum1{0.0},
                  PactLoad{dy.data(), x.data(), alpha.data(), g.dx.data(), alpha_min}, AddSum1{},
                  StoreSum1{g.dalpha.data()});
  return g;
}

}  // namespace qnn::cuda
