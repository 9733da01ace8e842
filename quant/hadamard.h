// The `hadamard` gradient quantizer of smart-quantizer: a random rotation (Rademacher signs, then
// the orthonormal Walsh-Hadamard transform), the `standard` min-max grid on the rotated bucket,
// and the inverse rotation (source IST-DASLab/smart-quantizer, quantization.py).
// See hadamard.cpp for the formula, the randomness layout and the variance.
#pragma once
#include <cstdint>
#include <memory>

#include "quant/quantizer.h"

namespace qnn {

class HadamardQuantizer : public GradientQuantizer {
 public:
  explicit HadamardQuantizer(QuantizerOptions options);
  std::string name() const override { return "hadamard"; }
  std::optional<DeviceScheme> device_scheme() const override { return DeviceScheme{DeviceKernel::hadamard}; }

  void decode(const Payload& payload, float* out) const override;
  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  // encode and variance (unless null) from one rotation of each bucket, bit for bit variance_slice.
  Payload encode_slice_with_variance(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step,
                                     double* variance) const override;
  // The grid of each rotated bucket (the points rounding chooses between happen in the rotated
  // domain; the decoded coordinates are not on them).
  std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step) const override;
  double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
};

std::unique_ptr<GradientQuantizer> make_hadamard_quantizer(const QuantizerOptions& options);

}  // namespace qnn
