// CUDA softmax cross-entropy: the twin of tensor/softmax_xent.cpp (formulas in
// tensor/softmax_xent.h). Forward runs as one block: each thread takes rows i, i + 256, ... and
// computes the row's log-sum-exp in double as the CPU does, then the block adds the row losses in
// a fixed tree and writes the mean, so the loss is deterministic and never leaves the device.
// Backward reads the loss gradient from device memory, so neither pass waits for the host. An
// out-of-range label is not checked here (that would need a round trip to the host): it makes
// the loss NaN, which the training log shows.
#include <cmath>

#include "tensor/cuda_runtime.h"
#include "tensor/softmax_xent.h"

namespace qnn::cuda {

namespace {

constexpr int kRowThreads = 256;

__device__ int64_t label_at(const float* labels, int64_t i, int64_t classes) {
  const float t = labels[i];
  return (t >= 0.0f && t < float(classes)) ? int64_t(t) : -1;
}

__global__ void xent_forward_kernel(const float* z, const float* labels, int64_t n, int64_t classes,
                                    float* lse, float* loss) {
  __shared__ double shared[kRowThreads];
  double local = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float* row = z + i * classes;
    float m = row[0];
    for (int64_t k = 1; k < classes; ++k) m = fmaxf(m, row[k]);
    double s = 0.0;
    for (int64_t k = 0; k < classes; ++k) s += exp(double(row[k]) - m);
    const double l = m + log(s);
    lse[i] = float(l);
    const int64_t t = label_at(labels, i, classes);
    local += t >= 0 ? l - row[t] : NAN;
  }
  shared[threadIdx.x] = local;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = float(shared[0] / double(n));
}

__global__ void xent_backward_kernel(const float* dloss, const float* z, const float* labels,
                                     const float* lse, int64_t n, int64_t classes, float* dz) {
  const float g = dloss[0] / float(n);
  const int64_t total = n * classes;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < total; j += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = j / classes, k = j % classes;
    float v = g * expf(z[j] - lse[i]);
    if (k == label_at(labels, i, classes)) v -= g;
    dz[j] = v;
  }
}

}  // namespace

Tensor cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& lse) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  lse = Tensor({n}, Device::CUDA);
  Tensor loss({1}, Device::CUDA);
  xent_forward_kernel<<<1, kRowThreads, 0, stream()>>>(logits.data(), labels.data(), n, classes,
                                                       lse.data(), loss.data());
  QNN_LAUNCH_CHECK("cross_entropy logits ", shape_str(logits.shape()));
  return loss;
}

Tensor cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& labels,
                              const Tensor& lse) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  Tensor dz(logits.shape(), Device::CUDA);
  xent_backward_kernel<<<blocks_for(n * classes), kThreads, 0, stream()>>>(
      dloss.data(), logits.data(), labels.data(), lse.data(), n, classes, dz.data());
  QNN_LAUNCH_CHECK("cross_entropy_backward logits ", shape_str(logits.shape()));
  return dz;
}

}  // namespace qnn::cuda
