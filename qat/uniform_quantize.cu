// CUDA clamped uniform quantizer: the twin of qat/uniform_quantize.cpp, with the same per-element
// formulas (qat/fake_quant_math.h): a product, a rounding and an IEEE division, so the results
// equal the CPU's bit for bit.
#include "qat/fake_quant_math.h"
#include "qat/uniform_quantize.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

__global__ void clamp_quantize_kernel(const float* x, float* y, int64_t n, float lo, float hi, float steps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = clamp_quantize_value(x[i], lo, hi, steps);
}

__global__ void clamp_quantize_backward_kernel(const float* dy, const float* x, float* dx, int64_t n, float lo,
                                               float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dx[i] = dy[i] * (clamp_passes(x[i], lo, hi) ? 1.0f : 0.0f);
}

}  // namespace

Tensor clamp_quantize_forward(const Tensor& x, float lo, float hi, float steps) {
  Tensor y = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  clamp_quantize_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(x.data(), y.data(), n, lo, hi, steps);
  QNN_LAUNCH_CHECK("clamp_quantize_forward ", shape_str(x.shape()));
  return y;
}

Tensor clamp_quantize_backward(const Tensor& dy, const Tensor& x, float lo, float hi) {
  Tensor dx = Tensor::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return dx;
  clamp_quantize_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dy.data(), x.data(), dx.data(), n, lo,
                                                                           hi);
  QNN_LAUNCH_CHECK("clamp_quantize_backward ", shape_str(x.shape()));
  return dx;
}

}  // namespace qnn::cuda
