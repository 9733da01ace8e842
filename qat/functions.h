// Differentiable quantizers for quantization-aware training: each computes its forward value with
// a kernel of qat/ and records a backward closure (autograd/variable.h), like the ops of
// autograd/functions.h. These are what quantized Conv2d, Linear and activation layers call on
// their weights and inputs. docs/qat.md explains the formulas and the conventions chosen.
//
//   fake_quantize            affine fake quantization with given qparams, straight-through
//                            gradient (PyTorch's fake_quantize_per_tensor_affine / _per_channel_affine)
//   fake_quantize_learnable  the same with the scale (and optionally the zero point) learned:
//                            LSQ (Esser et al., ICLR 2020) / LSQ+ gradients, exactly PyTorch's
//                            _fake_quantize_learnable_per_tensor_affine / _per_channel_affine
//   pact                     PACT's learned clipping + unsigned quantizer (arXiv 1805.06085)
//   dorefa_weight            DoReFa-Net's tanh-normalised weights (arXiv 1606.06160), built from
//                            dorefa_normalize (exact gradient) and dorefa_weight_levels (STE)
//   dorefa_activation        clamp to [0, 1], then k-bit quantize_k (STE inside [0, 1])
//   wrpn_weight              WRPN (arXiv 1709.01134): clamp to [-1, 1], k - 1 magnitude bits + sign
//   wrpn_activation          WRPN's activations: the same as dorefa_activation
#pragma once
#include "autograd/variable.h"
#include "qat/pact.h"
#include "qat/quant_range.h"

namespace qnn {

// scale, zero_point: [1] or [x.size(0)] float tensors on x's device (an observer's qparams). The
// zero points must be whole numbers in [qmin, qmax] (checked on the CPU, as PyTorch checks its
// integer zero points). Gradient: dx = dy where the unclamped integer lies in [qmin, qmax].
Variable fake_quantize(const Variable& x, const Tensor& scale, const Tensor& zero_point, QuantRange range,
                       Granularity granularity);

// scale, zero_point: [1] or [x.size(0)] Variables on x's device; scale receives a gradient when it
// requires one, and so does zero_point (LSQ learns the scale alone: give a zero point that does
// not require a gradient). The forward rounds the zero point half to even and clamps it; the
// backward follows PyTorch (qat/fake_quantize.h). grad_factor multiplies both qparam gradients
// (lsq_grad_factor() in qat/lsq.h gives LSQ's 1/sqrt(N Q_P)).
Variable fake_quantize_learnable(const Variable& x, const Variable& scale, const Variable& zero_point,
                                 QuantRange range, Granularity granularity, float grad_factor);

// x: any shape; alpha: a [1] Variable on x's device (the learned clipping level, used as
// max(alpha, alpha_min)); bits 2..8.
Variable pact(const Variable& x, const Variable& alpha, int bits, float alpha_min = kPactAlphaMin);

// f = tanh(w) / (2 max|tanh w|) + 1/2, with the exact gradient through tanh and the max.
Variable dorefa_normalize(const Variable& w);
// 2 round(f n) / n - 1, n = 2^bits - 1, with the straight-through gradient df = 2 dy.
Variable dorefa_weight_levels(const Variable& f, int bits);
// dorefa_weight_levels(dorefa_normalize(w), bits): levels in [-1, 1].
Variable dorefa_weight(const Variable& w, int bits);
// round(clamp(x, 0, 1) (2^bits - 1)) / (2^bits - 1); dx = dy where 0 <= x <= 1.
Variable dorefa_activation(const Variable& x, int bits);
// round(clamp(w, -1, 1) (2^(bits-1) - 1)) / (2^(bits-1) - 1); dw = dy where -1 <= w <= 1.
Variable wrpn_weight(const Variable& w, int bits);
Variable wrpn_activation(const Variable& x, int bits);

}  // namespace qnn
