// The integer grid of quantization-aware training: which integers a k-bit value may take, and
// whether one (scale, zero point) pair covers a whole tensor or each slice along axis 0.
//
// A k-bit unsigned value lies in [0, 2^k - 1]; a signed one in [-2^(k-1), 2^(k-1) - 1] (two's
// complement, as PyTorch's quint8/qint8 and their lower-bit quant_min/quant_max ranges). Affine
// quantization (Jacob et al., "Quantization and Training of Neural Networks for Efficient
// Integer-Arithmetic-Only Inference", CVPR 2018; PyTorch's fake_quantize_per_tensor_affine) maps
// a real x to q = clamp(round(x / scale) + zero_point, qmin, qmax) and back to
// (q - zero_point) * scale. Per-channel quantization (PyTorch's *_per_channel_affine with axis 0)
// gives every output channel of a weight [O, ...] its own scale and zero point: channel c is the
// c-th slice along the first dimension.
//
// Every function of qat/ that takes a range checks it with check_quant_range: qmin <= 0 <= qmax
// (so zero is on the grid, as PyTorch's learnable fake quantization requires) and 2 to 8 bits'
// worth of levels, which also admits the restricted symmetric ranges such as [-127, 127].
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace qnn {

struct QuantRange {
  int64_t qmin = 0;
  int64_t qmax = 255;
  int64_t levels() const { return qmax - qmin + 1; }
};

// [0, 2^bits - 1] or [-2^(bits-1), 2^(bits-1) - 1]; bits must be 2..8.
QuantRange quant_range(int bits, bool is_signed);

// Throws qnn::Error naming `op` unless qmin <= 0 <= qmax and 3 <= levels <= 256.
void check_quant_range(const char* op, QuantRange range);

// One (scale, zero point) for the whole tensor, or one per slice along axis 0.
enum class Granularity { PerTensor, PerChannel };
const char* granularity_name(Granularity granularity);

// How many (scale, zero point) pairs x needs: 1, or x.size(0) (x must then have a dimension).
int64_t qparam_count(const char* op, const Tensor& x, Granularity granularity);

}  // namespace qnn
