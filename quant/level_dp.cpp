// Variance-optimal level points: the interval cost from prefix sums and the two DPs (spec 2.5).
//   err(i, j) = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i)
//   dp[k][M]  = min_{0 <= j <= M} dp[k-1][j] + err(j, M),  dp[0][0] = 0, answer dp[K][c-1].
// Both DPs break ties towards the smallest j, so on exact arithmetic they backtrack to the same
// points; the divide-and-conquer one relies on that smallest argmin being monotone in M.
#include "quant/level_dp.h"

#include <algorithm>
#include <limits>

#include "tensor/check.h"

namespace qnn {

IntervalCost::IntervalCost(const float* sorted, int64_t count)
    : a_(size_t(count)), s_(size_t(count) + 1, 0.0), ss_(size_t(count) + 1, 0.0) {
  QNN_CHECK(count >= 1, "needs at least one candidate, got ", count);
  const double shift = 0.5 * (double(sorted[0]) + double(sorted[count - 1]));
  for (int64_t t = 0; t < count; ++t) {
    QNN_CHECK(t == 0 || sorted[t - 1] <= sorted[t], "candidates must be sorted; a[", t - 1,
              "] = ", sorted[t - 1], " > a[", t, "] = ", sorted[t]);
    a_[t] = double(sorted[t]) - shift;
    s_[t + 1] = s_[t] + a_[t];
    ss_[t + 1] = ss_[t] + a_[t] * a_[t];
  }
}

namespace {

void check_arguments(int64_t count, int intervals) {
  QNN_CHECK(count >= 1, "needs at least one candidate, got ", count);
  QNN_CHECK(count <= std::numeric_limits<int32_t>::max(), "at most 2^31-1 candidates, got ", count);
  QNN_CHECK(intervals >= 1, "needs at least one interval (two levels), got ", intervals);
}

// One row of the DP in the form its inner loop evaluates fast. Expanding err(j, M) and grouping
// the terms by what they depend on gives
//   dp[k-1][j] + err(j, M) = A_j + a_j X_M + C_j a_M + Z_M,   where
//   A_j = dp[k-1][j] - a_j S_j + SS_j,   C_j = j a_j - S_j,
//   X_M = S_{M+1} - (M+1) a_M,           Z_M = a_M S_{M+1} - SS_{M+1},
// so the minimum over j costs two multiply-adds per j (Z_M does not depend on j).
struct Row {
  const double* a;     // shifted candidates
  const double* c;     // C_j
  const double* x;     // X_M
  const double* z;     // Z_M
  const double* base;  // A_j for this row
};

// min_{j in [first, last]} of dp[k-1][j] + err(j, m) and its smallest argmin.
void best_split(const Row& row, int64_t m, int64_t first, int64_t last, double& best,
                int64_t& best_j) {
  const double xm = row.x[m], am = row.a[m];
  double low = std::numeric_limits<double>::infinity();
  best_j = first;
  for (int64_t j = first; j <= last; ++j) {
    const double v = row.base[j] + row.a[j] * xm + row.c[j] * am;
    if (v < low) low = v, best_j = j;
  }
  best = low + row.z[m];
}

// Rows M in [lo, hi) of dp[k], knowing that the smallest argmin of every M in the range lies in
// [opt_lo, opt_hi]: solve the middle row over its candidates, then each half over the part of
// the argmin range that monotonicity leaves it.
void solve_rows(const Row& row, double* cur, int32_t* arg, int64_t lo, int64_t hi, int64_t opt_lo,
                int64_t opt_hi) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    int64_t best_j = 0;
    best_split(row, mid, opt_lo, std::min(mid, opt_hi), cur[mid], best_j);
    arg[mid] = int32_t(best_j);
    // Recurse into the lower half, loop on the upper one (bounded stack depth).
    solve_rows(row, cur, arg, lo, mid, opt_lo, best_j);
    lo = mid + 1;
    opt_lo = best_j;
  }
}

// Follows the argmins back from dp[K][c-1] to the K+1 chosen indices; the cost is summed again
// from err over the chosen intervals, so both DPs report it in the same arithmetic.
LevelPoints backtrack(const IntervalCost& err, const std::vector<int32_t>& arg, int64_t count,
                      int intervals) {
  LevelPoints result;
  result.index.resize(size_t(intervals) + 1);
  result.index[size_t(intervals)] = count - 1;
  for (int k = intervals; k >= 1; --k)
    result.index[size_t(k) - 1] = arg[size_t(k) * size_t(count) + size_t(result.index[size_t(k)])];
  for (int k = 1; k <= intervals; ++k)
    result.cost += err(result.index[size_t(k) - 1], result.index[size_t(k)]);
  return result;
}

}  // namespace

LevelPoints optimal_level_points(const float* sorted, int64_t count, int intervals) {
  check_arguments(count, intervals);
  const IntervalCost err(sorted, count);
  const size_t c = size_t(count);
  // arg row k holds the argmins of dp[k]; rows 0 and 1 stay 0 (dp[1] can only split at 0).
  std::vector<int32_t> arg((size_t(intervals) + 1) * c, 0);
  std::vector<double> a(c), cj(c), xm(c), zm(c), base(c), prev(c), cur(c);
  for (int64_t t = 0; t < count; ++t) {
    a[size_t(t)] = err.value(t);
    cj[size_t(t)] = double(t) * err.value(t) - err.sum(t);
    xm[size_t(t)] = err.sum(t + 1) - double(t + 1) * err.value(t);
    zm[size_t(t)] = err.value(t) * err.sum(t + 1) - err.sum_sq(t + 1);
    // dp[1][M] = err(0, M): with dp[0] infinite beyond 0, the only choice is j = 0.
    prev[size_t(t)] = err(0, t);
  }
  const Row row{a.data(), cj.data(), xm.data(), zm.data(), base.data()};
  for (int k = 2; k <= intervals; ++k) {
    for (int64_t j = 0; j < count; ++j)
      base[size_t(j)] = prev[size_t(j)] - err.value(j) * err.sum(j) + err.sum_sq(j);
    // The last row is needed at M = c-1 only.
    const int64_t first_row = k == intervals ? count - 1 : 0;
    solve_rows(row, cur.data(), &arg[size_t(k) * c], first_row, count, 0, count - 1);
    prev.swap(cur);
  }
  return backtrack(err, arg, count, intervals);
}

LevelPoints optimal_level_points_plain(const float* sorted, int64_t count, int intervals) {
  check_arguments(count, intervals);
  const IntervalCost err(sorted, count);
  const size_t c = size_t(count);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<int32_t> arg((size_t(intervals) + 1) * c, 0);
  std::vector<double> prev(c, inf), cur(c);
  prev[0] = 0.0;
  for (int k = 1; k <= intervals; ++k) {
    for (int64_t m = 0; m < count; ++m) {
      double best = inf;
      int64_t best_j = 0;
      for (int64_t j = 0; j <= m; ++j) {
        const double v = prev[size_t(j)] + err(j, m);
        if (v < best) best = v, best_j = j;
      }
      cur[size_t(m)] = best;
      arg[size_t(k) * c + size_t(m)] = int32_t(best_j);
    }
    prev.swap(cur);
  }
  return backtrack(err, arg, count, intervals);
}

}  // namespace qnn
