// DoReFa-Net's weight quantizer (Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional
// Neural Networks with Low Bitwidth Gradients", arXiv 1606.06160, eq. 9), on CPU and GPU
// (qat/dorefa.cu beside qat/dorefa.cpp), in two steps that the autograd functions chain:
//
//   normalise:  t = tanh(w),  M = max|t| over the whole tensor,  f = t / (2M) + 1/2   in [0, 1]
//   levels:     w_q = 2 quantize_k(f) - 1 = 2 round(f n) / n - 1,   n = 2^k - 1
//
// The first step is differentiable (almost everywhere: not where two |t| tie for the max) and
// its gradient flows through tanh and the max exactly (formulas in qat/fake_quant_math.h); the
// second is a staircase whose gradient is the straight-through estimator, dw_q/df = 2. So the
// normalisation is checked against finite differences and the levels against their definition.
// The weights' levels are the odd multiples of 1/n in [-1, 1] (0 is not one of them).
//
// tanh is the C library's tanhf on the CPU and CUDA's tanhf on the GPU; both are within 2 ulp of
// the true value but not always equal, so the GPU's t, M and f agree with the CPU's to a few ulps,
// not bit for bit (the levels, computed from f, then agree except where f n lies within those
// ulps of a rounding tie).
#pragma once
#include "tensor/tensor.h"

namespace qnn {

struct DorefaNormalized {
  Tensor f;        // w's shape, in [0, 1]
  Tensor t;        // tanh(w), kept for the backward pass
  Tensor max_abs;  // [1]: M, on w's device
};

DorefaNormalized dorefa_normalize_forward(const Tensor& w);
// dw from the gradient of f, the forward's t and M.
Tensor dorefa_normalize_backward(const Tensor& df, const Tensor& t, const Tensor& max_abs);
// 2 round(f n) / n - 1 with n = 2^bits - 1, bits 2..8 (f is clamped into [0, 1] first).
Tensor dorefa_weight_levels(const Tensor& f, int bits);

namespace cuda {
DorefaNormalized dorefa_normalize_forward(const Tensor& w);
Tensor dorefa_normalize_backward(const Tensor& df, const Tensor& t, const Tensor& max_abs);
Tensor dorefa_weight_levels(const Tensor& f, float steps);
}  // namespace cuda

}  // namespace qnn
