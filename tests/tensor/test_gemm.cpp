// sgemm against the plain triple loop: all transpose combinations, sizes that are not multiples
// of the register tile, alpha/beta values, leading dimensions wider than the matrices, beta = 0
// ignoring NaNs in C, and the threaded path giving exactly the single-threaded bits.
#include <doctest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tensor/gemm.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

std::vector<float> random_vector(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = random_uniform(seed, 0, static_cast<uint64_t>(i)) * 2.0f - 1.0f;
  return v;
}

// Runs sgemm and sgemm_reference on the same inputs and returns the largest error relative to
// the scale of the terms (k products of numbers of size <= 1).
double max_error(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                 int64_t pad, bool nan_c = false) {
  const int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
  const std::vector<float> a = random_vector((ta ? k : m) * lda, 1);
  const std::vector<float> b = random_vector((tb ? n : k) * ldb, 2);
  std::vector<float> c = random_vector(m * ldc, 3);
  if (nan_c) c.assign(c.size(), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> expected = c;
  sgemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  sgemm_reference(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, expected.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const double got = c[i * ldc + j], want = expected[i * ldc + j];
      if (j >= n) {  // outside the matrix: must be untouched (NaN stays NaN)
        if (!(got == want || (std::isnan(got) && std::isnan(want)))) return 1e30;
        continue;
      }
      if (std::isnan(got)) return 1e30;
      worst = std::max(worst, std::abs(got - want) / (1.0 + std::sqrt(static_cast<double>(k))));
    }
  return worst;
}

}  // namespace

TEST_CASE("sgemm matches the reference for every transpose combination and odd size") {
  const int64_t sizes[] = {1, 7, 17, 33, 100};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t m : sizes)
        for (int64_t n : sizes)
          for (int64_t k : {1, 17, 100, 300}) {
            CAPTURE(ta);
            CAPTURE(tb);
            CAPTURE(m);
            CAPTURE(n);
            CAPTURE(k);
            CHECK(max_error(ta, tb, m, n, k, 1.0f, 0.0f, 0) < 1e-5);
          }
}

TEST_CASE("sgemm: alpha, beta and leading dimensions wider than the matrix") {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float alpha : {1.0f, -0.5f, 2.0f})
        for (float beta : {0.0f, 1.0f, 0.25f}) {
          CAPTURE(ta);
          CAPTURE(tb);
          CAPTURE(alpha);
          CAPTURE(beta);
          CHECK(max_error(ta, tb, 33, 45, 29, alpha, beta, 5) < 1e-5);
          CHECK(max_error(ta, tb, 9, 600, 270, alpha, beta, 3) < 1e-5);  // several k and column blocks
        }
}

TEST_CASE("sgemm: beta = 0 ignores NaN in C; alpha = 0 and k = 0 only scale C") {
  CHECK(max_error(false, false, 17, 33, 7, 1.0f, 0.0f, 2, true) < 1e-5);
  CHECK(max_error(true, true, 64, 64, 64, 1.0f, 0.0f, 0, true) < 1e-5);
  std::vector<float> c = {std::numeric_limits<float>::quiet_NaN(), 2.0f};
  const float a = 1.0f, b = 1.0f;
  sgemm(false, false, 1, 2, 0, 1.0f, &a, 1, &b, 2, 0.0f, c.data(), 2);
  CHECK(c == std::vector<float>{0.0f, 0.0f});
  c = {3.0f, 4.0f};
  sgemm(false, false, 1, 2, 1, 0.0f, &a, 1, &b, 2, 0.5f, c.data(), 2);
  CHECK(c == std::vector<float>{1.5f, 2.0f});
}

TEST_CASE("sgemm: a small product known by hand") {
  // [1 2; 3 4] * [5 6; 7 8] = [19 22; 43 50]
  const float a[] = {1, 2, 3, 4}, b[] = {5, 6, 7, 8};
  float c[] = {1, 1, 1, 1};
  sgemm(false, false, 2, 2, 2, 1.0f, a, 2, b, 2, 1.0f, c, 2);
  CHECK(std::vector<float>(c, c + 4) == std::vector<float>{20, 23, 44, 51});
  sgemm(true, false, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);  // [1 3; 2 4] * B = [26 30; 38 44]
  CHECK(std::vector<float>(c, c + 4) == std::vector<float>{26, 30, 38, 44});
}

TEST_CASE("sgemm: threaded and single-threaded results are bit-identical") {
  const int64_t m = 70, n = 300, k = 260;
  const std::vector<float> a = random_vector(m * k, 4), b = random_vector(k * n, 5);
  std::vector<float> threaded(m * n), single(m * n);
  sgemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, threaded.data(), n);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  sgemm(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, single.data(), n);
  omp_set_num_threads(threads);
  CHECK(threaded == single);
}
