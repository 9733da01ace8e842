// Learned Step Size Quantization (Esser et al., "Learned Step Size Quantization", ICLR 2020):
// the two numbers LSQ adds to learnable fake quantization (fake_quantize_learnable in
// qat/functions.h, whose gradient is the paper's eq. 3).
//
//   initial step:     s0 = 2 mean|v| / sqrt(Q_P)           (section 2.1, from the first batch
//                                                           of activations or the initial weights)
//   gradient scale:   g = 1 / sqrt(N Q_P)                  (section 2.2)
//
// Q_P is the range's qmax: 2^(b-1) - 1 for signed weights, 2^b - 1 for unsigned activations, and
// N the number of elements the step quantizes. PyTorch's _LearnableFakeQuantize uses the whole
// tensor's N for per-channel steps too; lsq_grad_factor takes N as given, so a caller chooses.
#pragma once
#include <cstdint>

#include "qat/quant_range.h"
#include "tensor/tensor.h"

namespace qnn {

// 1/sqrt(N Q_P), computed in double then rounded to float; N >= 1, Q_P >= 1.
float lsq_grad_factor(int64_t numel, int64_t q_p);

// 2 mean|v| / sqrt(qmax) over the tensor ([1]) or per channel along axis 0 ([v.size(0)]), on v's
// device. An initialiser, not part of a training step: the values are read back to the host
// (a GPU synchronisation) and averaged in double. A zero mean (all-zero values, or a channel of
// them) gives no step size and is an error naming the channel, as is a non-finite value.
Tensor lsq_initial_scale(const Tensor& v, QuantRange range, Granularity granularity);

}  // namespace qnn
