// Shared pieces of the level-set quantizer tests: the four fixed schemes and test gradients.
#pragma once
#include <memory>
#include <vector>

#include "quant/level_set_quantizer.h"
#include "tensor/random.h"

namespace qnn::test {

struct LevelScheme {
  const char* name;
  std::unique_ptr<GradientQuantizer> (*make)(const QuantizerOptions&);
};

inline const std::vector<LevelScheme>& level_schemes() {
  static const std::vector<LevelScheme> schemes = {{"qsgd", make_qsgd_quantizer},
                                                   {"qinf", make_qinf_quantizer},
                                                   {"nuq", make_nuq_quantizer},
                                                   {"trn", make_trn_quantizer}};
  return schemes;
}

inline QuantizerOptions level_options(int64_t bucket_size, int bits) {
  QuantizerOptions o;
  o.bucket_size = bucket_size;
  o.bits = bits;
  return o;
}

// n standard normals times `scale`, from a stream of their own.
inline std::vector<float> normal_vector(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) x[i] = scale * random_normal(seed, 0x7E57, uint64_t(i));
  return x;
}

}  // namespace qnn::test
