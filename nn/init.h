// Parameter initialisation, reproducible by seed.
//
// Every initialiser draws from the counter-based generator (tensor/random.h) with the global
// seed and a fresh stream number, so a model built twice after `manual_seed(k)` has identical
// weights, whatever the thread count or device. Formulas (PyTorch's names):
//   kaiming_normal (He et al. 2015):  N(0, gain^2 / fan),  gain = sqrt(2) for ReLU
//   default conv/linear (PyTorch's):  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace qnn {

void manual_seed(uint64_t seed);  // also restarts the stream counter
uint64_t init_seed();
uint64_t next_init_stream();

// fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field.
Tensor kaiming_normal(const Shape& shape, bool fan_out_mode);
Tensor uniform_fan_in(const Shape& shape, int64_t fan_in);

}  // namespace qnn
