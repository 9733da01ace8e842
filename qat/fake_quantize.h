// Affine fake quantization: the kernels under quantization-aware training's range-linear and
// learned-step (LSQ) quantizers, on CPU and GPU (qat/fake_quantize.cu beside qat/fake_quantize.cpp).
//
//   y = (clamp(nearbyint(x * (1/scale)) + zero_point, qmin, qmax) - zero_point) * scale
//
// is PyTorch's fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine (axis 0), which
// model the rounding and saturation of integer inference (Jacob et al., CVPR 2018) while training
// stays in float. The arithmetic is PyTorch 1.13's, operation by operation (qat/fake_quant_math.h),
// so the results equal PyTorch's bit for bit (tests/qat/test_fake_quantize_torch.cpp).
//
// scale and zero_point are float tensors of shape [1] (Granularity::PerTensor) or [x.size(0)]
// (PerChannel: channel c is the c-th slice along axis 0), on x's device; the kernels read them
// there, so no value goes back to the host. The forward pass rounds the zero point half to even
// and clamps it into [qmin, qmax] (the identity on the integer zero points of observers).
//
// Gradients:
//   fake_quantize_backward: the straight-through estimator, dx = dy where
//     qmin <= nearbyint(x/scale) + zero_point <= qmax, else 0 (PyTorch's cached mask).
//   fake_quantize_learnable_backward: PyTorch's _fake_quantize_learnable_per_tensor_affine_backward
//     and _per_channel_affine_backward, i.e. LSQ's gradient (Esser et al., ICLR 2020) for the
//     scale and LSQ+'s for the zero point, each per-element term multiplied by grad_factor and
//     summed per channel (in double; PyTorch sums in float, so the sums agree to rounding).
//
// Checks: shapes and devices always; on the CPU also the values: scale finite and > 0, zero point
// finite (reading a GPU tensor's values would stall the stream, so on the GPU a scale <= 0 gives
// inf or NaN outputs, which the training loop's non-finite loss check catches).
#pragma once
#include "qat/quant_range.h"
#include "tensor/tensor.h"

namespace qnn {

Tensor fake_quantize_forward(const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantRange range,
                             Granularity granularity);

Tensor fake_quantize_backward(const Tensor& dy, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                              QuantRange range, Granularity granularity);

struct LearnableGradients {
  Tensor dx;           // x's shape
  Tensor dscale;       // scale's shape: [1] or [channels]
  Tensor dzero_point;  // the same
};

// grad_factor multiplies the scale and zero-point gradients (LSQ: 1/sqrt(N * qmax)). The zero
// point of this pass is PyTorch's: per channel rounded half to even and clamped; per tensor
// trunc(clamp(zero_point + 1/2)) (see backward_zero_point_per_tensor in qat/fake_quant_math.h).
LearnableGradients fake_quantize_learnable_backward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                                    const Tensor& zero_point, QuantRange range,
                                                    Granularity granularity, float grad_factor);

// Throws unless scale and zero_point have qparam_count(x, granularity) elements and live on x's
// device, and (CPU tensors) every scale is finite and positive and every zero point finite.
void check_qparams(const char* op, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                   QuantRange range, Granularity granularity);

// The CUDA twins (qat/fake_quantize.cu), called by the functions above for CUDA tensors after
// the checks; `channels` is scale's element count.
namespace cuda {
Tensor fake_quantize_forward(const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantRange range);
Tensor fake_quantize_backward(const Tensor& dy, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                              QuantRange range);
LearnableGradients fake_quantize_learnable_backward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                                    const Tensor& zero_point, QuantRange range,
                                                    Granularity granularity, float grad_factor);
}  // namespace cuda

}  // namespace qnn
