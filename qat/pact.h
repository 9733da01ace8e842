// PACT, parameterized clipping activation (Choi et al., "PACT: Parameterized Clipping Activation
// for Quantized Neural Networks", arXiv 1805.06085): a ReLU whose upper clipping level alpha is
// learned, followed by a k-bit unsigned uniform quantizer on [0, alpha]:
//
//   y = clamp(x, 0, alpha),   y_q = round(y * n / alpha) * alpha / n,   n = 2^k - 1
//
// computed as affine fake quantization with scale s = alpha / n, zero point 0 and range [0, n]
// (y_q = s * clamp(nearbyint(x * (1/s)), 0, n), which equals quantizing the clamped value: x >= alpha
// rounds to n or beyond and saturates there), with the arithmetic of qat/fake_quant_math.h.
// Gradients (the paper's eq. 3-4, with the straight-through estimator for the rounding):
//   dy_q/dx     = 1 where 0 < x < alpha, else 0
//   dy_q/dalpha = 1 where x >= alpha,   else 0      (summed over the tensor)
// The ties follow Distiller's formulation relu(x) then where(x < alpha, x, alpha): x = 0 passes
// nothing, x = alpha sends its gradient to alpha.
//
// alpha is a [1] tensor on x's device, read there by the kernels. It is used as
// max(alpha, alpha_min) (pact_clip_level), and the guard passes alpha's gradient through
// unchanged, so an alpha pushed below the floor still learns its way back. The CPU checks alpha is
// not NaN and alpha_min is positive; bits are 2 to 8.
#pragma once
#include "tensor/tensor.h"

namespace qnn {

// The default floor of alpha: far below any useful clipping level, far above float's smallest
// normal number, so alpha / n and its reciprocal stay finite.
constexpr float kPactAlphaMin = 1e-3f;

Tensor pact_forward(const Tensor& x, const Tensor& alpha, int bits, float alpha_min = kPactAlphaMin);

struct PactGradients {
  Tensor dx;      // x's shape
  Tensor dalpha;  // [1]
};
PactGradients pact_backward(const Tensor& dy, const Tensor& x, const Tensor& alpha, int bits,
                            float alpha_min = kPactAlphaMin);

namespace cuda {
Tensor pact_forward(const Tensor& x, const Tensor& alpha, float steps, float alpha_min);
PactGradients pact_backward(const Tensor& dy, const Tensor& x, const Tensor& alpha, float alpha_min);
}  // namespace cuda

}  // namespace qnn
