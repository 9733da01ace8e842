// The AVX-512 scans of the smart quantizer's level DP (quant/level_dp_scan.h) against the plain
// loop they must equal bit for bit: the same minimum, the same smallest argmin, the same sign of
// a zero minimum. Rows are drawn from a few values so that ties are common, with +0 and -0, and
// +inf, -inf and NaN among them (a NaN value is never the minimum; all +inf or NaN leaves the
// first j and +inf).
#include <doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "quant/level_dp_scan.h"

using namespace qnn;

#ifdef QNN_LEVEL_DP_AVX512
TEST_CASE("level DP scan: the AVX-512 head and rest scans equal the plain loop bit for bit") {
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> values = {0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.0, inf, -inf, nan};
  std::mt19937 rng(7);
  auto pick = [&](double odd_share) {
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng) < odd_share) return values[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
    return values[std::uniform_int_distribution<size_t>(0, 6)(rng)];  // the finite ones
  };
  const int64_t n = 48;
  int64_t compared = 0, mismatched = 0;
  for (int trial = 0; trial < 4000; ++trial) {
    // Mostly finite rows, some with many infinities and NaNs (all of them +inf or NaN included).
    const double odd_share = trial % 4 == 0 ? 0.9 : 0.1;
    std::vector<double> a(n), c(n), x(n), z(n, 0.0), base(n);
    for (int64_t j = 0; j < n; ++j) a[j] = pick(0.0), c[j] = pick(0.0), x[j] = pick(0.0), base[j] = pick(odd_share);
    if (trial % 97 == 0)
      for (int64_t j = 0; j < n; ++j) base[j] = j % 2 ? inf : nan;
    const level_dp::Row row{a.data(), c.data(), x.data(), z.data(), base.data()};
    const int64_t m = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
    const int64_t first = std::uniform_int_distribution<int64_t>(0, n - 1)(rng);
    const int64_t last = std::uniform_int_distribution<int64_t>(first, n - 1)(rng);
    double want_low = 0;
    int64_t want_j = -1;
    level_dp::scan_scalar(row, m, first, last, want_low, want_j);
    auto compare = [&](const char* scan, void (*run)(const level_dp::Row&, int64_t, int64_t, int64_t, double&, int64_t&)) {
      double low = 0;
      int64_t j = -1;
      run(row, m, first, last, low, j);
      ++compared;
      if ((j != want_j || std::memcmp(&low, &want_low, sizeof low) != 0) && ++mismatched <= 5)
        MESSAGE(scan, " over [", first, ", ", last, "], row ", m, ": j ", j, " low ", low, ", expected j ", want_j,
                " low ", want_low);
    };
    compare("scan_rest", level_dp::scan_rest);
    if (last - first < level_dp::kHead) compare("scan_head", level_dp::scan_head);
  }
  CHECK(compared > 4000);
  CHECK(mismatched == 0);
}
#endif
