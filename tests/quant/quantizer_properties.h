// Generic properties every stochastic-rounding gradient quantizer must have (P1-P5 of docs/quantizer-tests.md), for any
// scheme's tests to call:
//   P1 unbiasedness (per-coordinate z-test over many draws), P2 the empirical E||Q(x) - x||^2
//   equals variance(), P3 values already on the levels come back unchanged with zero variance,
//   P4 every output is one of bucket_levels (exactly), P5 the same seed gives bit-identical
//   output and another seed or step a different one, and decode(encode(x)) == quantize(x) with
//   every packed index inside its bucket's level table.
// Draw t uses step t, so the draws are independent and the whole check is deterministic.
#pragma once
#include <doctest.h>

#include <cmath>
#include <vector>

#include "quant/bucketing.h"
#include "quant/quantizer.h"
#include "tensor/random.h"

namespace qnn::testing {

// d values ~ N(0, 1) (deterministic), or with magnitudes uniform in [lo, 1] and random signs.
inline std::vector<float> random_vector(int64_t d, uint64_t seed, float magnitude_low = -1.0f) {
  std::vector<float> x(d);
  for (int64_t i = 0; i < d; ++i) {
    if (magnitude_low < 0) {
      x[i] = random_normal(seed, 1, i);
    } else {
      const float m = magnitude_low + (1.0f - magnitude_low) * random_uniform(seed, 2, i);
      x[i] = random_uniform(seed, 3, i) < 0.5f ? -m : m;
    }
  }
  return x;
}

inline std::vector<float> quantized(const GradientQuantizer& q, std::vector<float> x, uint64_t seed, uint64_t step) {
  q.quantize(x.data(), int64_t(x.size()), seed, step);
  return x;
}

// P1 and P2 together (they share the draws).
inline void check_unbiased_and_variance(const GradientQuantizer& q, const std::vector<float>& x, int draws,
                                        uint64_t seed) {
  const int64_t d = int64_t(x.size());
  std::vector<double> sum(d, 0), sum_sq(d, 0);
  double err = 0, err_sq = 0, variance = 0;
  for (int t = 0; t < draws; ++t) {
    const std::vector<float> y = quantized(q, x, seed, uint64_t(t));
    variance += q.variance(x.data(), d, seed, uint64_t(t));  // depends on the step for Hadamard
    double e = 0;
    for (int64_t i = 0; i < d; ++i) {
      sum[i] += y[i], sum_sq[i] += double(y[i]) * y[i];
      e += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    }
    err += e, err_sq += e * e;
  }
  int failures = 0;
  for (int64_t i = 0; i < d; ++i) {
    const double mean = sum[i] / draws, var = std::max(sum_sq[i] / draws - mean * mean, 0.0);
    const double tolerance = 4 * std::sqrt(var / draws) + 1e-6 * (std::fabs(x[i]) + 1e-3);
    if (std::fabs(mean - x[i]) > tolerance) {
      if (++failures <= 5) FAIL_CHECK(q.name() << " P1: coordinate " << i << " x=" << x[i] << " mean=" << mean);
    }
  }
  CHECK_MESSAGE(failures == 0, q.name() << " P1: " << failures << " biased coordinates");
  const double mean_err = err / draws, spread = std::max(err_sq / draws - mean_err * mean_err, 0.0);
  const double expected = variance / draws;
  CHECK_MESSAGE(std::fabs(mean_err - expected) <= 4 * std::sqrt(spread / draws) + 1e-9 * expected,
                q.name() << " P2: E||Q(x)-x||^2 = " << mean_err << ", variance() = " << expected);
}

// P3: a vector made of its own bucket levels is returned unchanged, with zero variance.
inline void check_levels_fixed(const GradientQuantizer& q, const std::vector<float>& x, uint64_t seed) {
  const int64_t d = int64_t(x.size());
  const std::vector<float> y = quantized(q, x, seed, 0);
  for (int64_t i = 0; i < d; ++i) CHECK_MESSAGE(y[i] == x[i], q.name() << " P3: coordinate " << i);
  CHECK(q.variance(x.data(), d, seed, 0) == 0.0);
}

// P4: every output is exactly one of its bucket's levels.
inline void check_outputs_on_levels(const GradientQuantizer& q, const std::vector<float>& x, uint64_t seed,
                                    int steps) {
  const int64_t d = int64_t(x.size());
  const Buckets buckets(d, q.options().bucket_size, q.options().quantize_tail);
  for (int t = 0; t < steps; ++t) {
    const auto levels = q.bucket_levels(x.data(), d, seed, t);
    REQUIRE(int64_t(levels.size()) == buckets.count);
    const std::vector<float> y = quantized(q, x, seed, t);
    for (int64_t i = 0; i < buckets.quantized; ++i) {
      const std::vector<float>& l = levels[i / buckets.size];
      CHECK_MESSAGE(std::find(l.begin(), l.end(), y[i]) != l.end(), q.name() << " P4: coordinate " << i);
    }
    for (int64_t i = buckets.quantized; i < d; ++i) CHECK(y[i] == x[i]);  // passed-through tail
  }
}

// P5 and the payload round trip.
inline void check_deterministic_round_trip(const GradientQuantizer& q, const std::vector<float>& x) {
  const int64_t d = int64_t(x.size());
  const std::vector<float> a = quantized(q, x, 11, 3), b = quantized(q, x, 11, 3);
  CHECK(a == b);
  CHECK(quantized(q, x, 12, 3) != a);
  CHECK(quantized(q, x, 11, 4) != a);
  const Payload p = q.encode(x.data(), d, 11, 3);
  std::vector<float> decoded(d);
  q.decode(p, decoded.data());
  CHECK(decoded == a);
  CHECK(p.size == d);
  CHECK(p.scheme == q.name());
  const auto levels = q.bucket_levels(x.data(), d, 11, 3);
  for (int64_t i = 0; i < p.size - int64_t(p.passthrough.size()) + p.extra_indices; ++i)
    CHECK(read_index(p.indices.data(), i, p.index_bits) < levels[0].size());
}

}  // namespace qnn::testing
