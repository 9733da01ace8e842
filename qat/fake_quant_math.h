// The per-element arithmetic of fake quantization, written once for the CPU loops (qat/*.cpp)
// and the CUDA kernels (qat/*.cu), so both run the same float operations in the same order and
// agree bit for bit. Each formula reproduces PyTorch 1.13's CPU kernels operation by operation
// (aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp), so that qnn's results
// equal PyTorch's exactly, not only to within rounding:
//
//   forward (fake_quantize_per_tensor_affine, _per_channel_affine, and the learnable ops):
//     inv_scale = 1 / scale                          (one float division, per scale)
//     q = nearbyint(x * inv_scale) + zero_point      (a float product, rounded half to even)
//     y = (clamp(q, qmin, qmax) - zero_point) * scale
//   PyTorch multiplies by the reciprocal rather than dividing: x * (1/s) and x / s round to
//   different integers for some x (about 1 in 400,000 random values at s = 0.1), and the fixture
//   holds such values. The STE passes the gradient where qmin <= q <= qmax.
//
//   learnable backward (_fake_quantize_learnable_per_tensor_affine and _per_channel_affine, the
//   gradient of Esser et al., "Learned Step Size Quantization", ICLR 2020, eq. 3, with the
//   zero point's gradient of LSQ+ (Bhalgat et al., CVPR-W 2020)), with z the backward zero point:
//     q = nearbyint(fma(x, inv_scale, z))            (one rounding: PyTorch's AVX2 kernel is
//                                                     compiled with -mfma and contracts it)
//     inside [qmin, qmax]:  dx = dy,  dscale = dy * fma(q - z, scale, -x) * inv_scale * g,  dz = 0
//     below:                dx = 0,   dscale = dy * (qmin - z) * g,   dz = dy * -1 * scale * g
//     above:                dx = 0,   dscale = dy * (qmax - z) * g,   dz = dy * -1 * scale * g
//   with g the grad_factor (LSQ: 1/sqrt(N Q_P)); fma(q - z, scale, -x) is (x_fq - x) with the
//   product unrounded, again as the contracted PyTorch kernel computes it. Every product is
//   left to right as PyTorch writes it.
//
// Rounding is half to even everywhere (nearbyint in the default rounding mode, rintf on the GPU),
// as torch.round and PyTorch's fake quantization do. NaN stays NaN in every output (comparisons
// instead of fminf/fmaxf; PyTorch's result for NaN is an undefined float-to-integer cast), and
// +-inf saturates to qmax/qmin.
#pragma once
#include <cmath>

#include "tensor/random.h"  // QNN_HOST_DEVICE

namespace qnn {

QNN_HOST_DEVICE float round_half_even(float v) {
#ifdef __CUDA_ARCH__
  return rintf(v);
#else
  return std::nearbyint(v);
#endif
}

// clamp that keeps NaN (a NaN compares false both ways and falls through).
QNN_HOST_DEVICE float clamp_keep_nan(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The zero point the forward pass uses: rounded half to even and clamped into the range
// (PyTorch's learnable ops; for the integer zero points of the plain op this is the identity).
QNN_HOST_DEVICE float forward_zero_point(float zp, float qmin, float qmax) {
  return clamp_keep_nan(round_half_even(zp), qmin, qmax);
}

// The zero point of the learnable backward pass. Per channel, PyTorch rounds as the forward does
// (zero_point.round().clamp(qmin, qmax)); per tensor it adds 1/2, clamps and truncates toward zero
// (_get_zero_point_from_tensor(..., is_forward = false)), so 2.5 becomes 3 and -1.7 becomes -1
// there while the forward uses 2 and -2. qnn reproduces both.
QNN_HOST_DEVICE float backward_zero_point_per_tensor(float zp, float qmin, float qmax) {
  return truncf(clamp_keep_nan(zp + 0.5f, qmin, qmax));
}

QNN_HOST_DEVICE float fake_quantize_value(float x, float scale, float inv_scale, float zp, float qmin, float qmax) {
  const float q = round_half_even(x * inv_scale) + zp;
  return (clamp_keep_nan(q, qmin, qmax) - zp) * scale;
}

// Whether the straight-through estimator passes x's gradient: its integer is inside the range.
QNN_HOST_DEVICE bool fake_quantize_passes(float x, float inv_scale, float zp, float qmin, float qmax) {
  const float q = round_half_even(x * inv_scale) + zp;
  return q >= qmin && q <= qmax;
}

struct LearnableGrads {
  float dx, dscale, dzero_point;
};

QNN_HOST_DEVICE LearnableGrads fake_quantize_learnable_grads(float x, float dy, float scale, float inv_scale,
                                                             float zp, float qmin, float qmax, float grad_factor) {
  const float q = round_half_even(fmaf(x, inv_scale, zp));
  LearnableGrads g;
  if (q >= qmin && q <= qmax) {
    g.dx = dy * 1.0f;
    g.dscale = dy * fmaf(q - zp, scale, -x) * inv_scale * grad_factor;
    g.dzero_point = 0.0f;
  } else {
    g.dx = dy * 0.0f;
    g.dscale = dy * (q < qmin ? qmin - zp : qmax - zp) * grad_factor;
    g.dzero_point = dy * -1.0f * scale * grad_factor;
  }
  return g;
}

// PACT's clipping level (Choi et al., arXiv 1805.06085): the learned alpha, kept at or above
// alpha_min so that the step alpha / (2^k - 1) stays positive (a learned alpha can be pushed
// to zero or below by its updates; Distiller issue #524). NaN stays NaN.
QNN_HOST_DEVICE float pact_clip_level(float alpha, float alpha_min) {
  return alpha > alpha_min || alpha != alpha ? alpha : alpha_min;
}

// The uniform quantizer of DoReFa-Net (Zhou et al., arXiv 1606.06160) and WRPN (Mishra et al.,
// arXiv 1709.01134) on a clamped input: round(clamp(x, lo, hi) * n) / n, n = the number of steps
// (2^k - 1 on [0, 1]; 2^(k-1) - 1 on [-1, 1]). The STE passes the gradient where lo <= x <= hi,
// the gradient of PyTorch's clamp and TensorFlow's clip_by_value.
QNN_HOST_DEVICE float clamp_quantize_value(float x, float lo, float hi, float n) {
  return round_half_even(clamp_keep_nan(x, lo, hi) * n) / n;
}
QNN_HOST_DEVICE bool clamp_passes(float x, float lo, float hi) { return x >= lo && x <= hi; }

// DoReFa weights (arXiv 1606.06160, eq. 9): t = tanh(w), M = max|t| over the tensor,
//   f = t / (2M) + 1/2 in [0, 1]. An all-zero tensor (M = 0) has no scale to normalise by: it
//   maps to f = 1/2 with a zero gradient.
// Gradient, for df the gradient of f and S = sum_j df_j t_j:
//   dt_i = df_i / (2M) - [|t_i| = M] sign(t_i) S / (2 M^2 ties)
//   dw_i = dt_i (1 - t_i^2)
// where the max's gradient is shared evenly by the `ties` elements that attain it (as PyTorch's
// max() and TensorFlow's reduce_max share it). k = S / (2 M^2 ties) is formed once, in double.
QNN_HOST_DEVICE float dorefa_normalize_value(float t, float max_abs) {
  return max_abs == 0.0f ? 0.5f : t / (2.0f * max_abs) + 0.5f;
}
QNN_HOST_DEVICE float dorefa_tie_coefficient(double sum_df_t, double ties, float max_abs) {
  return max_abs == 0.0f ? 0.0f : float(sum_df_t / (2.0 * double(max_abs) * double(max_abs) * ties));
}
QNN_HOST_DEVICE float dorefa_normalize_grad(float df, float t, float max_abs, float k) {
  if (max_abs == 0.0f) return 0.0f;
  float dt = df / (2.0f * max_abs);
  if (fabsf(t) == max_abs) dt = dt - (t < 0.0f ? -k : k);  // sign(t) k
  return dt * fmaf(-t, t, 1.0f);
}

// DoReFa's weight levels from f in [0, 1]: 2 quantize_k(f) - 1 = 2 round(f n) / n - 1, n = 2^k - 1.
QNN_HOST_DEVICE float dorefa_weight_level(float f, float n) { return 2.0f * clamp_quantize_value(f, 0.0f, 1.0f, n) - 1.0f; }

}  // namespace qnn
