// The integer grid a calibrated range is mapped to, with the conventions of qnn's observers
// (qat/observer_math.h), which are PyTorch's (torch.ao.quantization 1.13):
//
//   symmetric:  scale = alpha / ((qmax - qmin) / 2), zero point 0 (signed) or
//               floor((qmin + qmax) / 2) (unsigned, e.g. 127 at 8 bits)
//   affine on [0, alpha] (a ReLU's output): scale = alpha / (qmax - qmin), zero point qmin (= 0)
//
//   q = clamp(round(x / scale) + zero_point, qmin, qmax),  x_hat = (q - zero_point) scale
//
// with round half to even (std::nearbyint; torch.round and PyTorch's fake quantization do the
// same) and the clamp applied to the rounded value, as PyTorch's quantize_per_tensor does. A
// range method (ptq/range_methods.h) chooses the clip value alpha; the grid is what the
// quantized model will then compute, so MSE and KL searches evaluate this exact grid.
#pragma once
#include <cmath>
#include <cstdint>

#include "qat/quant_range.h"

namespace qnn {

// The integer of x on the grid (scale, zero_point, [qmin, qmax]): PyTorch's quantize_per_tensor.
// A NaN (x or scale) maps to the zero point rather than to an undefined integer conversion.
inline int64_t quantize_code(double x, double scale, int64_t zero_point, int64_t qmin, int64_t qmax) {
  double q = std::nearbyint(x / scale) + double(zero_point);
  if (std::isnan(q)) return zero_point;
  q = q < double(qmin) ? double(qmin) : q > double(qmax) ? double(qmax) : q;
  return int64_t(q);
}

struct QuantGrid {
  int64_t qmin = 0, qmax = 255;
  bool symmetric = false;

  // Signed symmetric weights of `bits` bits; unsigned activations, affine or symmetric.
  static QuantGrid weights(int bits) { return {-(int64_t(1) << (bits - 1)), (int64_t(1) << (bits - 1)) - 1, true}; }
  static QuantGrid activations(int bits, bool symmetric) { return {0, (int64_t(1) << bits) - 1, symmetric}; }

  double scale(double alpha) const { return symmetric ? alpha / ((qmax - qmin) / 2.0) : alpha / double(qmax - qmin); }
  int64_t zero_point() const { return symmetric ? (qmin < 0 ? 0 : (qmin + qmax) / 2) : qmin; }
  // How many grid points lie in [0, alpha]: the levels a one-sided histogram is merged into.
  int64_t positive_levels() const { return qmax - zero_point() + 1; }
  // x on the grid of clip value alpha > 0 (dequantized).
  double quantize(double x, double alpha) const {
    const double s = scale(alpha);
    const int64_t z = zero_point();
    return double(quantize_code(x, s, z, qmin, qmax) - z) * s;
  }
};

}  // namespace qnn
