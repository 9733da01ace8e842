// Variance-optimal level points: the interval cost from prefix sums and the two DPs (spec 2.5).
//   err(i, j) = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i)
//   dp[k][M]  = min_{0 <= j <= M} dp[k-1][j] + err(j, M),  dp[0][0] = 0, answer dp[K][c-1].
// Both DPs break ties towards the smallest j, so on exact arithmetic they backtrack to the same
// points; the divide-and-conquer one relies on that smallest argmin being monotone in M.
#include "quant/level_dp.h"

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

// Row M in [lo, hi) of dp[k] from dp[k-1] (`prev`, all finite), knowing that the smallest argmin
// of every M in the range lies in [opt_lo, opt_hi]: solve the middle row over its candidates,
// then each half over the part of the argmin range monotonicity leaves it.
void solve_rows(const IntervalCost& err, const double* prev, double* cur, int32_t* arg, int64_t lo,
                int64_t hi, int64_t opt_lo, int64_t opt_hi) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    double best = std::numeric_limits<double>::infinity();
    int64_t best_j = opt_lo;
    const int64_t last = mid < opt_hi ? mid : opt_hi;
    for (int64_t j = opt_lo; j <= last; ++j) {
      const double v = prev[j] + err(j, mid);
      if (v < best) best = v, best_j = j;
    }
    cur[mid] = best;
    arg[mid] = int32_t(best_j);
    // Recurse into the smaller-index half, loop on the other (bounded stack depth).
    solve_rows(err, prev, cur, arg, lo, mid, opt_lo, best_j);
    lo = mid + 1;
    opt_lo = best_j;
  }
}

// Follows the argmins back from dp[K][c-1] to the K+1 chosen indices.
std::vector<int64_t> backtrack(const std::vector<int32_t>& arg, int64_t count, int intervals) {
  std::vector<int64_t> index(size_t(intervals) + 1);
  index[size_t(intervals)] = count - 1;
  for (int k = intervals; k >= 1; --k)
    index[size_t(k) - 1] = arg[size_t(k) * size_t(count) + size_t(index[size_t(k)])];
  return index;
}

}  // namespace

LevelPoints optimal_level_points(const float* sorted, int64_t count, int intervals) {
  check_arguments(count, intervals);
  const IntervalCost err(sorted, count);
  const size_t c = size_t(count);
  // arg row k holds the argmins of dp[k]; row 0 is unused.
  std::vector<int32_t> arg((size_t(intervals) + 1) * c, 0);
  std::vector<double> prev(c), cur(c);
  // dp[1][M] = err(0, M): with dp[0] infinite beyond 0, the only choice is j = 0.
  for (int64_t m = 0; m < count; ++m) prev[size_t(m)] = err(0, m);
  for (int k = 2; k < intervals; ++k) {
    solve_rows(err, prev.data(), cur.data(), &arg[size_t(k) * c], 0, count, 0, count - 1);
    prev.swap(cur);
  }
  LevelPoints result;
  if (intervals == 1) {
    result.cost = prev[c - 1];
  } else {
    // The last row is needed at M = c-1 only.
    solve_rows(err, prev.data(), cur.data(), &arg[size_t(intervals) * c], count - 1, count, 0,
               count - 1);
    result.cost = cur[c - 1];
  }
  result.index = backtrack(arg, count, intervals);
  return result;
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
  LevelPoints result;
  result.cost = prev[c - 1];
  result.index = backtrack(arg, count, intervals);
  return result;
}

}  // namespace qnn
