// round_to_level and level_variance (quant/level_lookup.h) must equal stochastic_round and
// rounding_variance (quant/rounding.h) everywhere, including on the levels and outside them.
#include <doctest.h>

#include "quant/level_lookup.h"
#include "quant/level_sets.h"

using namespace qnn;

TEST_CASE("level lookup: counted interval search equals the binary search") {
  std::vector<std::vector<float>> tables = {uniform_levels(1), uniform_levels(3), uniform_levels(5),
                                            exponential_levels(3, 0.5), exponential_levels(4, 0.3),
                                            ternary_levels(), uniform_levels(6)};
  for (const auto& t : tables) {
    CAPTURE(t.size());
    const int count = int(t.size());
    int differ = 0;
    for (int64_t i = 0; i < 20000; ++i) {
      // Values on the levels, between them, and beyond both ends.
      const float r = i % 5 == 0 ? t[i % count] : 2.4f * random_uniform(9, 1, i) - 1.2f;
      const float u = random_uniform(9, 2, i);
      differ += round_to_level(t.data(), count, r, u) != stochastic_round(t.data(), count, r, u);
      differ += level_variance(t.data(), count, r) != rounding_variance(t.data(), count, r);
    }
    CHECK(differ == 0);
  }
}
