// The scheme registry and the adaptive schemes built from it: every listed name constructs (or
// is "none"), bad names and options are clear errors, and the adaptive schemes refit their
// levels on the schedule and keep the stochastic-rounding properties between refits.
#include <doctest.h>

#include "quant/adaptive_quantizer.h"
#include "quant/rounding.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {
// P1 with the exact per-coordinate variance (x - l)(u - x) in the z-score: with levels fitted
// to the data, some coordinates sit so close to a level that a few thousand draws may never
// round them away, and a z-test on the sample variance alone would then report a false bias.
void check_unbiased_exact(const GradientQuantizer& q, const std::vector<float>& x, int draws) {
  const int64_t d = int64_t(x.size());
  const std::vector<std::vector<float>> levels = q.bucket_levels(x.data(), d, 1, 0);
  const int64_t bucket = q.options().bucket_size;
  std::vector<double> sum(d, 0.0);
  for (int t = 0; t < draws; ++t) {
    const std::vector<float> y = quantized(q, x, 1, uint64_t(t));
    for (int64_t i = 0; i < d; ++i) sum[i] += y[i];
  }
  int failures = 0;
  for (int64_t i = 0; i < d; ++i) {
    const std::vector<float>& l = levels[size_t(i / bucket)];
    const double var = rounding_variance(l.data(), int(l.size()), x[i]);
    if (std::fabs(sum[i] / draws - x[i]) > 4.5 * std::sqrt(var / draws) + 1e-5 * std::fabs(x[i])) ++failures;
  }
  CHECK_MESSAGE(failures == 0, q.name() << " P1: " << failures << " biased coordinates");
}
}  // namespace

TEST_CASE("registry: every listed scheme constructs; bad input is refused") {
  QuantizerOptions options;
  options.levels = 16;
  for (const std::string& name : quantizer_names()) {
    auto q = make_quantizer(name, options);
    if (name == "none") {
      CHECK(q == nullptr);
      continue;
    }
    REQUIRE_MESSAGE(q != nullptr, name);
    CHECK(q->name() == name);
    std::vector<float> x = random_vector(1000, 4);
    const double bits = q->quantize(x.data(), 1000, 1, 0);
    CHECK_MESSAGE(bits > 0, name);
    CHECK_MESSAGE(bits < 32, name);
  }
  CHECK_THROWS_WITH_AS(make_quantizer("zipml", options), doctest::Contains("valid: none, standard"), Error);
  options.levels = 1;
  CHECK_THROWS_WITH_AS(make_quantizer("standard", options), doctest::Contains("levels must be >= 2"), Error);
  options.levels = 16;
  options.bucket_size = 0;
  CHECK_THROWS_WITH_AS(make_quantizer("qsgd", options), doctest::Contains("bucket_size must be >= 1"), Error);
}

TEST_CASE("adaptive schemes: levels refit at scheduled steps and properties hold between refits") {
  QuantizerOptions options;
  options.bits = 3;
  options.bucket_size = 256;
  for (const char* name : {"alq", "alq_nb", "amq", "amq_nb"}) {
    AdaptiveQuantizer q(name, options);
    const std::vector<float> start = q.levels();
    std::vector<float> g = random_vector(256 * 40, 11);
    q.observe(g.data(), int64_t(g.size()), 0);
    CHECK_MESSAGE(q.adaptive().refits() == 1, name);
    const std::vector<float> fitted = q.levels();
    CHECK_MESSAGE(fitted != start, name << " levels unchanged by the refit");
    CHECK(fitted.size() == start.size());
    q.observe(g.data(), int64_t(g.size()), 50);  // not a scheduled step
    CHECK(q.adaptive().refits() == 1);
    CHECK(q.levels() == fitted);
    std::vector<float> x = random_vector(512, 3);
    check_unbiased_exact(q, x, 2000);
    check_outputs_on_levels(q, x, 5, 20);
  }
}
