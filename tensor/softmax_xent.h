// Softmax cross-entropy, fused: the loss of a batch of logits z [N, K] with labels t_i in [0, K):
//   lse_i = m_i + log sum_k exp(z_ik - m_i),   m_i = max_k z_ik     (stable log-sum-exp)
//   loss  = (1/N) sum_i (lse_i - z_i,t_i)                           (mean of -log softmax)
// Backward, for the loss's gradient g (a one-element tensor, read by the kernel, not the caller):
//   dz_ik = g * (exp(z_ik - lse_i) - [k == t_i]) / N
// Only lse (N floats) is saved; the softmax is recomputed from z in backward.
// Labels are a float tensor [N] of class indices (exact up to 2^24 classes) on the logits'
// device, so a GPU step never copies labels from the host.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace qnn {

// Returns the loss, shape [1]; writes lse [N] (allocated here) for the backward pass.
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& lse);
Tensor cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& labels,
                              const Tensor& lse);

// Integer labels as the float tensor the kernels take, on `device`.
Tensor label_tensor(const std::vector<int32_t>& labels, Device device = Device::CPU);
// Shape and device checks shared by the CPU and CUDA versions.
void check_cross_entropy_inputs(const char* op, const Tensor& logits, const Tensor& labels);

namespace cuda {  // tensor/softmax_xent.cu; called by the functions above for CUDA tensors
Tensor cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& lse);
Tensor cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& labels,
                              const Tensor& lse);
}  // namespace cuda

}  // namespace qnn
