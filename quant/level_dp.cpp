// Variance-optimal level points: the interval cost from prefix sums and the two DPs (smart-quantizer's level fit).
//   err(i, j) = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i)
//   dp[k][M]  = min_{0 <= j <= M} dp[k-1][j] + err(j, M),  dp[0][0] = 0, answer dp[K][c-1].
// Both DPs break ties towards the smallest j, so on exact arithmetic they backtrack to the same
// points; the divide-and-conquer one relies on that smallest argmin being monotone in M.
// The arithmetic (prefix sums, err, the row coefficients, the node order) is quant/smart_fit.h's,
// shared with the CUDA kernel: every fused multiply-add is written as fma_rn and every other
// product or sum as mul_rn/add_rn/sub_rn (tensor/exact_math.h), so the levels do not depend on whether the compiler contracts a * b + c:
// -O1, a build without FMA instructions and the GPU all give the bits of the -O3 build.
#include "quant/level_dp.h"

#include <algorithm>
#include <limits>

#include "quant/level_dp_scan.h"
#include "quant/smart_fit.h"
#include "tensor/check.h"
#include "tensor/exact_math.h"

namespace qnn {

namespace {

// Checks that the candidates ascend, then takes their shifted values and prefix sums
// (smart_fit::prefix_sums, the GPU's arithmetic).
void shifted_prefix_sums(const float* sorted, int64_t count, double* a, double* s, double* ss) {
  for (int64_t t = 1; t < count; ++t)
    QNN_CHECK(sorted[t - 1] <= sorted[t], "candidates must be sorted; a[", t - 1, "] = ", sorted[t - 1], " > a[", t,
              "] = ", sorted[t]);
  smart_fit::prefix_sums(sorted, count, a, s, ss);
}

}  // namespace

IntervalCost::IntervalCost(const float* sorted, int64_t count)
    : a_(size_t(std::max<int64_t>(count, 0))), s_(a_.size() + 1, 0.0), ss_(a_.size() + 1, 0.0) {
  QNN_CHECK(count >= 1, "needs at least one candidate, got ", count);
  shifted_prefix_sums(sorted, count, a_.data(), s_.data(), ss_.data());
}

namespace {

void check_arguments(int64_t count, int intervals) {
  QNN_CHECK(count >= 1, "needs at least one candidate, got ", count);
  QNN_CHECK(count <= std::numeric_limits<int32_t>::max(), "at most 2^31-1 candidates, got ", count);
  QNN_CHECK(intervals >= 1, "needs at least one interval (two levels), got ", intervals);
}

// The divide-and-conquer nodes of smart_fit::build_nodes (which explains their order and
// ranges) in the scratch's layout.
void build_nodes(int64_t count, LevelDpScratch& w) {
  const size_t n_rows = static_cast<size_t>(count);
  std::vector<int> left(n_rows), right(n_rows), mid(n_rows), depth_begin(64);
  const int depths = smart_fit::build_nodes(int(count), left.data(), right.data(), mid.data(), depth_begin.data());
  w.nodes.resize(size_t(count));
  for (size_t n = 0; n < n_rows; ++n) w.nodes[n] = LevelDpScratch::Node{left[n], right[n], mid[n], 0};
  w.depth_begin.assign(depth_begin.begin(), depth_begin.begin() + depths + 1);
  w.bounds.resize(size_t(count) + 2);
  w.nodes_count = count;
}

// dp[k][M] for every M, and its argmins, by the divide and conquer in breadth-first order: the
// same ranges, so the same minima and argmins, as the depth-first recursion. The nodes of one
// depth are independent, so their work overlaps in the CPU. With AVX-512 a range of up to eight
// candidates (most of them) takes one branch-free vector step, a longer one a vector loop.
void solve_row(const level_dp::Row& row, LevelDpScratch& w, int64_t count, double* cur,
               int32_t* arg) {
  const LevelDpScratch::Node* nodes = w.nodes.data();
  int32_t* bounds = w.bounds.data();
  bounds[0] = 0, bounds[count + 1] = int32_t(count - 1);
  for (size_t d = 0; d + 1 < w.depth_begin.size(); ++d) {
    for (int64_t n = w.depth_begin[d]; n < w.depth_begin[d + 1]; ++n) {
      const LevelDpScratch::Node node = nodes[n];
      const int64_t m = node.mid, opt_lo = bounds[node.left];
      const int64_t last = std::min<int64_t>(m, bounds[node.right]);
      double low;
      int64_t best_j;
#ifdef QNN_LEVEL_DP_AVX512
      if (last - opt_lo < level_dp::kHead) level_dp::scan_head(row, m, opt_lo, last, low, best_j);
      else level_dp::scan_rest(row, m, opt_lo, last, low, best_j);
#else
      level_dp::scan_scalar(row, m, opt_lo, last, low, best_j);
#endif
      cur[m] = add_rn(low, row.z[m]);
      arg[m] = bounds[m + 1] = int32_t(best_j);
    }
  }
}

// Follows the argmins back from dp[K][c-1] to the K+1 chosen indices; the cost is summed again
// from err over the chosen intervals, so both DPs report it in the same arithmetic.
double backtrack(const double* a, const double* s, const double* ss, const int32_t* arg,
                 int64_t count, int intervals, int64_t* index) {
  index[intervals] = count - 1;
  for (int k = intervals; k >= 1; --k)
    index[k - 1] = arg[size_t(k) * size_t(count) + size_t(index[k])];
  double cost = 0.0;
  for (int k = 1; k <= intervals; ++k) cost += interval_cost(a, s, ss, index[k - 1], index[k]);
  return cost;
}

}  // namespace

double optimal_level_points_into(const float* sorted, int64_t count, int intervals,
                                 LevelDpScratch& w, int64_t* index) {
  check_arguments(count, intervals);
  const size_t c = size_t(count);
  for (auto* v : {&w.a, &w.c, &w.x, &w.z, &w.base, &w.dp}) v->resize(c);
  w.s.resize(c + 1);
  w.ss.resize(c + 1);
  shifted_prefix_sums(sorted, count, w.a.data(), w.s.data(), w.ss.data());
  // arg row k holds the argmins of dp[k]; rows 0 and 1 are 0 (dp[1] can only split at 0), every
  // later row is written by the DP before backtracking reads it.
  w.arg.resize((size_t(intervals) + 1) * c);
  std::fill(w.arg.begin(), w.arg.begin() + 2 * c, 0);
  if (w.nodes_count != count) build_nodes(count, w);
  const double *a = w.a.data(), *s = w.s.data(), *ss = w.ss.data();
  // dp[k-1] enters each row only through base, so dp[k] overwrites it in place.
  double* dp = w.dp.data();
  // C_t = fma(t, a_t, -S_t),  X_t = fma(-(t+1), a_t, S_t+1),  Z_t = fma(a_t, S_t+1, -SS_t+1).
  for (int64_t t = 0; t < count; ++t) {
    w.c[t] = smart_fit::coefficient_c(a, s, t);
    w.x[t] = smart_fit::coefficient_x(a, s, t);
    w.z[t] = smart_fit::coefficient_z(a, s, ss, t);
    // dp[1][M] = err(0, M): with dp[0] infinite beyond 0, the only choice is j = 0.
    dp[t] = interval_cost(a, s, ss, 0, t);
  }
  const level_dp::Row row{a, w.c.data(), w.x.data(), w.z.data(), w.base.data()};
  for (int k = 2; k <= intervals; ++k) {
    // A_j = fma(-a_j, S_j, dp[k-1][j]) + SS_j.
    for (int64_t j = 0; j < count; ++j) w.base[j] = smart_fit::row_base(a, s, ss, dp, j);
    int32_t* arg_k = &w.arg[size_t(k) * c];
    if (k == intervals) {  // the last row is needed at M = c-1 only
      double low;
      int64_t best_j;
#ifdef QNN_LEVEL_DP_AVX512
      level_dp::scan_rest(row, count - 1, 0, count - 1, low, best_j);
#else
      level_dp::scan_scalar(row, count - 1, 0, count - 1, low, best_j);
#endif
      dp[count - 1] = add_rn(low, row.z[count - 1]);
      arg_k[count - 1] = int32_t(best_j);
    } else {
      solve_row(row, w, count, dp, arg_k);
    }
  }
  return backtrack(a, s, ss, w.arg.data(), count, intervals, index);
}

LevelPoints optimal_level_points(const float* sorted, int64_t count, int intervals) {
  check_arguments(count, intervals);
  LevelDpScratch scratch;
  LevelPoints result;
  result.index.resize(size_t(intervals) + 1);
  result.cost = optimal_level_points_into(sorted, count, intervals, scratch, result.index.data());
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
  result.index.resize(size_t(intervals) + 1);
  std::vector<double> a(c), s(c + 1), ss(c + 1);
  for (int64_t t = 0; t < count; ++t) a[t] = err.value(t), s[t + 1] = err.sum(t + 1), ss[t + 1] = err.sum_sq(t + 1);
  result.cost = backtrack(a.data(), s.data(), ss.data(), arg.data(), count, intervals, result.index.data());
  return result;
}

}  // namespace qnn
