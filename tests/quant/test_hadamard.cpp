// The orthonormal Walsh-Hadamard transform and the `hadamard` quantizer (IST-DASLab/smart-quantizer; labels as in docs/quantizer-tests.md): E5, the
// transform's orthonormality and self-inverse, the generic properties (the padded tail
// included), the payload's padded index count.
#include <doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "quant/hadamard.h"
#include "quant/walsh_hadamard.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {
std::unique_ptr<GradientQuantizer> hadamard(int levels, int64_t bucket_size) {
  QuantizerOptions o;
  o.levels = levels, o.bucket_size = bucket_size;
  return make_hadamard_quantizer(o);
}
}  // namespace

TEST_CASE("walsh_hadamard: known answers for n = 1, 2, 4") {
  std::vector<float> one = {3};
  walsh_hadamard(one.data(), 1);
  CHECK(one[0] == 3.0f);
  std::vector<float> v = {1, 1, 1, 1};
  walsh_hadamard(v.data(), 4);
  CHECK(v == std::vector<float>{2, 0, 0, 0});
  std::vector<float> w = {1, 2, 3, 4};  // H_4 rows: ++++, +-+-, ++--, +--+ ; /2
  walsh_hadamard(w.data(), 4);
  CHECK(w == std::vector<float>{5, -1, -2, 0});
  CHECK(next_power_of_two(1) == 1);
  CHECK(next_power_of_two(100) == 128);
  CHECK(next_power_of_two(128) == 128);
  CHECK_THROWS_AS(walsh_hadamard(w.data(), 3), Error);
}

TEST_CASE("walsh_hadamard: norm preserving and self-inverse for random vectors of length 2^k") {
  for (int k = 0; k <= 12; ++k) {
    const int64_t n = int64_t(1) << k;
    const std::vector<float> v = random_vector(n, 100 + k);
    std::vector<float> h = v;
    walsh_hadamard(h.data(), n);
    double norm_v = 0, norm_h = 0;
    for (int64_t i = 0; i < n; ++i) norm_v += double(v[i]) * v[i], norm_h += double(h[i]) * h[i];
    CHECK(norm_h == doctest::Approx(norm_v).epsilon(1e-5));
    walsh_hadamard(h.data(), n);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(double(h[i]) - v[i]));
    CHECK(worst < 1e-5);
  }
}

// The transform by its definition: stage after stage over the whole vector, then the scaling.
std::vector<float> walsh_hadamard_by_stages(std::vector<float> x) {
  const int64_t n = int64_t(x.size());
  for (int64_t half = 1; half < n; half *= 2)
    for (int64_t k = 0; k < n; ++k)
      if (!(k & half)) {
        const float a = x[size_t(k)], b = x[size_t(k + half)];
        x[size_t(k)] = a + b;
        x[size_t(k + half)] = a - b;
      }
  const float scale = float(1.0 / std::sqrt(double(n)));
  for (float& v : x) v *= scale;
  return x;
}

TEST_CASE("walsh_hadamard: bit for bit the stage-by-stage definition, whatever order the butterflies run in") {
  // Values of every magnitude, signed zeros, infinities and NaN (which must stay NaN; its payload
  // may depend on the operands' order).
  const float specials[] = {0.0f, -0.0f, 1e-40f, -3e38f, 3e38f, INFINITY, -INFINITY, NAN};
  for (int k = 0; k <= 17; ++k) {
    const int64_t n = int64_t(1) << k;
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> x = random_vector(n, 300 + 3 * k + variant);
      for (int64_t i = 0; i < n; ++i) {
        x[size_t(i)] *= std::ldexp(1.0f, int(i % 61) - 30);
        if (variant == 1 && i % 7 == 3) x[size_t(i)] = specials[i % 7 == 3 ? (i / 7) % 7 : 0];  // no NaN
        if (variant == 2 && i == n / 3) x[size_t(i)] = specials[7];
      }
      const std::vector<float> expected = walsh_hadamard_by_stages(x);
      walsh_hadamard(x.data(), n);
      int64_t differ = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float a = x[size_t(i)], b = expected[size_t(i)];
        if (std::isnan(a) || std::isnan(b) ? std::isnan(a) != std::isnan(b) : std::memcmp(&a, &b, sizeof a) != 0)
          ++differ;
      }
      CAPTURE(n);
      CAPTURE(variant);
      CHECK(differ == 0);
    }
  }
}

TEST_CASE("hadamard E5: [1, 0, 0, 0] rotates to a constant and comes back exactly") {
  auto q = hadamard(16, 4);
  const std::vector<float> x = {1, 0, 0, 0};
  for (uint64_t step = 0; step < 20; ++step) {
    const auto levels = q->bucket_levels(x.data(), 4, 3, step)[0];
    CHECK(std::fabs(levels[0]) == 0.5f);       // +-[.5, .5, .5, .5]: min = max
    CHECK(levels[0] == levels[15]);
    CHECK(quantized(*q, x, 3, step) == x);
    CHECK(q->variance(x.data(), 4, 3, step) == 0.0);
  }
}

TEST_CASE("hadamard: generic properties, a padded tail (104 -> 128) and padded buckets (100 -> 128)") {
  const std::vector<float> x = random_vector(1000, 21);
  auto q = hadamard(16, 128);
  check_unbiased_and_variance(*q, x, 3000, 8);
  check_deterministic_round_trip(*q, x);
  // every bucket padded: the variance carries the d/n factor
  auto padded = hadamard(4, 100);
  const std::vector<float> short_x(x.begin(), x.begin() + 300);
  check_unbiased_and_variance(*padded, short_x, 10000, 8);
}

TEST_CASE("hadamard: the payload sends the padded indices; signs depend on seed and step") {
  auto q = hadamard(16, 100);
  const std::vector<float> x = random_vector(100, 5);
  const Payload p = q->encode(x.data(), 100, 1, 0);
  CHECK(p.extra_indices == 28);
  CHECK(p.bits() == 2 * 32 + 128 * 4);
  CHECK(p.bits_per_coordinate() == doctest::Approx(5.76));
  CHECK(q->bucket_levels(x.data(), 100, 1, 0) != q->bucket_levels(x.data(), 100, 1, 1));
  CHECK(q->bucket_levels(x.data(), 100, 1, 0) != q->bucket_levels(x.data(), 100, 2, 0));
  // the rotation shrinks the range of a spiky bucket: a smaller grid than the input's
  std::vector<float> spike(100, 0.0f);
  spike[7] = 10;
  const auto levels = q->bucket_levels(spike.data(), 100, 1, 0)[0];
  CHECK(levels.back() - levels.front() < 3.0f);
}
