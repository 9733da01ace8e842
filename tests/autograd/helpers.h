// Shared helpers for the autograd tests: value comparison, seeded inputs away from kinks, and a
// gradcheck assertion that prints the mismatches when it fails.
#pragma once
#include <doctest.h>

#include <vector>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"

namespace qnn::testing {

// Every element of t is within tol (relative, and absolute near zero) of expected.
inline void check_values(const Tensor& t, const std::vector<float>& expected, double tol = 1e-5) {
  REQUIRE(t.numel() == static_cast<int64_t>(expected.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    INFO("element ", i);
    CHECK(t.data()[i] == doctest::Approx(expected[i]).epsilon(tol));
  }
}

// Seeded values in [-1, 1] kept at least `margin` away from zero (relu's kink).
inline Tensor away_from_zero(Shape shape, uint64_t seed, float margin = 0.1f) {
  Tensor t = Tensor::uniform(std::move(shape), -1.0f, 1.0f, seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] += t.data()[i] < 0 ? -margin : margin;
  return t;
}

// Distinct values spaced `gap` apart in a scrambled order (no ties for max pooling).
inline Tensor distinct(Shape shape, float gap = 0.05f) {
  Tensor t(std::move(shape));
  const int64_t n = t.numel();
  int64_t step = 7919;  // a prime: i -> i * step mod n is a permutation when n is not a multiple
  while (n % step == 0) step += 2;
  for (int64_t i = 0; i < n; ++i) t.data()[i] = static_cast<float>((i * step) % n) * gap - 1.0f;
  return t;
}

using Fn = std::function<Variable(const std::vector<Variable>&)>;

}  // namespace qnn::testing

#define CHECK_GRADCHECK(...)                         \
  do {                                               \
    const auto gc_result = ::qnn::gradcheck(__VA_ARGS__); \
    CHECK_MESSAGE(gc_result.ok, gc_result.report);   \
  } while (0)
