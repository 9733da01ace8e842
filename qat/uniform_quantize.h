// The clamped uniform quantizer of DoReFa-Net and WRPN, on CPU and GPU
// (qat/uniform_quantize.cu beside qat/uniform_quantize.cpp):
//
//   y = round(clamp(x, lo, hi) * n) / n          (round half to even, a true division by n)
//
//   DoReFa activations (Zhou et al., arXiv 1606.06160, eq. 5 and 7): [lo, hi] = [0, 1],
//     n = 2^k - 1, the quantize_k of the paper (tensorpack's round(x * n) / n);
//   WRPN weights (Mishra et al., arXiv 1709.01134): [-1, 1], n = 2^(k-1) - 1: k - 1 magnitude bits
//     and a sign, so 0 and +-1 are levels (the paper's choice; Distiller uses (2^k - 1) / 2);
//   WRPN activations: as DoReFa's.
// Backward, the straight-through estimator through the rounding and the clamp's own gradient:
//   dx = dy where lo <= x <= hi, else 0 (PyTorch's clamp and TensorFlow's clip_by_value pass the
//   gradient at the bounds too). NaN stays NaN.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

// lo < hi finite, steps >= 1.
Tensor clamp_quantize_forward(const Tensor& x, float lo, float hi, int64_t steps);
Tensor clamp_quantize_backward(const Tensor& dy, const Tensor& x, float lo, float hi);

namespace cuda {
Tensor clamp_quantize_forward(const Tensor& x, float lo, float hi, float steps);
Tensor clamp_quantize_backward(const Tensor& dy, const Tensor& x, float lo, float hi);
}  // namespace cuda

}  // namespace qnn
