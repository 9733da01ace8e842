// LevelSetQuantizer (q/qsgd, qinf, nuq, trn; Tabrizian/learning-to-quantize): the known answers Z1 and hand-computed
// buckets, then properties P1-P5 of docs/quantizer-tests.md for every scheme. Monte-Carlo tolerances are
// 4 * sqrt(var / N) (docs/quantizer-tests.md).
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/level_sets.h"
#include "tests/quant/level_set_helpers.h"

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace qnn;
using namespace qnn::test;

TEST_CASE("level-set quantizer: zero input under nuq b = 3 rounds to +-0.125 s w.p. 1/2 (Z1)") {
  // s = 0, so r = 0 / (0 + 1e-7) = 0: no division by zero, the level is +-p^(h-1) = +-0.125 with
  // probability 1/2 each, and the output s * level is 0.
  auto q = make_nuq_quantizer(level_options(512, 3));
  const std::vector<float> x(1024, 0.0f);
  int64_t up = 0, draws = 0;
  double level_sum = 0.0, level_sq = 0.0;
  for (uint64_t step = 0; step < 100; ++step) {
    const Payload p = q->encode(x.data(), 1024, 7, step);
    REQUIRE(p.scales == std::vector<float>{0.0f, 0.0f});
    for (int64_t i = 0; i < 1024; ++i) {
      const uint32_t k = unpack_index(p.indices, i, p.index_bits);
      REQUIRE((k == 3 || k == 4));
      up += k == 4;
      level_sum += p.levels[k];
      level_sq += double(p.levels[k]) * p.levels[k];
      ++draws;
    }
    std::vector<float> out(1024, 1.0f);
    q->decode(p, out.data());
    for (float v : out) REQUIRE(v == 0.0f);
  }
  CHECK(std::fabs(double(up) / draws - 0.5) <= 4 * std::sqrt(0.25 / draws));
  CHECK(std::fabs(level_sum / draws) <= 4 * std::sqrt(0.015625 / draws));  // mean 0
  CHECK(level_sq / draws == 0.015625);  // normalized variance p^(2(h-1))
  CHECK(q->variance(x.data(), 1024, 7, 0) == 0.0);  // s^2 times it
  for (const auto& levels : q->bucket_levels(x.data(), 1024, 7, 0))
    for (float l : levels) CHECK(l == 0.0f);
}

TEST_CASE("level-set quantizer: nuq b = 3, p = 0.5 on the bucket [3, 4] by hand") {
  // s = 5 (5 + 1e-7 == 5 in float), r = (0.6, 0.8), both between the levels 0.5 and 1:
  // 3 -> 5 w.p. 0.2 else 2.5; 4 -> 5 w.p. 0.6 else 2.5; variance 25 * (0.1*0.4 + 0.3*0.2) = 2.5.
  auto q = make_nuq_quantizer(level_options(2, 3));
  const float x[2] = {3.0f, 4.0f};
  CHECK(q->variance(x, 2, 1, 0) == doctest::Approx(2.5).epsilon(1e-6));
  const auto levels = q->bucket_levels(x, 2, 1, 0);
  REQUIRE(levels.size() == 1);
  CHECK(levels[0] == std::vector<float>{-5.0f, -2.5f, -1.25f, -0.625f, 0.625f, 1.25f, 2.5f, 5.0f});
  // 1000 copies of the bucket per step, 100 steps: 1e5 draws of each coordinate.
  std::vector<float> many(2000);
  for (int i = 0; i < 2000; ++i) many[i] = x[i % 2];
  const int n = 100000;
  int top[2] = {0, 0}, off = 0;
  for (int step = 0; step < 100; ++step) {
    std::vector<float> out = many;
    q->quantize(out.data(), 2000, 1, step);
    for (int i = 0; i < 2000; ++i) {
      off += out[i] != 2.5f && out[i] != 5.0f;
      top[i % 2] += out[i] == 5.0f;
    }
  }
  CHECK(off == 0);
  CHECK(std::fabs(top[0] / double(n) - 0.2) <= 4 * std::sqrt(0.2 * 0.8 / n));
  CHECK(std::fabs(top[1] / double(n) - 0.6) <= 4 * std::sqrt(0.6 * 0.4 / n));
}

TEST_CASE("level-set quantizer: qinf b = 2 variance of [2, -1, 0.5, 0] by hand") {
  // s = 2, r = (1, -0.5, 0.25, 0) over levels (-1, -1/3, 1/3, 1):
  // 0 + (1/2)(1/6) + (7/12)(1/12) + (1/3)(1/3) = 35/144, times s^2 = 35/36.
  auto q = make_qinf_quantizer(level_options(4, 2));
  const float x[4] = {2.0f, -1.0f, 0.5f, 0.0f};
  CHECK(q->variance(x, 4, 3, 0) == doctest::Approx(35.0 / 36.0).epsilon(1e-6));
}

TEST_CASE("level-set quantizer: unbiased with the closed-form variance, every scheme (P1, P2)") {
  // d = 1000, buckets of 128: 7 quantized buckets, a 104-coordinate tail passed through.
  // 4000 draws (not 1e5) keep the test near a second; the per-coordinate z-tests at
  // 4 sigma still catch any bias larger than a few percent of a level gap.
  const int64_t d = 1000, bucket = 128;
  const int draws = 4000;
  const std::vector<float> x = normal_vector(d, 11);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(bucket, 3));
    // Per-coordinate variance (x - lo)(hi - x) from the bucket's levels in input units.
    const auto levels = q->bucket_levels(x.data(), d, 5, 0);
    std::vector<double> var(d, 0.0);
    for (int64_t i = 0; i < d; ++i) {
      const auto& l = levels[i / bucket];
      if (l.empty()) continue;
      const auto hi = std::upper_bound(l.begin(), l.end(), x[i]);
      if (hi != l.begin() && hi != l.end()) var[i] = (double(x[i]) - hi[-1]) * (double(*hi) - x[i]);
    }
    std::vector<double> sum(d, 0.0);
    double err = 0.0, err_sq = 0.0;
    std::vector<float> out(d);
    for (int t = 0; t < draws; ++t) {
      out = x;
      q->quantize(out.data(), d, 5, t);
      double e = 0.0;
      for (int64_t i = 0; i < d; ++i) {
        sum[i] += out[i];
        e += (double(out[i]) - x[i]) * (double(out[i]) - x[i]);
      }
      err += e;
      err_sq += e * e;
    }
    int far = 0;
    double total_var = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      total_var += var[i];
      const double mean = sum[i] / draws;
      far += std::fabs(mean - x[i]) > 4 * std::sqrt(var[i] / draws) + 1e-6 * std::fabs(x[i]);
    }
    CHECK(far == 0);
    const double closed = q->variance(x.data(), d, 5, 0);
    CHECK(closed == doctest::Approx(total_var).epsilon(1e-5));
    CHECK(closed > 0.0);
    const double mean_err = err / draws, sd = std::sqrt(err_sq / draws - mean_err * mean_err);
    CHECK(std::fabs(mean_err - closed) <= 4 * sd / std::sqrt(double(draws)));
  }
}

TEST_CASE("level-set quantizer: values on the levels come back unchanged, zero variance (P3)") {
  // Scales that are powers of two make s + 1e-7 == s and x / s exact in float32.
  const float third = uniform_levels(2)[2];  // float(1/3)
  struct Case {
    const char* name;
    std::unique_ptr<GradientQuantizer> q;
    std::vector<float> x;
  };
  std::vector<Case> cases;
  std::vector<float> qsgd;  // 9 * (1/3)^2 = 1: s = 4, then s = 8
  for (float s : {4.0f, 8.0f})
    for (int i = 0; i < 9; ++i) qsgd.push_back((i % 3 ? s : -s) * third);
  cases.push_back({"qsgd", make_qsgd_quantizer(level_options(9, 2)), qsgd});
  cases.push_back({"qinf", make_qinf_quantizer(level_options(4, 2)),
                   {4.0f, -4.0f * third, 4.0f * third, -4.0f, 2.0f * third, -2.0f, -2.0f * third, 2.0f}});
  cases.push_back({"nuq", make_nuq_quantizer(level_options(7, 3)),  // 3/4 + 4/16 = 1: s = 4, 8
                   {2, -2, 2, 1, -1, 1, 1, 4, -4, 4, 2, -2, 2, -2}});
  cases.push_back({"trn", make_trn_quantizer(level_options(4, 3)), {4, -4, 0, 4, 0, 0, 0, 0}});
  for (auto& c : cases) {
    CAPTURE(c.name);
    const int64_t n = int64_t(c.x.size());
    CHECK(c.q->variance(c.x.data(), n, 9, 0) == 0.0);
    for (uint64_t step = 0; step < 50; ++step) {
      std::vector<float> out = c.x;
      c.q->quantize(out.data(), n, 9, step);
      CHECK(out == c.x);
    }
  }
}

TEST_CASE("level-set quantizer: every output is on its bucket's levels (P4)") {
  const int64_t d = 1000, bucket = 128;
  const std::vector<float> x = normal_vector(d, 12, 0.01f);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(bucket, 3));
    const auto levels = q->bucket_levels(x.data(), d, 2, 0);
    REQUIRE(levels.size() == 8);
    CHECK(levels.back().empty());  // the passed-through tail
    for (uint64_t step = 0; step < 20; ++step) {
      std::vector<float> out = x;
      q->quantize(out.data(), d, 2, step);
      int off = 0;
      for (int64_t i = 0; i < d; ++i) {
        const auto& l = levels[i / bucket];
        if (l.empty()) off += out[i] != x[i];
        else off += std::find(l.begin(), l.end(), out[i]) == l.end();
      }
      CHECK(off == 0);
    }
  }
}

TEST_CASE("level-set quantizer: the same seed and step give bit-identical output (P5)") {
  const int64_t d = 5000;
  const std::vector<float> x = normal_vector(d, 13);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(256, 3));
    const Payload a = q->encode(x.data(), d, 42, 17), b = q->encode(x.data(), d, 42, 17);
    CHECK(a.indices == b.indices);
    CHECK(a.scales == b.scales);
    CHECK(q->encode(x.data(), d, 43, 17).indices != a.indices);
    CHECK(q->encode(x.data(), d, 42, 18).indices != a.indices);
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const Payload one = q->encode(x.data(), d, 42, 17);
    const double var_one = q->variance(x.data(), d, 42, 17);
    omp_set_num_threads(std::max(threads, 3));
    const Payload many = q->encode(x.data(), d, 42, 17);
    const double var_many = q->variance(x.data(), d, 42, 17);
    omp_set_num_threads(threads);
    CHECK(one.indices == many.indices);
    CHECK(one.indices == a.indices);
    CHECK(var_one == var_many);
#endif
  }
}

TEST_CASE("level-set quantizer: qinf puts at least one coordinate per bucket on +-s") {
  const int64_t d = 4096, bucket = 512;
  const std::vector<float> x = normal_vector(d, 14, 0.1f);  // norms below 2: the 1e-7 matters
  auto q = make_qinf_quantizer(level_options(bucket, 3));
  for (uint64_t step = 0; step < 20; ++step) {
    const Payload p = q->encode(x.data(), d, 3, step);
    std::vector<float> out(d);
    q->decode(p, out.data());
    REQUIRE(p.scales.size() == 8);
    for (int64_t b = 0; b < 8; ++b) {
      float max_abs = 0.0f;
      bool on_s = false;
      for (int64_t i = b * bucket; i < (b + 1) * bucket; ++i) {
        max_abs = std::max(max_abs, std::fabs(x[i]));
        on_s = on_s || std::fabs(out[i]) == p.scales[b];
      }
      CHECK(p.scales[b] == max_abs);
      CHECK(on_s);
    }
  }
}
