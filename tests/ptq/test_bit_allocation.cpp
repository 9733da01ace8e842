// Per-channel bit allocation (ptq/bit_allocation.h): Banner et al.'s rule B_i = B a_i^(2/3) /
// sum_j a_j^(2/3), M_i = round(log2 B_i) in [0, 8], with the target corrected until the mean is
// within 0.01 of the budget (when rounding allows it: C channels move the mean in steps of 1/C).
#include <doctest.h>

#include <cmath>
#include <vector>

#include "ptq/bit_allocation.h"

using namespace qnn;

namespace {
double mean(const std::vector<int>& v) {
  double s = 0;
  for (int x : v) s += x;
  return s / double(v.size());
}
}  // namespace

TEST_CASE("bit allocation: equal channels get the budget exactly") {
  CHECK(allocate_bits({0.3, 0.3, 0.3}, 4) == std::vector<int>{4, 4, 4});
  CHECK(allocate_bits(std::vector<double>(64, 2.0), 2) == std::vector<int>(64, 2));
}

TEST_CASE("bit allocation: one pass follows the rule by hand") {
  // a^(2/3) = 1, 4, 9, 16 (sum 30); B = 4 * 2^2 = 16 bins: B_i = 0.53, 2.13, 4.8, 8.53;
  // log2 = -0.91, 1.09, 2.26, 3.09 -> 0 (clamped), 1, 2, 3.
  CHECK(allocate_bits_once({1, 8, 27, 64}, 2) == std::vector<int>{0, 1, 2, 3});
  // 8 bits at most: one huge channel among tiny ones.
  CHECK(allocate_bits_once({1e9, 1e-9, 1e-9, 1e-9}, 4)[0] == 6);  // B_0 = 64: log2 64 = 6
  CHECK(allocate_bits_once({1e9}, 9) == std::vector<int>{8});
  CHECK(allocate_bits_once({0.0, 0.0}, 3) == std::vector<int>{0, 0});
}

TEST_CASE("bit allocation: the corrected target meets the budget and wider channels get more bits") {
  std::vector<double> alphas;
  for (int i = 0; i < 64; ++i) alphas.push_back(0.05 + 0.5 * std::pow(std::sin(1.7 * i) + 1.2, 3.0));
  for (double budget : {2.0, 3.0, 4.0}) {
    CAPTURE(budget);
    const std::vector<int> once = allocate_bits_once(alphas, budget), bits = allocate_bits(alphas, budget);
    CHECK(std::fabs(mean(bits) - budget) <= 1.0 / 64 + 1e-12);  // 64 channels: steps of 1/64 bit
    CHECK(std::fabs(mean(bits) - budget) <= std::fabs(mean(once) - budget));
    for (size_t i = 0; i < alphas.size(); ++i)
      for (size_t j = 0; j < alphas.size(); ++j)
        if (alphas[i] > alphas[j]) CHECK(bits[i] >= bits[j]);
    for (int b : bits) CHECK((b >= 0 && b <= 8));
  }
}

TEST_CASE("bit allocation: bad alphas are errors") {
  CHECK_THROWS_WITH(allocate_bits({}, 4), doctest::Contains("at least one channel"));
  CHECK_THROWS_WITH(allocate_bits({1.0, NAN}, 4), doctest::Contains("finite"));
}
