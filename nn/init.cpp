// Seeded parameter initialisation (see nn/init.h).
#include "nn/init.h"

#include <cmath>

namespace qnn {

namespace {
uint64_t g_seed = 0;
uint64_t g_stream = 0;
}  // namespace

void manual_seed(uint64_t seed) {
  g_seed = seed;
  g_stream = 0;
}
uint64_t init_seed() { return g_seed; }
// Streams for initialisation start far from those used by data and quantizers.
uint64_t next_init_stream() { return (1ull << 40) + g_stream++; }

Tensor kaiming_normal(const Shape& shape, bool fan_out_mode) {
  QNN_CHECK(shape.size() >= 2, "needs a weight of at least 2 dimensions, got ", shape_str(shape));
  int64_t receptive = 1;
  for (size_t i = 2; i < shape.size(); ++i) receptive *= shape[i];
  const int64_t fan = (fan_out_mode ? shape[0] : shape[1]) * receptive;
  return Tensor::normal(shape, 0.0f, std::sqrt(2.0f / fan), g_seed, next_init_stream());
}

Tensor uniform_fan_in(const Shape& shape, int64_t fan_in) {
  const float bound = 1.0f / std::sqrt(static_cast<float>(fan_in));
  return Tensor::uniform(shape, -bound, bound, g_seed, next_init_stream());
}

}  // namespace qnn
