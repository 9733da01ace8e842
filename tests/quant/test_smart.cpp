// The smart quantizer (IST-DASLab/smart-quantizer): candidate sampling, forced endpoints, tail buckets, the payload,
// the generic stochastic-rounding properties P1-P5 and E7 of docs/quantizer-tests.md and answers
// worked out by hand.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "quant/level_dp.h"
#include "quant/rounding.h"
#include "quant/smart.h"
#include "tensor/check.h"
#include "tensor/random.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace qnn;

namespace {

std::vector<float> gaussian(int64_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = scale * random_normal(seed, 91, uint64_t(i));
  return x;
}

SmartQuantizer smart(int levels, int64_t bucket, double fraction = 0.05) {
  QuantizerOptions o;
  o.levels = levels;
  o.bucket_size = bucket;
  o.sample_fraction = fraction;
  return SmartQuantizer(o);
}

std::vector<float> quantized(const SmartQuantizer& q, std::vector<float> x, uint64_t seed,
                             uint64_t step) {
  q.quantize(x.data(), int64_t(x.size()), seed, step);
  return x;
}

}  // namespace

TEST_CASE("smart: candidate count is max(fraction * d, 512), capped at d") {
  CHECK(smart_candidate_count(51200, 0.05) == 2560);
  CHECK(smart_candidate_count(20000, 0.05) == 1000);
  CHECK(smart_candidate_count(5000, 0.05) == 512);
  CHECK(smart_candidate_count(10000, 0.01) == 512);
  CHECK(smart_candidate_count(512, 0.05) == 512);
  CHECK(smart_candidate_count(300, 0.05) == 300);
  CHECK(smart_candidate_count(5000, 1.0) == 5000);
  CHECK_THROWS_AS(smart_candidate_count(100, 0.0), Error);
  CHECK_THROWS_AS(smart_candidate_count(100, 1.5), Error);
}

TEST_CASE("smart: candidates are distinct bucket values, sorted, endpoints forced to min and max") {
  // Distinct values (a permutation of 0..d-1) so that every value names its index.
  const int64_t d = 20000;
  std::vector<float> x(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) x[size_t(i)] = float((i * 7919) % d);
  const auto a = smart_candidates(x.data(), d, 0, 0.05, 1, 5);
  REQUIRE(a.size() == 1000);
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::set<float>(a.begin(), a.end()).size() == a.size());
  CHECK(a.front() == 0.0f);
  CHECK(a.back() == float(d - 1));
  CHECK(smart_candidates(x.data(), d, 0, 0.05, 1, 5) == a);  // same key, same sample
  CHECK(smart_candidates(x.data(), d, 0, 0.05, 1, 6) != a);  // another step, another sample
  CHECK(smart_candidates(x.data(), d, 0, 0.05, 2, 5) != a);  // another seed, another sample
  CHECK(smart_candidates(x.data(), d, d, 0.05, 1, 5) != a);  // another bucket, another sample
}

TEST_CASE("smart: candidate indices are sampled uniformly") {
  // d = 2048, c = 512: every index is a candidate with probability 1/4. Over 400 steps each
  // index's frequency has standard deviation 0.0217; allow 5 of them. The forced endpoints
  // replace the sample's extremes, so those two are left out of the counts, and so are the 50
  // smallest and largest values, whose counts the replacement lowers.
  const int64_t d = 2048, steps = 400;
  std::vector<float> x(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) x[size_t(i)] = float(i);
  std::vector<int> hits(size_t(d), 0);
  for (int64_t s = 0; s < steps; ++s) {
    const auto a = smart_candidates(x.data(), d, 0, 0.05, 9, uint64_t(s));
    REQUIRE(a.size() == 512);
    for (size_t k = 1; k + 1 < a.size(); ++k) ++hits[size_t(a[k])];
  }
  double total = 0.0, worst = 0.0;
  for (int64_t i = 50; i + 50 < d; ++i) {
    const double f = double(hits[size_t(i)]) / double(steps);
    total += f;
    worst = std::max(worst, std::fabs(f - 0.25));
  }
  CHECK(total / double(d - 100) == doctest::Approx(0.25).epsilon(2e-3));
  CHECK(worst < 5 * 0.0217);
}

TEST_CASE("smart: every bucket's levels start at its min and end at its max, tail included") {
  // Bucket 20000 (1000 sampled candidates) with a few extreme values the sample almost never
  // holds; tail bucket of 3000 (512 sampled candidates); then a full-set tail of 104.
  for (auto [n, bucket] : {std::pair<int64_t, int64_t>{43000, 20000}, {1000, 128}}) {
    auto x = gaussian(n, 4);
    x[17] = 40.0f;
    x[size_t(n) - 5] = -35.0f;
    x[size_t(bucket) + 3] = -50.0f;
    const auto q = smart(16, bucket);
    const auto levels = q.bucket_levels(x.data(), n, 3, 7);
    REQUIRE(int64_t(levels.size()) == (n + bucket - 1) / bucket);
    for (size_t b = 0; b < levels.size(); ++b) {
      const auto begin = x.begin() + int64_t(b) * bucket;
      const auto end = x.begin() + std::min(n, int64_t(b + 1) * bucket);
      REQUIRE(levels[b].size() == 16);
      CHECK(std::is_sorted(levels[b].begin(), levels[b].end()));
      CHECK(levels[b].front() == *std::min_element(begin, end));
      CHECK(levels[b].back() == *std::max_element(begin, end));
    }
  }
}

TEST_CASE("smart: the tail bucket is quantized as a bucket of its own length") {
  // With every value a candidate (buckets <= 512) the levels do not depend on the random key,
  // so the tail's levels must be those of the tail quantized on its own.
  const auto x = gaussian(1000, 8);
  const auto q = smart(8, 128);
  const auto all = q.bucket_levels(x.data(), 1000, 1, 1);
  REQUIRE(all.size() == 8);
  const auto tail = q.bucket_levels(x.data() + 896, 104, 1, 1);
  REQUIRE(tail.size() == 1);
  CHECK(all[7] == tail[0]);
  // The levels are the optimum over the tail's own values.
  std::vector<float> a(x.begin() + 896, x.end());
  std::sort(a.begin(), a.end());
  const double best = optimal_level_points_plain(a.data(), 104, 7).cost;
  CHECK(q.variance(x.data() + 896, 104, 1, 1) == doctest::Approx(best).epsilon(1e-6));
}

TEST_CASE("smart: payload layout, bits and decode(encode(x))") {
  const int64_t n = 1000;
  const auto x = gaussian(n, 12);
  const auto q = smart(16, 128);
  const Payload p = q.encode(x.data(), n, 5, 2);
  CHECK(p.scheme == "smart");
  CHECK(p.size == n);
  CHECK(p.bucket_size == 128);
  CHECK(p.index_bits == 4);
  CHECK(p.scales.empty());
  CHECK(p.passthrough.empty());
  REQUIRE(p.levels.size() == 8 * 16);
  CHECK(p.bits_per_coordinate() == doctest::Approx(4.0 + 32.0 * 8 * 16 / 1000.0));
  const auto levels = q.bucket_levels(x.data(), n, 5, 2);
  std::vector<float> out(static_cast<size_t>(n));
  q.decode(p, out.data());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = i / 128;
    const uint32_t k = unpack_index(p.indices, i, 4);
    CHECK(p.levels[size_t(b * 16 + k)] == levels[size_t(b)][k]);
    CHECK(out[size_t(i)] == levels[size_t(b)][k]);
  }
  CHECK(quantized(q, x, 5, 2) == out);
  // Decoding a payload of another scheme or with a damaged level table is an error.
  Payload other = p;
  other.scheme = "standard";
  CHECK_THROWS_WITH_AS(q.decode(other, out.data()), doctest::Contains("scheme"), Error);
  Payload short_levels = p;
  short_levels.levels.pop_back();
  CHECK_THROWS_AS(q.decode(short_levels, out.data()), Error);
}

TEST_CASE("smart: P1 unbiased and P2 variance equals the closed form (full candidate set)") {
  // d = 1000 in buckets of 128 (every value a candidate, so the levels are the same at every
  // step), 4 levels for a large variance. Per coordinate z = (mean - x) / sqrt(var_i / N),
  // var_i = (x - l)(r - x); the total squared error's mean is compared with variance().
  const int64_t n = 1000, draws = 10000;
  const auto x = gaussian(n, 21);
  const auto q = smart(4, 128);
  const auto levels = q.bucket_levels(x.data(), n, 7, 0);
  std::vector<double> sum(size_t(n), 0.0);
  double err_sum = 0.0, err_sq = 0.0;
  for (int64_t s = 0; s < draws; ++s) {
    const auto y = quantized(q, x, 7, uint64_t(s));
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      sum[size_t(i)] += y[size_t(i)];
      e += (double(y[size_t(i)]) - x[size_t(i)]) * (double(y[size_t(i)]) - x[size_t(i)]);
    }
    err_sum += e;
    err_sq += e * e;
  }
  double worst_z = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& l = levels[size_t(i / 128)];
    const double var = rounding_variance(l.data(), int(l.size()), x[size_t(i)]);
    const double mean = sum[size_t(i)] / double(draws);
    if (var == 0.0) {
      CHECK(mean == doctest::Approx(x[size_t(i)]).epsilon(1e-6));
      continue;
    }
    worst_z = std::max(worst_z, std::fabs(mean - x[size_t(i)]) / std::sqrt(var / double(draws)));
  }
  CHECK(worst_z < 4.5);  // 1000 coordinates: the largest of 1000 |z| rarely passes 4
  const double v = q.variance(x.data(), n, 7, 0);
  const double mean_err = err_sum / double(draws);
  const double sd = std::sqrt((err_sq / double(draws) - mean_err * mean_err) / double(draws));
  CHECK(std::fabs(mean_err - v) < 4 * sd);
}

TEST_CASE("smart: P1 and P2 with sampled candidates, levels refit at every step") {
  // Bucket of 2048 with 512 sampled candidates: the levels change with the step, yet the output
  // stays unbiased (the endpoints are forced), and variance() is the exact conditional variance
  // of each step: the mean of ||Q(x) - x||^2 - variance(step) is zero.
  const int64_t n = 2048, draws = 1500;
  const auto x = gaussian(n, 33);
  const auto q = smart(8, 2048);
  std::vector<double> sum(size_t(n), 0.0), sq(size_t(n), 0.0);
  double diff_sum = 0.0, diff_sq = 0.0;
  for (int64_t s = 0; s < draws; ++s) {
    const auto y = quantized(q, x, 3, uint64_t(s));
    double e = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double(y[size_t(i)]) - x[size_t(i)];
      sum[size_t(i)] += d;
      sq[size_t(i)] += d * d;
      e += d * d;
    }
    const double diff = e - q.variance(x.data(), n, 3, uint64_t(s));
    diff_sum += diff;
    diff_sq += diff * diff;
  }
  int outliers = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double mean = sum[size_t(i)] / double(draws);
    const double var = sq[size_t(i)] / double(draws) - mean * mean;
    if (std::fabs(mean) > 4.5 * std::sqrt(var / double(draws)) + 1e-12) ++outliers;
  }
  CHECK(outliers <= 1);
  const double mean_diff = diff_sum / double(draws);
  CHECK(std::fabs(mean_diff) <
        4 * std::sqrt((diff_sq / double(draws) - mean_diff * mean_diff) / double(draws)));
}

TEST_CASE("smart: P3 values on levels are unchanged, P4 outputs are levels") {
  const int64_t n = 3000;
  const auto x = gaussian(n, 40);
  const auto q = smart(16, 1024);  // a tail of 952
  for (uint64_t step : {0, 1, 2}) {
    const auto levels = q.bucket_levels(x.data(), n, 11, step);
    const auto y = quantized(q, x, 11, step);
    int on_level = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto& l = levels[size_t(i / 1024)];
      CHECK(std::binary_search(l.begin(), l.end(), y[size_t(i)]));
      if (std::binary_search(l.begin(), l.end(), x[size_t(i)])) {
        ++on_level;
        CHECK(y[size_t(i)] == x[size_t(i)]);
      }
    }
    CHECK(on_level >= 3 * 2);  // at least both endpoints of every bucket
  }
}

TEST_CASE("smart: P5 the same key gives identical output, on any thread count") {
  const int64_t n = 40000;
  const auto x = gaussian(n, 50);
  const auto q = smart(16, 4096);
  const auto y = quantized(q, x, 1, 9);
  CHECK(quantized(q, x, 1, 9) == y);
  CHECK(quantized(q, x, 2, 9) != y);
  CHECK(quantized(q, x, 1, 10) != y);
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto single = quantized(q, x, 1, 9);
  const double v1 = q.variance(x.data(), n, 1, 9);
  omp_set_num_threads(std::max(threads, 2));
  CHECK(single == y);
  CHECK(q.variance(x.data(), n, 1, 9) == v1);
  omp_set_num_threads(threads);
#endif
}

TEST_CASE("smart: E7 full candidate set beats every level subset and usually the uniform grid") {
  // Tiny bucket: brute force over every 4-point subset that holds the min and the max.
  const auto t = gaussian(10, 60);
  std::vector<float> a = t;
  std::sort(a.begin(), a.end());
  double best = INFINITY;
  for (int i = 1; i < 9; ++i)
    for (int j = i; j < 9; ++j) {
      const float points[4] = {a[0], a[size_t(i)], a[size_t(j)], a[9]};
      double v = 0.0;
      for (float r : a) v += rounding_variance(points, 4, r);
      best = std::min(best, v);
    }
  CHECK(smart(4, 512).variance(t.data(), 10, 0, 0) <= best * (1 + 1e-9));
  CHECK(smart(4, 512).variance(t.data(), 10, 0, 0) == doctest::Approx(best).epsilon(1e-6));
  // 200 Gaussian buckets of 512, 16 levels: against the uniform grid from min to max,
  // variance sum (x - l)(r - x) computed here from its closed form.
  const auto q = smart(16, 512);
  int wins = 0;
  const int buckets = 200;
  for (int b = 0; b < buckets; ++b) {
    const auto x = gaussian(512, 1000 + uint64_t(b));
    const auto [lo, hi] = std::minmax_element(x.begin(), x.end());
    const double unit = (double(*hi) - *lo) / 15.0;
    double grid = 0.0;
    for (float v : x) {
      const double k = std::min(std::floor((double(v) - *lo) / unit), 14.0);
      const double l = *lo + k * unit, r = l + unit;
      grid += std::max(0.0, (v - l) * (r - v));
    }
    if (q.variance(x.data(), 512, 0, 0) <= grid) ++wins;
  }
  CHECK(wins > buckets * 95 / 100);
}

TEST_CASE("smart: answers worked out by hand") {
  // As many distinct values as levels: reproduced exactly, zero variance.
  const std::vector<float> x = {0.5f, -1.0f, 2.0f, 0.5f, 3.0f, -1.0f, 2.0f, 3.0f};
  const auto q4 = smart(4, 8);
  CHECK(q4.variance(x.data(), 8, 1, 1) == 0.0);
  CHECK(quantized(q4, x, 1, 1) == x);
  // {0, 0.25, 0.5, 1} with 3 levels: the middle level 0.5 (cost 0.0625) beats 0.25 (0.125);
  // 0.25 rounds to 0 or 0.5 with probability 1/2. With 2 levels: (x)(1 - x) summed = 0.4375.
  const std::vector<float> b = {0.0f, 0.25f, 0.5f, 1.0f};
  const auto q3 = smart(3, 4);
  CHECK(q3.bucket_levels(b.data(), 4, 0, 0)[0] == std::vector<float>{0.0f, 0.5f, 1.0f});
  CHECK(q3.variance(b.data(), 4, 0, 0) == doctest::Approx(0.0625));
  CHECK(smart(2, 4).variance(b.data(), 4, 0, 0) == doctest::Approx(0.4375));
  int up = 0;
  const int draws = 4000;
  for (int s = 0; s < draws; ++s) {
    const auto y = quantized(q3, b, 2, uint64_t(s));
    CHECK((y[1] == 0.0f || y[1] == 0.5f));
    up += y[1] == 0.5f;
    CHECK(y[0] == 0.0f);
    CHECK(y[2] == 0.5f);
    CHECK(y[3] == 1.0f);
  }
  CHECK(std::fabs(up / double(draws) - 0.5) < 4 * std::sqrt(0.25 / draws));
  // A constant bucket: every level is the value, the output is exact.
  const std::vector<float> c(50, -0.75f);
  CHECK(quantized(smart(16, 64), c, 0, 0) == c);
}

TEST_CASE("smart: bad options are errors; a NaN input is not") {
  QuantizerOptions o;
  o.levels = 1;
  CHECK_THROWS_WITH_AS(SmartQuantizer{o}, doctest::Contains("levels"), Error);
  o = QuantizerOptions{};
  o.bucket_size = 0;
  CHECK_THROWS_WITH_AS(SmartQuantizer{o}, doctest::Contains("bucket_size"), Error);
  o = QuantizerOptions{};
  o.sample_fraction = 0.0;
  CHECK_THROWS_WITH_AS(SmartQuantizer{o}, doctest::Contains("sample_fraction"), Error);
  o = QuantizerOptions{};
  o.quantize_tail = false;
  CHECK_THROWS_WITH_AS(SmartQuantizer{o}, doctest::Contains("quantize_tail"), Error);
  const auto q = make_smart_quantizer(QuantizerOptions{});
  CHECK(q->name() == "smart");
  // A NaN is propagated through its bucket (tests/quant/test_non_finite.cpp has every scheme).
  std::vector<float> x = {1.0f, NAN, 2.0f};
  CHECK_NOTHROW(q->quantize(x.data(), 3, 0, 0));
  for (float v : x) CHECK(std::isnan(v));
}
