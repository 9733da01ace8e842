// The `exponential` quantizer (IST-DASLab/smart-quantizer; E4 as in docs/quantizer-tests.md): known answers derived by hand (including E4, the upward
// bias of tiny coordinates), the generic properties on inputs without tiny coordinates.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/bucket_math.h"
#include "quant/exponential.h"
#include "quant/payload.h"
#include "quant/rounding.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {
std::unique_ptr<GradientQuantizer> exponential(int levels, int64_t bucket_size) {
  QuantizerOptions o;
  o.levels = levels, o.bucket_size = bucket_size;
  return make_exponential_quantizer(o);
}
}  // namespace

// x = [-3, 4, 0]: norm 5, m = [.6, .8, 0]; max_pow = ceil(log2 .8) = 0.
// levels 4 (k = 2): min_pow = 0, magnitudes {1/2, 1}: outputs +-2.5, +-5.
//   -3 -> -5 w.p. (.6-.5)/.5 = .2, else -2.5;  4 -> 5 w.p. .6, else 2.5
//   0 is clamped up to 1/2 -> always +2.5 (E4: biased, zero variance)
//   variance = 25 * (.1*.4 + .3*.2) = 2.5
TEST_CASE("exponential E4 (levels 4): hand-computed levels, probabilities, bias and variance") {
  auto q = exponential(4, 8);
  const std::vector<float> x = {-3, 4, 0};
  CHECK(q->bucket_levels(x.data(), 3, 0, 0)[0] == std::vector<float>{-5, -2.5f, 2.5f, 5});
  CHECK(q->variance(x.data(), 3, 0, 0) == doctest::Approx(2.5).epsilon(1e-6));
  const int draws = 20000;
  int low_first = 0, high_second = 0;
  for (int t = 0; t < draws; ++t) {
    const std::vector<float> y = quantized(*q, x, 3, t);
    REQUIRE((y[0] == -5.0f || y[0] == -2.5f));
    REQUIRE((y[1] == 5.0f || y[1] == 2.5f));
    CHECK(y[2] == 2.5f);  // the tiny coordinate: always +smallest level
    low_first += y[0] == -5.0f;
    high_second += y[1] == 5.0f;
  }
  CHECK(std::abs(low_first / double(draws) - 0.2) <= 4 * std::sqrt(0.2 * 0.8 / draws));
  CHECK(std::abs(high_second / double(draws) - 0.6) <= 4 * std::sqrt(0.6 * 0.4 / draws));
  // 2 scales (norm, max_pow) + 3 indices of 2 bits
  const Payload p = q->encode(x.data(), 3, 3, 0);
  CHECK(p.scales == std::vector<float>{5, 0});
  CHECK(p.bits() == 64 + 6);
}

TEST_CASE("exponential E4 (levels 16): the zero coordinate is returned as +norm/128") {
  auto q = exponential(16, 512);
  const std::vector<float> x = {3, 4, 0, -0.0f};
  const auto levels = q->bucket_levels(x.data(), 4, 0, 0)[0];
  REQUIRE(levels.size() == 16);
  CHECK(levels[8] == 5.0f / 128);  // 2^(max_pow - k + 1) * norm, k = 8
  CHECK(levels[15] == 5.0f);
  for (int t = 0; t < 50; ++t) {
    const std::vector<float> y = quantized(*q, x, 1, t);
    CHECK(y[2] == 5.0f / 128);
    CHECK(y[3] == 5.0f / 128);  // -0 counts as +
  }
}

TEST_CASE("exponential: powers of two of the norm are levels (P3), a zero bucket is tiny and positive") {
  auto q = exponential(8, 7);
  // norm 1, magnitudes 1/2 and 1/4: on the levels {1/8, 1/4, 1/2, 1}
  const std::vector<float> x = {0.5f, -0.5f, 0.5f, 0.25f, -0.25f, 0.25f, 0.25f};
  check_levels_fixed(*q, x, 2);
  const std::vector<float> zeros(4, 0.0f);
  const std::vector<float> y = quantized(*q, zeros, 1, 0);
  for (float v : y) CHECK(v == std::ldexp(1e-11f, -32 - 4 + 1));
}

TEST_CASE("exponential: generic properties P1-P5 (magnitudes in [0.1, 1]: no tiny coordinates)") {
  auto q = exponential(16, 128);
  const std::vector<float> x = random_vector(1000, 7, 0.1f);
  check_unbiased_and_variance(*q, x, 4000, 5);
  check_outputs_on_levels(*q, x, 5, 5);
  check_deterministic_round_trip(*q, x);
}

TEST_CASE("exponential: tiny coordinates are biased upwards (P1 fails there, as in the reference)") {
  auto q = exponential(4, 4);
  const std::vector<float> x = {1, 0.01f, 0.02f, -0.01f};
  const std::vector<float> y = quantized(*q, x, 1, 0);
  CHECK(std::fabs(y[1]) > 0.4f);  // smallest level: norm/2
  CHECK(y[3] < -0.4f);            // the sign is kept
}

namespace {

// The encoder's index for coordinate i of a bucket, written out from the formula above.
uint32_t reference_index(const std::vector<float>& bucket, size_t i, int k, uint64_t seed, uint64_t step,
                         int64_t flat) {
  float largest = 0;
  for (float v : bucket) largest = std::max(largest, std::fabs(v));
  float norm = float(std::sqrt(lane_sum_of_squares(bucket.data(), int64_t(bucket.size()))));
  if (norm == 0.0f) norm = 1e-11f;
  const int max_pow = largest / norm == 0.0f ? -32 : std::min(ceil_log2(largest / norm), 0);
  const int min_pow = max_pow - k + 2;
  const float m = std::fabs(bucket[i]) / norm;
  const int j = exponential_interval(m, min_pow, k);
  const float low = std::ldexp(1.0f, max_pow - k + 1 + j), high = std::ldexp(1.0f, max_pow - k + 2 + j);
  const float clamped = std::min(std::max(m, low), high);
  const int magnitude = j + (random_uniform(seed, quant_stream(step), uint64_t(flat)) * (high - low) < clamped - low);
  return uint32_t(bucket[i] < 0.0f ? k - 1 - magnitude : k + magnitude);
}

}  // namespace

TEST_CASE("exponential: every index is the formula's, for zeros, -0, subnormals and exact powers of two") {
  // Buckets of 64: random values with zeros, -0 and subnormals among them; and +-1/4 sixteen
  // times (norm exactly 1, so m = 1/4 lies on a level) with the rest zero.
  const int64_t bucket = 64, n = 5 * bucket + 11;
  std::vector<float> x = random_vector(n, 77);
  for (int64_t i = 0; i < n; ++i) {
    if (i % 9 == 0) x[size_t(i)] = 0.0f;
    if (i % 9 == 1) x[size_t(i)] = -0.0f;
    if (i % 13 == 2) x[size_t(i)] = i % 2 ? 1e-40f : -3e-39f;
  }
  for (int64_t i = 2 * bucket; i < 3 * bucket; ++i) x[size_t(i)] = i % 4 ? 0.0f : (i % 8 ? 0.25f : -0.25f);
  for (int levels : {4, 8, 16, 32, 34}) {
    CAPTURE(levels);
    const int k = levels / 2;
    const Payload p = exponential(levels, bucket)->encode(x.data(), n, 3, 9);
    int64_t differ = 0;
    for (int64_t b = 0; b * bucket < n; ++b) {
      const std::vector<float> values(x.begin() + b * bucket, x.begin() + std::min(n, (b + 1) * bucket));
      for (size_t i = 0; i < values.size(); ++i) {
        const int64_t flat = b * bucket + int64_t(i);
        differ += unpack_index(p.indices, flat, p.index_bits) != reference_index(values, i, k, 3, 9, flat);
      }
    }
    CHECK(differ == 0);
  }
}

TEST_CASE("exponential: bad level counts are errors") {
  CHECK_THROWS_WITH_AS(exponential(2, 4), doctest::Contains("even level count >= 4"), Error);
  CHECK_THROWS_WITH_AS(exponential(7, 4), doctest::Contains("even level count >= 4"), Error);
}
