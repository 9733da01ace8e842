// Non-finite and extreme input for every scheme (quant/quantizer.h, "Non-finite input"): a bucket
// holding NaN, +inf or -inf decodes to NaN throughout (the bits of bucket_nan()), its levels
// and its variance are NaN, and every other bucket is exactly what it would be without it; a
// bucket of finite values decodes either to finite values or, when its scale does not fit a
// float, to NaN throughout (never to an infinity or a mixture); denormals and all-zero buckets
// stay finite. Also the float-to-int conversions that such input reaches (quant/bucket_math.h,
// the level distributions): under -fsanitize=float-cast-overflow these tests find any that is
// undefined.
#include <doctest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quant/adaptive_quantizer.h"
#include "quant/bucket_math.h"
#include "quant/hook.h"
#include "quant/level_distribution.h"
#include "quant/quantizer.h"
#include "tensor/float_bits.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<std::string> schemes() {
  std::vector<std::string> out;
  for (const std::string& name : quantizer_names())
    if (name != "none") out.push_back(name);
  return out;
}

QuantizerOptions options(int64_t bucket, int levels) {
  QuantizerOptions o;
  o.bucket_size = bucket;
  o.levels = levels;
  return o;
}

// Whether y[lo, hi) are all bucket_nan() by bit pattern.
bool all_nan_bits(const std::vector<float>& y, int64_t lo, int64_t hi) {
  for (int64_t i = lo; i < hi; ++i)
    if (float_bits(y[i]) != float_bits(bucket_nan())) return false;
  return true;
}

// For one scheme: bucket 1 (of 4) of a random vector gets `bad` at position `at`; it must decode
// to NaN, the others exactly as when bucket 1 holds finite values.
void check_poisoned_bucket(const std::string& name, const QuantizerOptions& o, float bad, int64_t at) {
  const int64_t bucket = o.bucket_size, n = 4 * bucket;
  const std::vector<float> clean = random_vector(n, 21);
  std::vector<float> x = clean;
  x[bucket + at] = bad;
  const auto q = make_quantizer(name, o);
  INFO(name, " bucket ", bucket, " levels ", o.levels, ": ", bad, " at ", at);
  std::vector<float> y = x, reference = clean;
  REQUIRE_NOTHROW(q->quantize(y.data(), n, 3, 7));
  q->quantize(reference.data(), n, 3, 7);
  CHECK(all_nan_bits(y, bucket, 2 * bucket));
  for (int64_t i = 0; i < n; ++i)
    if (i < bucket || i >= 2 * bucket) CHECK(float_bits(y[i]) == float_bits(reference[i]));
  CHECK(std::isnan(q->variance(x.data(), n, 3, 7)));
  double v = 0;
  const Payload p = q->encode_slice_with_variance(x.data(), n, 0, 3, 7, &v);
  CHECK(std::isnan(v));
  std::vector<float> decoded(n);
  q->decode(p, decoded.data());
  for (int64_t i = 0; i < n; ++i) CHECK(float_bits(decoded[i]) == float_bits(y[i]));
  const auto levels = q->bucket_levels(x.data(), n, 3, 7), clean_levels = q->bucket_levels(clean.data(), n, 3, 7);
  REQUIRE(levels.size() == 4);
  for (float l : levels[1]) CHECK(std::isnan(l));
  CHECK(levels[0] == clean_levels[0]);
  CHECK(levels[3] == clean_levels[3]);
}

// Every bucket of y is all finite or all NaN (by bits).
void check_finite_or_nan_buckets(const std::vector<float>& y, int64_t bucket, const std::string& what) {
  for (int64_t b = 0; b * bucket < int64_t(y.size()); ++b) {
    const int64_t lo = b * bucket, hi = std::min<int64_t>(lo + bucket, int64_t(y.size()));
    bool finite = true;
    for (int64_t i = lo; i < hi; ++i) finite &= std::isfinite(y[i]);
    INFO(what, " bucket ", b);
    CHECK((finite || all_nan_bits(y, lo, hi)));
  }
}

}  // namespace

TEST_CASE("non-finite input: a NaN or an infinity makes its bucket NaN, in every scheme, and nothing else") {
  for (const std::string& name : schemes())
    for (const QuantizerOptions& o : {options(4, 4), options(64, 16)})
      for (float bad : {kNaN, kInf, -kInf})
        for (int64_t at : {int64_t(0), o.bucket_size / 2, o.bucket_size - 1}) check_poisoned_bucket(name, o, bad, at);
}

TEST_CASE("non-finite input: the hook and emulated workers propagate it; a passed-through tail is copied") {
  for (const std::string& name : schemes()) {
    INFO(name);
    std::vector<float> g = random_vector(64 * 3 + 5, 4);
    g[70] = kNaN;
    g[64 * 3 + 1] = kInf;  // in the tail: passed through by the learning-to-quantize schemes
    GradientQuantizationHook hook(make_quantizer(name, options(64, 16)), HookOptions{1, Flattening::network_wide, true});
    std::vector<float> y = g;
    REQUIRE_NOTHROW(hook.apply(y.data(), int64_t(y.size())));  // adaptive schemes refit at step 0
    CHECK(all_nan_bits(y, 64, 128));
    for (int64_t i = 0; i < 64; ++i) CHECK(std::isfinite(y[i]));
    CHECK(std::isnan(hook.last_variance()));
    const bool tail_passed = !hook.quantizer().options().quantize_tail;
    CHECK((tail_passed ? y[64 * 3 + 1] == kInf : std::isnan(y[64 * 3 + 1])));
    std::vector<float> out(g.size());
    REQUIRE_NOTHROW(hook.quantize_and_average({g.data(), g.data()}, int64_t(g.size()), out.data()));
    CHECK(std::isnan(out[64]));
    CHECK(std::isfinite(out[0]));
  }
}

TEST_CASE("non-finite input: values near the float limit give finite buckets or NaN buckets, never infinities") {
  const float max = FLT_MAX;
  const std::vector<std::vector<float>> inputs = {
      {1e38f, -1e38f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f},
      {3e38f, -3e38f, 3e38f, -3e38f, 4.0f, 5.0f, 6.0f, 7.0f},
      {max, max, max, max, -max, 1.0f, 0.0f, max},
      {-max, -max, max, max, max, -max, max, -max},
  };
  for (const std::string& name : schemes())
    for (int levels : {2, 4, 16}) {
      if (name == "exponential" && levels < 4) continue;
      for (const std::vector<float>& x : inputs) {
        const auto q = make_quantizer(name, options(4, levels));
        std::vector<float> y = x;
        REQUIRE_NOTHROW(q->quantize(y.data(), int64_t(y.size()), 5, 0));
        check_finite_or_nan_buckets(y, 4, name + " levels " + std::to_string(levels));
      }
    }
  // Concretely: a min-max grid of 2 points from -3e38 to 3e38 needs a unit of 6e38.
  std::vector<float> wide = {-3e38f, 3e38f, 0.0f, 1.0f};
  make_quantizer("standard", options(4, 2))->quantize(wide.data(), 4, 0, 0);
  CHECK(all_nan_bits(wide, 0, 4));
  // An L2 norm beyond FLT_MAX, an L-infinity norm within it.
  std::vector<float> big(4, 3e38f), big_inf = big;
  make_quantizer("qsgd", options(4, 16))->quantize(big.data(), 4, 0, 0);
  CHECK(all_nan_bits(big, 0, 4));
  make_quantizer("qinf", options(4, 16))->quantize(big_inf.data(), 4, 0, 0);
  for (float v : big_inf) CHECK(v == 3e38f);
}

TEST_CASE("non-finite input: denormals and all-zero buckets stay finite") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<std::vector<float>> inputs = {
      {tiny, 0.0f, 2 * tiny, 3 * tiny, tiny, tiny, 0.0f, -tiny},
      {1e-40f, -1e-41f, 0.0f, 1e-44f, 5e-39f, 0.0f, tiny, 0.0f},
      {0.0f, 0.0f, 0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f},
  };
  for (const std::string& name : schemes())
    for (const std::vector<float>& x : inputs) {
      const auto q = make_quantizer(name, options(4, 16));
      std::vector<float> y = x;
      REQUIRE_NOTHROW(q->quantize(y.data(), 8, 5, 0));
      for (float v : y) CHECK_MESSAGE(std::isfinite(v), name);
      CHECK_MESSAGE(std::isfinite(q->variance(x.data(), 8, 5, 0)), name);
    }
}

TEST_CASE("non-finite input: adaptive refits use the finite buckets only") {
  for (const char* name : {"alq", "alq_nb", "amq", "amq_nb"}) {
    QuantizerOptions o = options(64, 8);
    std::vector<float> clean = random_vector(64 * 10, 8);
    for (int64_t i = 64 * 2; i < 64 * 3; ++i) clean[i] = 0.0f;  // a zero bucket counts for nothing
    std::vector<float> poisoned = clean;
    poisoned[64 * 2] = kNaN;
    poisoned[64 * 2 + 5] = kInf;
    AdaptiveQuantizer a(name, o), b(name, o);
    a.observe(clean.data(), int64_t(clean.size()), 0);
    REQUIRE_NOTHROW(b.observe(poisoned.data(), int64_t(poisoned.size()), 0));
    CHECK_MESSAGE(a.levels() == b.levels(), name);
    for (float l : b.levels()) CHECK(std::isfinite(l));
    // A gradient with no finite bucket leaves the levels as they are.
    std::vector<float> all_nan(64 * 4, kNaN);
    const std::vector<float> before = b.levels();
    b.observe(all_nan.data(), int64_t(all_nan.size()), 100);
    CHECK(b.levels() == before);
  }
}

TEST_CASE("bucket_math: float-to-int conversions clamp before converting") {
  CHECK(clamped_truncation(kNaN, 14) == 0);
  CHECK(clamped_truncation(-kInf, 14) == 0);
  CHECK(clamped_truncation(kInf, 14) == 14);
  CHECK(clamped_truncation(1e30f, 14) == 14);
  CHECK(clamped_truncation(-1e30f, 14) == 0);
  CHECK(clamped_truncation(-0.5f, 14) == 0);
  CHECK(clamped_truncation(2.75f, 14) == 2);
  CHECK(clamped_truncation(13.99f, 14) == 13);
  CHECK(clamped_truncation(14.0f, 14) == 14);
  CHECK(clamped_truncation(3e9f, 2147483647) == 2147483647);
  CHECK(clamped_truncation(5.0f, 0) == 0);
  CHECK(is_finite_float(FLT_MAX));
  CHECK(is_finite_float(std::numeric_limits<float>::denorm_min()));
  CHECK_FALSE(is_finite_float(kInf));
  CHECK_FALSE(is_finite_float(-kInf));
  CHECK_FALSE(is_finite_float(kNaN));
  CHECK(std::isnan(bucket_nan()));
  CHECK(float_bits(bucket_nan()) == 0x7fc00000u);
  // A grid whose unit is the smallest denormal: 1/unit is infinite and (a - fmin) * inf is NaN
  // for a = fmin. The interval still comes out right.
  const float tiny = std::numeric_limits<float>::denorm_min();
  const float unit = fit_grid_unit(0.0f, tiny, 16);
  float table[16];
  for (int j = 0; j < 16; ++j) table[j] = grid_point(0.0f, unit, j);
  CHECK(std::isinf(1.0f / unit));
  CHECK(grid_interval(0.0f, 0.0f, 1.0f / unit, table, 16) == 0);
  CHECK(grid_interval(tiny, 0.0f, 1.0f / unit, table, 16) == 1);
  CHECK(grid_interval(kNaN, 0.0f, 1.0f, table, 16) == 0);
  CHECK_FALSE(grid_is_finite(-3e38f, fit_grid_unit(-3e38f, 3e38f, 2), 2));
  CHECK(grid_is_finite(-3e38f, fit_grid_unit(-3e38f, 3e38f, 3), 3));
}

TEST_CASE("level distributions: NaN and far-away arguments reach no undefined conversion") {
  const NormalMixtureHist mix({0.0, 0.1}, {0.2, 0.3}, {1.0, 2.0}, 1000);
  CHECK_NOTHROW(mix.cdf(kNaN));
  CHECK_NOTHROW(mix.pdf(kNaN));
  CHECK(mix.cdf(-2.0) == 0.0);
  CHECK(mix.cdf(2.0) == 1.0);
  // A component centred far outside [-1, 1] with a wide sigma: its bin range is clamped.
  const NormalMixtureHist far({1e10}, {1e10}, {1.0}, 1000);
  CHECK(far.cdf(1.0) == 1.0);
  CHECK(std::isfinite(far.cdf(0.0)));
}
