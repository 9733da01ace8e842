// The level DP of the smart quantizer (IST-DASLab/smart-quantizer; property E6 of docs/quantizer-tests.md): the prefix-sum
// interval cost against its definition, divide and conquer against the plain O(K c^2) DP, both
// against brute force over every subset of points, and answers worked out by hand.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/level_dp.h"
#include "quant/rounding.h"
#include "tensor/check.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

// n sorted values; `grid` > 0 rounds them to multiples of 1/grid so that duplicates appear.
std::vector<float> sorted_values(int64_t n, uint64_t seed, float grid = 0.0f) {
  std::vector<float> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float v = random_normal(seed, 77, uint64_t(i));
    a[size_t(i)] = grid > 0.0f ? std::round(v * grid) / grid : v;
  }
  std::sort(a.begin(), a.end());
  return a;
}

// sum_t (a_t - l)(r - a_t) with l, r the chosen points around a_t: the definition of the cost.
double direct_cost(const std::vector<float>& a, const std::vector<float>& points) {
  double sum = 0.0;
  for (float v : a) sum += rounding_variance(points.data(), int(points.size()), v);
  return sum;
}

std::vector<float> values_at(const std::vector<float>& a, const std::vector<int64_t>& index) {
  std::vector<float> v;
  for (int64_t i : index) v.push_back(a[size_t(i)]);
  return v;
}

// The least direct cost over all point sets {a_0, a_{c-1}} plus at most `intervals - 1` interior
// indices (fewer points are the same as duplicated points).
double brute_force(const std::vector<float>& a, int intervals) {
  const int n = int(a.size());
  const int interior = std::max(n - 2, 0);
  double best = INFINITY;
  for (int mask = 0; mask < (1 << interior); ++mask) {
    if (__builtin_popcount(unsigned(mask)) > intervals - 1) continue;
    std::vector<float> points = {a.front()};
    for (int t = 0; t < interior; ++t)
      if (mask & (1 << t)) points.push_back(a[size_t(t) + 1]);
    points.push_back(a.back());
    best = std::min(best, direct_cost(a, points));
  }
  return best;
}

void check_points(const LevelPoints& p, int64_t n, int intervals) {
  REQUIRE(p.index.size() == size_t(intervals) + 1);
  CHECK(p.index.front() == 0);
  CHECK(p.index.back() == n - 1);
  for (size_t k = 1; k < p.index.size(); ++k) CHECK(p.index[k - 1] <= p.index[k]);
}

}  // namespace

TEST_CASE("level dp: prefix-sum interval cost equals its definition") {
  for (float grid : {0.0f, 4.0f}) {
    const auto a = sorted_values(200, 3, grid);
    const IntervalCost err(a.data(), int64_t(a.size()));
    for (int64_t i = 0; i < 200; i += 7)
      for (int64_t j = i; j < 200; j += 11) {
        double direct = 0.0;
        for (int64_t t = i; t <= j; ++t)
          direct += (double(a[size_t(j)]) - a[size_t(t)]) * (double(a[size_t(t)]) - a[size_t(i)]);
        CHECK(err(i, j) == doctest::Approx(direct).epsilon(1e-9).scale(1.0));
      }
  }
}

TEST_CASE("level dp: divide and conquer equals the plain DP (E6)") {
  uint64_t seed = 100;
  for (int64_t n : {1, 2, 3, 17, 64, 255, 600}) {
    for (int intervals : {1, 2, 3, 7, 15, 16}) {
      for (float grid : {0.0f, 8.0f}) {
        const auto a = sorted_values(n, ++seed, grid);
        const LevelPoints fast = optimal_level_points(a.data(), n, intervals);
        const LevelPoints plain = optimal_level_points_plain(a.data(), n, intervals);
        check_points(fast, n, intervals);
        check_points(plain, n, intervals);
        CHECK(fast.cost == doctest::Approx(plain.cost).epsilon(1e-9).scale(1.0));
        // The points reproduce the cost they claim, by the definition of the cost.
        CHECK(direct_cost(a, values_at(a, fast.index)) ==
              doctest::Approx(fast.cost).epsilon(1e-7).scale(1.0));
      }
    }
  }
}

TEST_CASE("level dp: both DPs equal brute force over every subset on tiny inputs (E6)") {
  uint64_t seed = 500;
  for (int64_t n : {2, 3, 5, 8, 11}) {
    for (int intervals : {1, 2, 3, 4}) {
      for (float grid : {0.0f, 2.0f}) {
        const auto a = sorted_values(n, ++seed, grid);
        const double best = brute_force(a, intervals);
        CHECK(optimal_level_points(a.data(), n, intervals).cost ==
              doctest::Approx(best).epsilon(1e-9).scale(1.0));
        CHECK(optimal_level_points_plain(a.data(), n, intervals).cost ==
              doctest::Approx(best).epsilon(1e-9).scale(1.0));
      }
    }
  }
}

TEST_CASE("level dp: answers worked out by hand") {
  // {0, 1, 2, 3}, 2 intervals: a middle point of 1 costs 0 + (2-1)(3-2) = 1, of 2 the same;
  // ties go to the smaller index.
  const std::vector<float> a = {0, 1, 2, 3};
  LevelPoints p = optimal_level_points(a.data(), 4, 2);
  CHECK(p.cost == doctest::Approx(1.0));
  CHECK(p.index == std::vector<int64_t>{0, 1, 3});
  // Three intervals: every value is a point, zero cost.
  p = optimal_level_points(a.data(), 4, 3);
  CHECK(p.cost == doctest::Approx(0.0).scale(1.0));
  CHECK(p.index == std::vector<int64_t>{0, 1, 2, 3});
  // More intervals than distinct values: duplicated points, still zero cost.
  const std::vector<float> b = {-1, -1, 0.5f, 0.5f, 0.5f, 2};
  p = optimal_level_points(b.data(), 6, 5);
  CHECK(p.cost == doctest::Approx(0.0).scale(1.0));
  CHECK(values_at(b, p.index).front() == -1.0f);
  CHECK(values_at(b, p.index).back() == 2.0f);
  // {0, 0.25, 0.5, 1}, 2 intervals: middle 0.5 costs (0.25)(0.25) = 0.0625 < middle 0.25's 0.125.
  const std::vector<float> c = {0, 0.25f, 0.5f, 1};
  p = optimal_level_points(c.data(), 4, 2);
  CHECK(p.cost == doctest::Approx(0.0625));
  CHECK(p.index == std::vector<int64_t>{0, 2, 3});
  // One interval: the two endpoints, cost sum (x - 0)(1 - x) = 0.1875 + 0.25.
  p = optimal_level_points_plain(c.data(), 4, 1);
  CHECK(p.cost == doctest::Approx(0.4375));
}

TEST_CASE("level dp: bad arguments are errors") {
  const std::vector<float> a = {0, 1, 2};
  CHECK_THROWS_AS(optimal_level_points(a.data(), 3, 0), Error);
  CHECK_THROWS_AS(optimal_level_points_plain(a.data(), 0, 2), Error);
  const std::vector<float> unsorted = {0, 2, 1};
  CHECK_THROWS_WITH_AS(optimal_level_points(unsorted.data(), 3, 2), doctest::Contains("sorted"), Error);
}
