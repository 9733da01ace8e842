// The `standard` quantizer (IST-DASLab/smart-quantizer): known answers E1 and E2, the generic properties of
// 7.1, tail buckets, bits per coordinate.
#include <doctest.h>

#include "quant/bucket_math.h"
#include "quant/standard.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {
std::unique_ptr<GradientQuantizer> standard(int levels, int64_t bucket_size, bool quantize_tail = true) {
  QuantizerOptions o;
  o.levels = levels, o.bucket_size = bucket_size, o.quantize_tail = quantize_tail;
  return make_standard_quantizer(o);
}
}  // namespace

TEST_CASE("standard E1: level 5 on [0, .25, .5, 1] leaves every value on the grid") {
  auto q = standard(5, 4);
  const std::vector<float> x = {0, 0.25f, 0.5f, 1};
  CHECK(q->bucket_levels(x.data(), 4, 0, 0)[0] == std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1});
  for (uint64_t step = 0; step < 20; ++step) CHECK(quantized(*q, x, 1, step) == x);
  CHECK(q->variance(x.data(), 4, 0, 0) == 0.0);
}

TEST_CASE("standard E2: level 3, 0.25 goes to 0 or 0.5 with probability 1/2, variance 0.0625") {
  auto q = standard(3, 4);
  const std::vector<float> x = {0, 0.25f, 0.5f, 1};
  CHECK(q->bucket_levels(x.data(), 4, 0, 0)[0] == std::vector<float>{0, 0.5f, 1});
  CHECK(q->variance(x.data(), 4, 0, 0) == doctest::Approx(0.0625).epsilon(1e-12));
  const int draws = 20000;
  int up = 0;
  for (int t = 0; t < draws; ++t) {
    const std::vector<float> y = quantized(*q, x, 5, t);
    CHECK(y[0] == 0.0f);
    CHECK(y[2] == 0.5f);
    CHECK(y[3] == 1.0f);
    REQUIRE((y[1] == 0.0f || y[1] == 0.5f));
    up += y[1] == 0.5f;
  }
  CHECK(std::abs(up / double(draws) - 0.5) <= 4 * std::sqrt(0.25 / draws));
  // bits: 2 scales of 32 bits + 4 indices of 2 bits = 72 bits for 4 coordinates
  CHECK(q->encode(x.data(), 4, 5, 0).bits_per_coordinate() == 18.0);
}

TEST_CASE("standard: generic properties P1-P5 (d = 1000, buckets of 128, tail of 104)") {
  auto q = standard(16, 128);
  const std::vector<float> x = random_vector(1000, 42);
  check_unbiased_and_variance(*q, x, 4000, 9);
  check_outputs_on_levels(*q, x, 9, 5);
  check_deterministic_round_trip(*q, x);
  // P3: values drawn from the bucket's own grid, its endpoints included.
  auto q3 = standard(7, 64);
  std::vector<float> on_grid(64);
  const std::vector<float> grid = q3->bucket_levels(x.data(), 64, 0, 0)[0];
  for (int i = 0; i < 64; ++i) on_grid[i] = grid[i == 0 ? 0 : i == 1 ? 6 : int(random_uniform(3, 0, i) * 7)];
  check_levels_fixed(*q3, on_grid, 4);
}

TEST_CASE("standard: constant bucket comes back exactly, with zero variance") {
  auto q = standard(16, 8);
  const std::vector<float> x(8, -0.3f);
  CHECK(quantized(*q, x, 1, 0) == x);
  CHECK(q->variance(x.data(), 8, 1, 0) == 0.0);
}

TEST_CASE("standard: tails (full last bucket, partial tail as its own bucket or passed through, single bucket)") {
  const std::vector<float> x = {0, 1, 0.5f, 0.25f, /**/ 10, 14, 12, 11, /**/ -2, 2};
  SUBCASE("full last bucket is quantized on its own grid") {
    auto q = standard(5, 4);
    const std::vector<float> full(x.begin(), x.begin() + 8);
    const auto levels = q->bucket_levels(full.data(), 8, 0, 0);
    REQUIRE(levels.size() == 2);
    CHECK(levels[1] == std::vector<float>{10, 11, 12, 13, 14});
    CHECK(quantized(*q, full, 1, 0) == full);  // every value is on its bucket's grid
  }
  SUBCASE("partial tail quantized as a bucket of its own length") {
    auto q = standard(3, 4);
    const auto levels = q->bucket_levels(x.data(), 10, 0, 0);
    REQUIRE(levels.size() == 3);
    CHECK(levels[2] == std::vector<float>{-2, 0, 2});
    const Payload p = q->encode(x.data(), 10, 1, 0);
    CHECK(p.passthrough.empty());
    CHECK(p.scales.size() == 6);
    CHECK(p.bits() == 6 * 32 + 10 * 2);
  }
  SUBCASE("partial tail passed through when quantize_tail is off") {
    auto q = standard(3, 4, false);
    const Payload p = q->encode(x.data(), 10, 1, 0);
    CHECK(p.passthrough == std::vector<float>{-2, 2});
    CHECK(p.bits() == 4 * 32 + 2 * 32 + 8 * 2);
    const std::vector<float> y = quantized(*q, x, 1, 0);
    CHECK(y[8] == -2.0f);
    CHECK(y[9] == 2.0f);
    CHECK(q->bucket_levels(x.data(), 10, 0, 0).size() == 2);
  }
  SUBCASE("a single bucket shorter than bucket_size") {
    auto q = standard(3, 512);
    const auto levels = q->bucket_levels(x.data(), 10, 0, 0);
    REQUIRE(levels.size() == 1);
    CHECK(levels[0] == std::vector<float>{-2, 6, 14});
  }
}

TEST_CASE("standard: round_to_grid's index is grid_interval's interval and the rounding rule, for every grid size") {
  // Buckets of 203 values (whole groups of sixteen and a rest): random ones, ones lying on the
  // grid's points, and a bucket so far from zero that neighbouring grid points coincide.
  for (int levels = 2; levels <= 18; ++levels)
    for (int kind = 0; kind < 3; ++kind) {
      const int64_t n = 203;
      std::vector<float> a = random_vector(n, 40 + levels), u(n);
      for (int64_t k = 0; k < n; ++k) u[size_t(k)] = random_uniform(5, uint64_t(levels), uint64_t(k));
      if (kind == 2)
        for (int64_t k = 0; k < n; ++k) a[size_t(k)] = 1e8f + float(k % 3) * 8.0f;  // float spacing 8 here
      UniformGrid grid = fit_uniform_grid(a.data(), n, levels);
      std::vector<float> table(static_cast<size_t>(levels));
      uniform_grid_points(grid, levels, table.data());
      if (kind == 1)
        for (int64_t k = 0; k < n; ++k) a[size_t(k)] = table[size_t(k % levels)];
      std::vector<uint32_t> index(n);
      round_to_grid(a.data(), n, grid, table.data(), levels, u.data(), index.data());
      int64_t differ = 0;
      for (int64_t k = 0; k < n; ++k) {
        const int j = grid_interval(a[size_t(k)], grid.fmin, 1.0f / grid.unit, table.data(), levels);
        const float low = table[size_t(j)], high = table[size_t(j + 1)];
        const uint32_t expected = uint32_t(j) + (u[size_t(k)] * (high - low) < a[size_t(k)] - low ? 1u : 0u);
        differ += index[size_t(k)] != expected;
      }
      CAPTURE(levels);
      CAPTURE(kind);
      CHECK(differ == 0);
    }
}

TEST_CASE("standard: bad options are errors") {
  CHECK_THROWS_WITH_AS(standard(1, 4), doctest::Contains("levels >= 2"), Error);
  CHECK_THROWS_WITH_AS(standard(4, 0), doctest::Contains("bucket_size"), Error);
  auto q = standard(4, 4);
  Payload p;
  p.scheme = "exponential";
  std::vector<float> out(4);
  CHECK_THROWS_WITH_AS(q->decode(p, out.data()), doctest::Contains("standard decoder"), Error);
}

TEST_CASE("standard, exponential, hadamard: more passthrough values than coordinates is an error") {
  for (const char* name : {"standard", "exponential", "hadamard"}) {
    CAPTURE(name);
    QuantizerOptions o;
    o.bucket_size = 4, o.quantize_tail = false;
    auto q = make_quantizer(name, o);
    const std::vector<float> x = {1, 2, 3, 4, 5, 6};
    Payload p = q->encode(x.data(), 6, 1, 0);  // one bucket of 4, two values passed through
    p.scales.clear();
    p.passthrough.resize(8);
    std::vector<float> out(8);
    CHECK_THROWS_WITH_AS(q->decode(p, out.data()), doctest::Contains("8 passthrough values for 6"), Error);
  }
}
