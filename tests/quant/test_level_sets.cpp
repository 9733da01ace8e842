// Level tables of learning-to-quantize (Tabrizian/learning-to-quantize; Z1, Z2 of docs/quantizer-tests.md and the b = 3, p = 0.5 example).
#include <doctest.h>

#include <cmath>

#include "quant/level_sets.h"
#include "quant/rounding.h"
#include "tensor/check.h"

using namespace qnn;

TEST_CASE("level sets: uniform levels for b = 3 are 8 levels with step 2/7, no zero (Z2)") {
  const std::vector<float> l = uniform_levels(3);
  REQUIRE(l.size() == 8);
  CHECK(l.front() == -1.0f);
  CHECK(l.back() == 1.0f);
  for (int i = 0; i < 8; ++i) {
    CHECK(l[i] == doctest::Approx(-1.0 + 2.0 * i / 7.0).epsilon(1e-6));
    CHECK(l[i] == -l[7 - i]);  // exactly symmetric
    CHECK(l[i] != 0.0f);
  }
  CHECK(uniform_levels(1) == std::vector<float>{-1.0f, 1.0f});
  CHECK(uniform_levels(4).size() == 16);
}

TEST_CASE("level sets: exponential levels for b = 3, p = 0.5 (learning-to-quantize's example)") {
  const std::vector<float> expected = {-1.0f, -0.5f, -0.25f, -0.125f, 0.125f, 0.25f, 0.5f, 1.0f};
  CHECK(exponential_levels(3, 0.5) == expected);
  CHECK(exponential_levels(1, 0.5) == std::vector<float>{-1.0f, 1.0f});
  const std::vector<float> p3 = exponential_levels(2, 0.3);
  REQUIRE(p3.size() == 4);
  CHECK(p3[1] == -0.3f);
  CHECK(p3[2] == 0.3f);
}

TEST_CASE("level sets: exponential levels (b, p) have exactly 2^b sorted entries in [-1, 1] (Z2)") {
  for (int b = 1; b <= 6; ++b)
    for (double p : {0.1, 0.5, 0.9}) {
      const std::vector<float> l = exponential_levels(b, p);
      REQUIRE(l.size() == (size_t(1) << b));
      CHECK(l.front() == -1.0f);
      CHECK(l.back() == 1.0f);
      for (size_t i = 1; i < l.size(); ++i) CHECK(l[i - 1] < l[i]);
      // The smallest magnitude is p^(h-1).
      CHECK(l[l.size() / 2] == doctest::Approx(std::pow(p, (1 << (b - 1)) - 1)).epsilon(1e-6));
    }
}

TEST_CASE("level sets: ternary levels") {
  CHECK(ternary_levels() == std::vector<float>{-1.0f, 0.0f, 1.0f});
}

TEST_CASE("level sets: zero under nuq b = 3 has normalized variance 0.015625 (Z1)") {
  const std::vector<float> l = exponential_levels(3, 0.5);
  CHECK(rounding_variance(l.data(), 8, 0.0f) == 0.015625);
  // Rounded to +-0.125 with probability 1/2 each: u below 1/2 goes up.
  CHECK(l[stochastic_round(l.data(), 8, 0.0f, 0.49f)] == 0.125f);
  CHECK(l[stochastic_round(l.data(), 8, 0.0f, 0.51f)] == -0.125f);
}

TEST_CASE("level sets: bad arguments are errors") {
  CHECK_THROWS_AS(uniform_levels(0), Error);
  CHECK_THROWS_AS(uniform_levels(17), Error);
  CHECK_THROWS_AS(exponential_levels(0, 0.5), Error);
  CHECK_THROWS_AS(exponential_levels(3, 1.0), Error);
  CHECK_THROWS_AS(exponential_levels(3, 0.0), Error);
  CHECK_THROWS_AS(exponential_levels(3, -0.5), Error);
  // 2^15 levels of p = 0.1: p^16383 underflows to 0, so the levels are not distinct.
  CHECK_THROWS_AS(exponential_levels(16, 0.1), Error);
}
