// ALQ, AMQ, the refit schedule and AdaptiveLevels (Tabrizian/learning-to-quantize; properties A1, A2, A4 of docs/quantizer-tests.md).
#include <doctest.h>

#include <cmath>
#include <vector>

#include "quant/adaptive_levels.h"
#include "tensor/check.h"
#include "tensor/random.h"

using namespace qnn;

namespace {
struct Uniform : Density {
  double cdf(double x) const override { return std::min(1.0, std::max(0.0, (x + 1.0) / 2.0)); }
  double pdf(double x) const override { return (x < -1.0 || x > 1.0) ? 0.0 : 0.5; }
  std::array<double, 3> moments(double a, double b) const override {
    const double t0 = std::max(a, -1.0) - a, t1 = std::min(b, 1.0) - a;
    if (t1 <= t0) return {0, 0, 0};
    return {0.5 * (t1 - t0), 0.25 * (t1 * t1 - t0 * t0), (t1 * t1 * t1 - t0 * t0 * t0) / 6.0};
  }
};

void check_strictly_between(const std::vector<double>& levels) {
  REQUIRE(levels.size() >= 2);
  CHECK(levels.front() == -1.0);
  CHECK(levels.back() == 1.0);
  for (size_t i = 0; i + 1 < levels.size(); ++i) CHECK(levels[i] < levels[i + 1]);
}

// A gradient of `buckets` buckets of 512 normal coordinates (bucket b scaled by b + 1) plus a tail.
std::vector<float> synthetic_gradient(int buckets, float shift) {
  std::vector<float> g(size_t(buckets) * 512 + 100);
  for (size_t i = 0; i < g.size(); ++i)
    g[i] = (float(i / 512) + 1.0f) * (random_normal(11, 3, i) + shift);
  return g;
}
}  // namespace

TEST_CASE("A1: uniform levels are a fixed point of the closed-form ALQ update") {
  const Uniform u;
  std::vector<double> start(8);
  for (int i = 0; i < 8; ++i) start[i] = -1.0 + 2.0 * i / 7.0;
  for (int i = 1; i < 7; ++i)
    CHECK(alq_closed_form_level(u, start[i - 1], start[i + 1]) == doctest::Approx(start[i]).epsilon(1e-12));
  std::vector<double> losses;
  const std::vector<double> out = alq_descent(u, start, AlqOptions{}, &losses);
  for (int i = 0; i < 8; ++i) CHECK(out[i] == doctest::Approx(start[i]).epsilon(1e-12));
  REQUIRE(losses.size() == 30);
  CHECK(losses.back() == doctest::Approx(4.0 / 49.0 / 6.0).epsilon(1e-10));
  // From exponential levels, ALQ on a uniform density walks towards the uniform grid.
  const std::vector<double> fitted = alq_descent(u, multiplier_levels(3, 0.5), AlqOptions{200, true, false});
  for (int i = 0; i < 8; ++i) CHECK(fitted[i] == doctest::Approx(start[i]).epsilon(1e-4));
}

TEST_CASE("A2: ALQ never increases V and keeps every level strictly between its neighbours") {
  const TruncatedNormal nl(0.01, 0.08);
  const NormalMixtureHist nb({0.0, 0.02, -0.01}, {0.05, 0.1, 0.03}, {1.0, 2.0, 0.5});
  for (const Density* d : {static_cast<const Density*>(&nl), static_cast<const Density*>(&nb)}) {
    for (bool symmetric : {false, true}) {
      for (const std::vector<double>& start :
           {multiplier_levels(3, 0.5), quantile_levels(nb, 3), multiplier_levels(4, 0.7)}) {
        std::vector<double> losses;
        const std::vector<double> out = alq_descent(*d, start, AlqOptions{30, true, symmetric}, &losses);
        CAPTURE(symmetric);
        check_strictly_between(out);
        REQUIRE(losses.size() == 30);
        if (symmetric) {
          // The mirrored half: its V may rise, since the positive half is fitted against a
          // dummy level at 0 rather than the true central interval (learning-to-quantize's --nuq_sym).
          for (size_t i = 0; i < out.size(); ++i) CHECK(out[i] == -out[out.size() - 1 - i]);
          continue;
        }
        CHECK(losses.front() <= level_variance(*d, start) * (1 + 1e-12));
        for (size_t e = 1; e < losses.size(); ++e) CHECK(losses[e] <= losses[e - 1] * (1 + 1e-12));
      }
    }
  }
  // The finite-difference variant also keeps levels ordered, and its loss does not grow.
  std::vector<double> losses;
  const std::vector<double> fd = alq_descent(nl, multiplier_levels(3, 0.5), AlqOptions{5, false, false}, &losses);
  check_strictly_between(fd);
  CHECK(losses.back() <= level_variance(nl, multiplier_levels(3, 0.5)));
  // fit_alq picks the best of its three starts: no worse than ALQ from exp(0.5) levels alone.
  const std::vector<double> best = fit_alq(nb, nb, 3, AlqOptions{});
  check_strictly_between(best);
  CHECK(level_variance(nb, best) <= level_variance(nb, alq_descent(nb, multiplier_levels(3, 0.5), AlqOptions{})) + 1e-15);
  CHECK_THROWS_AS(alq_descent(nl, {-1.0, 0.5, 0.2, 1.0}, AlqOptions{}), Error);
}

TEST_CASE("AMQ: closed-form dV/dp against central finite differences") {
  const double h = 1e-6;
  for (int bits : {2, 3, 4}) {
    for (const TruncatedNormal& d : {TruncatedNormal(0.0, 0.15), TruncatedNormal(0.05, 0.3)}) {
      for (double p : {0.2, 0.5, 0.8}) {
        const double fd = (amq_objective(d, p + h, bits) - amq_objective(d, p - h, bits)) / (2 * h);
        CHECK(amq_derivative(d, p, bits) == doctest::Approx(fd).epsilon(1e-5));
      }
    }
  }
  // Mixture: exact components in the sums, the histogram in the central term and objective.
  const NormalMixtureHist nb({0.0, 0.03}, {0.1, 0.2}, {2.0, 1.0});
  for (double p : {0.3, 0.6}) {
    const double fd = (amq_objective(nb, p + 1e-4, 3) - amq_objective(nb, p - 1e-4, 3)) / 2e-4;
    CHECK(amq_derivative(nb, p, 3) == doctest::Approx(fd).epsilon(1e-3));
  }
}

TEST_CASE("A4: for 2 bits ALQ and AMQ give the same levels") {
  const TruncatedNormal d(0.0, 0.25);
  const std::vector<double> alq = alq_descent(d, multiplier_levels(2, 0.5), AlqOptions{200, true, false});
  const double p = fit_amq(d, [&](double q) { return amq_derivative(d, q, 2); }, 2,
                           amq_starting_points(false, true, 0.5), AmqOptions{0.7, 500});
  REQUIRE(alq.size() == 4);
  CHECK(alq[2] == doctest::Approx(p).epsilon(1e-5));
  CHECK(alq[1] == doctest::Approx(-p).epsilon(1e-5));
  // AMQ's optimum is a stationary point of V+.
  CHECK(std::fabs(amq_derivative(d, p, 2)) < 1e-8);
}

TEST_CASE("AMQ: levels and starting points") {
  const std::vector<double> l = multiplier_levels(3, 0.5);
  const std::vector<double> want = {-1, -0.5, -0.25, -0.125, 0.125, 0.25, 0.5, 1};
  CHECK(l == want);
  CHECK(amq_starting_points(false, true, 0.0).size() == 8);
  CHECK(amq_starting_points(true, true, 0.0) == std::vector<double>{0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9});
  CHECK(amq_starting_points(true, false, 0.33)[4] == 0.33);
  CHECK_THROWS_AS(multiplier_levels(0, 0.5), Error);
  CHECK_THROWS_AS(multiplier_levels(3, 0.0), Error);
}

TEST_CASE("refit schedule: steps 0, 100, 2000, then every 10000") {
  const QuantizerOptions o;
  for (int64_t s : {0, 100, 2000, 10000, 20000, 80000}) CHECK(refit_due(s, o));
  for (int64_t s : {1, 99, 101, 1999, 5000, 10001, 15000}) CHECK_FALSE(refit_due(s, o));
  QuantizerOptions imagenet;
  imagenet.refit_every = 50000;
  CHECK_FALSE(refit_due(10000, imagenet));
  CHECK(refit_due(50000, imagenet));
  QuantizerOptions none;
  none.refit_every = 0;
  none.refit_at = {5};
  CHECK(refit_due(5, none));
  CHECK_FALSE(refit_due(0, none));
  CHECK_THROWS_AS(refit_due(-1, o), Error);
}

TEST_CASE("AdaptiveLevels: refits on schedule, every kind gives a valid level set") {
  const std::vector<float> g = synthetic_gradient(8, 0.05f);
  QuantizerOptions schedule;
  schedule.bucket_size = 512;
  for (const char* name : {"alq", "alq_nb", "amq", "amq_nb"}) {
    CAPTURE(name);
    AdaptiveLevels a(adaptive_kind_from_name(name), AdaptiveOptions{});
    const std::vector<float> initial = a.levels();
    REQUIRE(initial.size() == 8);
    CHECK(initial[4] == 0.125f);
    CHECK_FALSE(a.maybe_refit(g.data(), int64_t(g.size()), 1, schedule));
    CHECK(a.levels() == initial);
    REQUIRE(a.maybe_refit(g.data(), int64_t(g.size()), 0, schedule));
    CHECK(a.refits() == 1);
    const std::vector<float>& l = a.levels();
    REQUIRE(l.size() == 8);
    CHECK(l.front() == -1.0f);
    CHECK(l.back() == 1.0f);
    for (size_t i = 0; i + 1 < l.size(); ++i) CHECK(l[i] < l[i + 1]);
    // Normalized coordinates of a 512-bucket are about 1/sqrt(512): the levels move inwards.
    CHECK(l[4] < 0.125f);
    CHECK(a.nb_variance() > 0.0);
    if (a.kind() == AdaptiveKind::amq || a.kind() == AdaptiveKind::amq_nb) {
      const double p = a.multiplier();
      CHECK(l[6] == doctest::Approx(p).epsilon(1e-6));
      CHECK(l[5] == doctest::Approx(p * p).epsilon(1e-6));
    }
    CHECK_FALSE(a.refit(GradientStats{}));  // nothing to fit: levels stay
    CHECK(a.refits() == 1);
  }
  // alq_nb optimizes the norm-based model itself: it beats the exponential start there.
  AdaptiveLevels nb(AdaptiveKind::alq_nb, AdaptiveOptions{});
  GradientStatsAccumulator acc(512);
  acc.add(g.data(), int64_t(g.size()));
  const GradientStats stats = acc.snapshot(20);
  REQUIRE(nb.refit(stats));
  std::vector<double> m, s, n;
  for (const BucketStats& b : stats.buckets) m.push_back(b.mean), s.push_back(b.sigma), n.push_back(b.norm);
  const NormalMixtureHist model(m, s, n);
  CHECK(nb.nb_variance() < level_variance(model, multiplier_levels(3, 0.5)));
  CHECK_THROWS_AS(adaptive_kind_from_name("alqg"), Error);
}
