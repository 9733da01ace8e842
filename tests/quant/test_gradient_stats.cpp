// Gradient statistics (Tabrizian/learning-to-quantize, estim/gestim.py) against values computed by hand on tiny gradients.
#include <doctest.h>

#include <vector>

#include "quant/gradient_stats.h"
#include "tensor/check.h"

using namespace qnn;

TEST_CASE("gradient stats: one bucket by hand") {
  // [3, 4]: norm 5, y = [0.6, 0.8], mean 0.7, unbiased variance 0.02.
  const float x[] = {3.0f, 4.0f};
  const BucketStats s = bucket_stats(x, 2);
  CHECK(s.norm == doctest::Approx(5.0).epsilon(1e-12));
  CHECK(s.mean == doctest::Approx(0.7).epsilon(1e-7));
  CHECK(s.sigma == doctest::Approx(0.1414213562).epsilon(1e-6));
  const float zero[] = {0.0f, 0.0f, 0.0f};
  CHECK(bucket_stats(zero, 3).norm == 0.0);
  CHECK_THROWS_AS(bucket_stats(x, 1), Error);
}

TEST_CASE("gradient stats: tail skipped, zero bucket skipped, nl pooled, top by norm") {
  GradientStatsAccumulator acc(2);
  // Buckets [3,4] (norm 5), [1,0] (norm 1, y = [1,0], var 0.5), [0,0] (skipped); tail [7] skipped.
  const std::vector<float> g1 = {3, 4, 1, 0, 0, 0, 7};
  acc.add(g1.data(), int64_t(g1.size()));
  GradientStats s = acc.snapshot(20);
  REQUIRE(s.buckets.size() == 2);
  CHECK(s.total_params == 4);
  CHECK(s.buckets[0].norm == doctest::Approx(5.0));
  CHECK(s.buckets[1].norm == doctest::Approx(1.0));
  CHECK(s.buckets[1].sigma == doctest::Approx(0.7071067812).epsilon(1e-7));
  CHECK(s.nl_mean == doctest::Approx(0.6).epsilon(1e-7));           // (1.4 + 1.0) / 4
  CHECK(s.nl_sigma == doctest::Approx(0.3605551275).epsilon(1e-7)); // sqrt((0.02 + 0.5) / 4)

  // A second mini-batch: [-6, 8] has norm 10, y = [-0.6, 0.8], mean 0.1, variance 0.98.
  const std::vector<float> g2 = {-6, 8};
  acc.add(g2.data(), 2);
  CHECK(acc.gradients() == 2);
  s = acc.snapshot(2);
  REQUIRE(s.buckets.size() == 2);
  CHECK(s.total_buckets == 3);
  CHECK(s.buckets[0].norm == doctest::Approx(10.0));
  CHECK(s.buckets[0].mean == doctest::Approx(0.1).epsilon(1e-7));
  CHECK(s.buckets[1].norm == doctest::Approx(5.0));
  CHECK(s.total_params == 6);
  CHECK(s.nl_mean == doctest::Approx(2.6 / 6).epsilon(1e-7));
  CHECK(s.nl_sigma == doctest::Approx(0.5).epsilon(1e-7));  // sqrt((0.02 + 0.5 + 0.98) / 6)

  acc.clear();
  CHECK(acc.snapshot(5).buckets.empty());
  CHECK_THROWS_AS(acc.snapshot(0), Error);
  CHECK_THROWS_AS(GradientStatsAccumulator(1), Error);
}
