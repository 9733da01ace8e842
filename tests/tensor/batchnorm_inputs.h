// The inputs of the batch-norm GPU parity tests (tests/tensor/test_batchnorm_*_cuda.cpp): seeded
// x, residual and output gradient of a shape, per-channel gamma, beta and running statistics, and
// the absolute tolerance of per-channel sums over that shape.
#pragma once
#include <cmath>

#include "tensor/tensor.h"

namespace qnn::testing {

struct BatchNormInputs {
  Tensor x, residual, gamma, beta, running_mean, running_var, dy;
};

inline BatchNormInputs batchnorm_inputs(const Shape& shape, uint64_t seed) {
  const int64_t c = shape[1];
  return {Tensor::normal(shape, 0.5f, 2.0f, seed, 0),    Tensor::normal(shape, 0.0f, 1.0f, seed, 1),
          Tensor::uniform({c}, 0.5f, 1.5f, seed, 2),     Tensor::uniform({c}, -0.5f, 0.5f, seed, 3),
          Tensor::uniform({c}, -0.2f, 0.2f, seed, 4),    Tensor::uniform({c}, 0.5f, 2.0f, seed, 5),
          Tensor::uniform(shape, -1, 1, seed, 6)};
}

// 1e-5 M^0.5 for M values per channel.
inline double sum_atol(const Shape& shape) {
  return 1e-5 * std::sqrt(double(shape[0] * (shape.size() == 4 ? shape[2] * shape[3] : 1)));
}

}  // namespace qnn::testing
