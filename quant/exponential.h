// The `exponential` gradient quantizer of smart-quantizer: power-of-two magnitude levels below the
// bucket's L2 norm, a sign, stochastic rounding between adjacent powers (source
// IST-DASLab/smart-quantizer, quantization.py). See exponential.cpp for the formula.
#pragma once
#include <cstdint>
#include <memory>

#include "quant/quantizer.h"

namespace qnn {

class ExponentialQuantizer : public GradientQuantizer {
 public:
  // levels must be even and >= 4: k = levels/2 powers of two per sign.
  explicit ExponentialQuantizer(QuantizerOptions options);
  std::string name() const override { return "exponential"; }
  std::optional<DeviceScheme> device_scheme() const override { return DeviceScheme{DeviceKernel::exponential}; }

  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  void decode(const Payload& payload, float* out) const override;
  std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step) const override;
  double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
};

std::unique_ptr<GradientQuantizer> make_exponential_quantizer(const QuantizerOptions& options);

}  // namespace qnn
