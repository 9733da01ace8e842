// Distribution models and V(levels) (Tabrizian/learning-to-quantize, estim/dist.py): known values, Z3 (docs/quantizer-tests.md), a Monte-Carlo estimate of V
// for a truncated normal, and the 50000-bin mixture against its exact components.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "quant/level_distribution.h"
#include "quant/rounding.h"
#include "tensor/check.h"
#include "tensor/random.h"

using namespace qnn;

namespace {
std::vector<double> uniform_grid(int count) {
  std::vector<double> v(count);
  for (int i = 0; i < count; ++i) v[i] = -1.0 + 2.0 * i / (count - 1);
  return v;
}
}  // namespace

TEST_CASE("truncated normal: cdf, pdf and moments against known values") {
  // Normal(0, 1) on [-1, 1]: mass Phi(1) - Phi(-1) = 0.682689...
  const TruncatedNormal d(0.0, 1.0);
  CHECK(d.pdf(0.0) == doctest::Approx(0.5843685672568167).epsilon(1e-12));
  CHECK(d.cdf(0.5) == doctest::Approx(0.7804532125940016).epsilon(1e-12));
  CHECK(d.cdf(0.0) == doctest::Approx(0.5).epsilon(1e-14));
  CHECK(d.cdf(-1.0) == 0.0);
  CHECK(d.cdf(1.0) == 1.0);
  CHECK(d.pdf(1.5) == 0.0);
  CHECK(d.moments(-1.0, 1.0)[0] == doctest::Approx(1.0).epsilon(1e-14));
  CHECK(d.ppf(0.7804532125940016) == doctest::Approx(0.5).epsilon(1e-12));
  // A mean far below the interval (upper-tail arithmetic) still gives a proper cdf.
  const TruncatedNormal far(-3.0, 0.5);
  CHECK(far.cdf(1.0) == 1.0);
  CHECK(far.moments(-1.0, 1.0)[0] == doctest::Approx(1.0).epsilon(1e-10));
  CHECK(far.cdf(-0.9) > 0.5);
  CHECK_THROWS_AS(TruncatedNormal(0.0, 0.0), Error);
}

TEST_CASE("truncated normal: V(levels) equals a fine numerical integral") {
  const TruncatedNormal d(0.1, 0.3);
  const std::vector<double> levels = {-1.0, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0};
  // Composite Simpson of (r - l_j)(l_{j+1} - r) p(r) over each interval.
  double simpson = 0.0;
  for (size_t j = 0; j + 1 < levels.size(); ++j) {
    const double a = levels[j], b = levels[j + 1];
    const int n = 2000;
    const double h = (b - a) / n;
    double s = 0.0;
    for (int i = 0; i <= n; ++i) {
      const double r = a + i * h, w = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
      s += w * (r - a) * (b - r) * d.pdf(r);
    }
    simpson += s * h / 3.0;
  }
  CHECK(level_variance(d, levels) == doctest::Approx(simpson).epsilon(1e-9));
}

TEST_CASE("truncated normal: V(levels) against a Monte-Carlo estimate") {
  const double mu = 0.1, sigma = 0.3;
  const TruncatedNormal d(mu, sigma);
  const std::vector<double> levels = {-1.0, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1.0};
  const std::vector<float> lf(levels.begin(), levels.end());
  // Rejection sampling of the truncated normal; the per-sample variance from quant/rounding.h.
  double sum = 0.0, sum_sq = 0.0;
  int64_t kept = 0;
  for (uint64_t i = 0; kept < 200000; ++i) {
    const double r = mu + sigma * double(random_normal(7, 0, i));
    if (r < -1.0 || r > 1.0) continue;
    const double v = rounding_variance(lf.data(), int(lf.size()), float(r));
    sum += v, sum_sq += v * v, ++kept;
  }
  const double mean = sum / kept, se = std::sqrt((sum_sq / kept - mean * mean) / kept);
  CHECK(std::fabs(level_variance(d, levels) - mean) < 5.0 * se);
  CHECK(se < 1e-4);  // so that the check above is informative (V is about 0.01)
}

TEST_CASE("A1 / Z3: uniform levels under a uniform density") {
  // A uniform density on [-1, 1] through the generic interface.
  struct Uniform : Density {
    double cdf(double x) const override { return std::min(1.0, std::max(0.0, (x + 1.0) / 2.0)); }
    double pdf(double x) const override { return (x < -1.0 || x > 1.0) ? 0.0 : 0.5; }
    std::array<double, 3> moments(double a, double b) const override {
      const double t0 = std::max(a, -1.0) - a, t1 = std::min(b, 1.0) - a;
      if (t1 <= t0) return {0, 0, 0};
      return {0.5 * (t1 - t0), 0.25 * (t1 * t1 - t0 * t0), (t1 * t1 * t1 - t0 * t0 * t0) / 6.0};
    }
  } u;
  // V of 8 uniform levels: (2/7)^2 / 6.
  CHECK(level_variance(u, uniform_grid(8)) == doctest::Approx(0.0136054421768707).epsilon(1e-12));
  const std::vector<double> q = quantile_levels(u, 3);
  REQUIRE(q.size() == 8);
  for (int i = 0; i < 8; ++i) CHECK(q[i] == doctest::Approx(uniform_grid(8)[i]).epsilon(1e-12));
  CHECK_THROWS_AS(quantile_levels(u, 0), Error);
  // An almost flat truncated normal has nearly uniform quantiles.
  const std::vector<double> wide = quantile_levels(TruncatedNormal(0.0, 1e3), 3);
  for (int i = 0; i < 8; ++i) CHECK(std::fabs(wide[i] - uniform_grid(8)[i]) < 1e-6);
}

TEST_CASE("mixture histogram: 50000 bins, norm weights, agreement with exact components") {
  const NormalMixtureHist one({0.05}, {0.2}, {3.0});
  CHECK(one.bins() == 50000);
  const TruncatedNormal exact(0.05, 0.2);
  for (double x : {-0.6, -0.1, 0.0, 0.123456, 0.4, 0.99}) {
    CHECK(std::fabs(one.cdf(x) - exact.cdf(x)) < 1e-8);
    CHECK(one.ppf(exact.cdf(x)) == doctest::Approx(x).epsilon(1e-6));
  }
  const std::vector<double> levels = {-1.0, -0.3, -0.05, 0.02, 0.2, 1.0};
  CHECK(level_variance(one, levels) == doctest::Approx(level_variance(exact, levels)).epsilon(1e-6));
  // Weights are norm / sum(norm) (not the square): norms 1 and 3 give 1/4 and 3/4.
  const NormalMixtureHist two({-0.2, 0.3}, {0.1, 0.05}, {1.0, 3.0});
  REQUIRE(two.weights().size() == 2);
  CHECK(two.weights()[1] == doctest::Approx(0.75));
  const TruncatedNormal c0(-0.2, 0.1), c1(0.3, 0.05);
  for (double x : {-0.3, 0.0, 0.25, 0.31, 0.5})
    CHECK(std::fabs(two.cdf(x) - (0.25 * c0.cdf(x) + 0.75 * c1.cdf(x))) < 1e-8);
  CHECK(two.moments(-1.0, 1.0)[0] == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(two.cdf(-1.0) == 0.0);
  CHECK(two.cdf(1.0) == 1.0);
  CHECK(two.pdf(0.3) == doctest::Approx(0.75 * c1.pdf(0.3)).epsilon(1e-3));
  CHECK_THROWS_AS(NormalMixtureHist({0.0}, {0.1}, {0.0}), Error);
  CHECK_THROWS_AS(NormalMixtureHist({0.0, 0.1}, {0.1}, {1.0, 1.0}), Error);
}
