// Test helpers for dist/: a 32-bit "quantizer" whose payload carries every coordinate as a float
// (the exchange's sum must then equal an fp32 all-reduce), seeded gradients, and hashes.
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "quant/hook.h"
#include "quant/quantizer.h"

namespace qnn::testing {

class Fp32Payloads : public GradientQuantizer {
 public:
  using GradientQuantizer::GradientQuantizer;
  std::string name() const override { return "fp32-test"; }
  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override {
    Payload p;
    p.scheme = name();
    p.size = n;
    p.bucket_size = n > 0 ? n : 1;
    p.index_bits = 1;
    p.passthrough.assign(x, x + n);
    p.seed = seed, p.step = step;
    p.first_index = first;
    return p;
  }
  void decode(const Payload& p, float* out) const override {
    std::memcpy(out, p.passthrough.data(), p.passthrough.size() * sizeof(float));
  }
  std::vector<std::vector<float>> bucket_levels_slice(const float*, int64_t, int64_t, uint64_t,
                                                      uint64_t) const override {
    return {};
  }
  double variance_slice(const float*, int64_t, int64_t, uint64_t, uint64_t) const override { return 0; }
};

// A gradient-like vector: N(0, 1) times a per-layer-ish scale, a function of (seed, n).
inline std::vector<float> seeded_gradient(uint64_t seed, int64_t n) {
  std::mt19937_64 generator(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) g[size_t(i)] = normal(generator) * (i % 3 == 0 ? 0.01f : 0.1f);
  return g;
}

inline uint64_t bits_hash(const std::vector<float>& v) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (float x : v) {
    uint32_t b;
    std::memcpy(&b, &x, 4);
    h = (h ^ b) * 0x100000001B3ull;
  }
  return h;
}

inline std::unique_ptr<GradientQuantizationHook> make_hook(const std::string& scheme, QuantizerOptions options = {},
                                                           uint64_t seed = 11, bool record_variance = false) {
  std::unique_ptr<GradientQuantizer> q;
  if (scheme == "fp32-test") q = std::make_unique<Fp32Payloads>(options);
  else q = make_quantizer(scheme, options);
  HookOptions h;
  h.seed = seed;
  h.record_variance = record_variance;
  return std::make_unique<GradientQuantizationHook>(std::move(q), h);
}

}  // namespace qnn::testing
