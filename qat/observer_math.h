// The arithmetic of PyTorch's range observers (torch/ao/quantization/observer.py, 1.13), per
// channel, written once for the CPU loops (qat/observer_kernels.cpp) and the CUDA kernels
// (qat/observer_kernels.cu) so that both agree bit for bit, and PyTorch too.
//
// Running range, from a batch's minimum m_b and maximum M_b:
//   min-max (MinMaxObserver, PerChannelMinMaxObserver):  m = min(m, m_b), M = max(M, M_b)
//   moving average (MovingAverageMinMaxObserver, ...PerChannel...), constant c (0.01):
//     the first batch sets m = m_b, M = M_b; later ones m = m + c * (m_b - m), same for M.
//   PyTorch forms the difference, the product and the sum as three separate tensor ops, so each
//   rounds on its own; an FMA here would change the last bit, hence the explicit roundings below.
//
// qparams (UniformQuantizationObserverBase._calculate_qparams), with m- = min(m, 0) and
// M+ = max(M, 0) so that zero is always representable, and eps = 2^-23 (float32's epsilon):
//   symmetric:  scale = max(max(-m-, M+) / ((qmax - qmin) / 2), eps)
//               zero point 0 for a signed range, floor((qmin + qmax) / 2) for an unsigned one
//               (PyTorch's choice when quant_min/quant_max are given; its default 8-bit quint8
//               observer, built without them, uses 128 instead of 127)
//   affine:     scale = max((M+ - m-) / (qmax - qmin), eps)
//               zero point = clamp(qmin - round(m- / scale), qmin, qmax), rounded half to even
// Every division is a true float division (PyTorch's tensor / scalar on the CPU; checked: it
// differs from a multiplication by the reciprocal for about 2 values in 3 of a random sample).
#pragma once
#include <cmath>

#include "qat/fake_quant_math.h"
#include "tensor/random.h"  // QNN_HOST_DEVICE

namespace qnn {

// min and max that propagate NaN, as torch.min and torch.max do element-wise.
QNN_HOST_DEVICE float min_keep_nan(float a, float b) { return (a < b || a != a) ? a : b; }
QNN_HOST_DEVICE float max_keep_nan(float a, float b) { return (a > b || a != a) ? a : b; }

// m + c * (current - m), with the difference, the product and the sum each rounded.
QNN_HOST_DEVICE float moving_average_step(float m, float current, float c) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(m, __fmul_rn(c, __fsub_rn(current, m)));
#else
  // volatile: the product must be rounded to float before the sum (no contraction into an FMA).
  volatile float step = c * (current - m);
  return m + step;
#endif
}

struct ChannelQParams {
  float scale, zero_point;
};

QNN_HOST_DEVICE ChannelQParams channel_qparams(float min_val, float max_val, float qmin, float qmax, bool symmetric,
                                           float eps) {
  const float min_neg = min_keep_nan(min_val, 0.0f);
  const float max_pos = max_keep_nan(max_val, 0.0f);
  ChannelQParams p;
  if (symmetric) {
    const float bound = max_keep_nan(-min_neg, max_pos);
    p.scale = max_keep_nan(bound / ((qmax - qmin) / 2.0f), eps);
    p.zero_point = qmin < 0.0f ? 0.0f : floorf((qmin + qmax) / 2.0f);
  } else {
    p.scale = max_keep_nan((max_pos - min_neg) / (qmax - qmin), eps);
    p.zero_point = clamp_keep_nan(qmin - round_half_even(min_neg / p.scale), qmin, qmax);
  }
  return p;
}

}  // namespace qnn
