// The SGD step on the GPU: the twin of sgd_update in optim/sgd.cpp, one fused grid-stride kernel
// over the flat parameter, gradient and momentum buffers. Each element runs the same function as
// the CPU loop (optim/sgd_update.h) with the CPU build's choice of fused multiply-add, through
// intrinsics nvcc does not re-contract, so the result equals the CPU's bit for bit. The learning
// rate is read from device memory (lr[0]): a captured CUDA graph sees each value set_lr() wrote.
#include "optim/sgd.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

template <bool kFma>
__global__ void sgd_plain_kernel(float* p, const float* g, const float* lr, int64_t n, float weight_decay) {
  const float rate = lr[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = sgd_plain<kFma>(p[i], g[i], rate, weight_decay);
}

template <bool kFma>
__global__ void sgd_momentum_kernel(float* p, const float* g, float* b, const float* lr, int64_t n,
                                    SGDCoefficients c) {
  const float rate = lr[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = sgd_momentum<kFma>(p[i], g[i], b[i], rate, c);
}

template <bool kFma>
void launch(Tensor& p, const Tensor& g, Tensor& b, const Tensor& lr, const SGDCoefficients& c) {
  const int64_t n = p.numel();
  if (c.momentum == 0.0f)
    sgd_plain_kernel<kFma><<<blocks_for(n), kThreads, 0, stream()>>>(p.data(), g.data(), lr.data(), n, c.weight_decay);
  else
    sgd_momentum_kernel<kFma><<<blocks_for(n), kThreads, 0, stream()>>>(p.data(), g.data(), b.data(), lr.data(), n, c);
}

}  // namespace

void sgd_update(Tensor& p, const Tensor& g, Tensor& b, const Tensor& lr, const SGDCoefficients& c, bool fma) {
  if (p.numel() == 0) return;
  if (fma)
    launch<true>(p, g, b, lr, c);
  else
    launch<false>(p, g, b, lr, c);
  QNN_LAUNCH_CHECK("sgd_update ", p.numel(), " parameters, momentum ", c.momentum, ", nesterov ", c.nesterov,
                   ", weight decay ", c.weight_decay);
}

}  // namespace qnn::cuda
