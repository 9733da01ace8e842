// round_to_level and level_variance (quant/level_lookup.h) must equal stochastic_round and
// rounding_variance (quant/rounding.h) everywhere, including on the levels and outside them.
#include <doctest.h>

#include <cmath>
#include <vector>

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

TEST_CASE("level lookup: a run rounded sixteen at a time equals round_to_level value by value") {
  // Tables of 1 to 40 levels (one and two registers, and the binary search beyond 32), values on
  // the levels, between them, beyond both ends and NaN, runs of 203 (groups of sixteen and a rest).
  std::vector<std::vector<float>> tables = {{0.5f}, uniform_levels(1), uniform_levels(3), exponential_levels(4, 0.3),
                                            ternary_levels(), uniform_levels(6), {-1, 0, 0, 1}};
  for (int count : {16, 31, 32, 33, 40}) {
    std::vector<float> t(static_cast<size_t>(count));
    for (int i = 0; i < count; ++i) t[size_t(i)] = -1.0f + 2.0f * float(i) / float(count - 1);
    tables.push_back(t);
  }
  for (const auto& t : tables) {
    CAPTURE(t.size());
    const int count = int(t.size());
    const int64_t n = 203;
    const float denom = 0.75f;
    std::vector<float> x(n), u(n);
    for (int64_t i = 0; i < n; ++i) {
      x[size_t(i)] = i % 5 == 0 ? t[size_t(i % count)] * denom : 1.8f * random_uniform(11, 1, i) - 0.9f;
      u[size_t(i)] = random_uniform(11, 2, i);
    }
    x[7] = NAN;
    std::vector<uint32_t> index(n, 99);
    round_run_to_levels(t.data(), count, x.data(), denom, u.data(), n, index.data());
    int differ = 0;
    for (int64_t i = 0; i < n; ++i)
      differ += index[size_t(i)] != uint32_t(round_to_level(t.data(), count, x[size_t(i)] / denom, u[size_t(i)]));
    CHECK(differ == 0);
  }
}
