// Variance-optimal level points: the interval cost from prefix sums and the two DPs (smart-quantizer's level fit).
//   err(i, j) = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i)
//   dp[k][M]  = min_{0 <= j <= M} dp[k-1][j] + err(j, M),  dp[0][0] = 0, answer dp[K][c-1].
// Both DPs break ties towards the smallest j, so on exact arithmetic they backtrack to the same
// points; the divide-and-conquer one relies on that smallest argmin being monotone in M.
// Every fused multiply-add is written as fma_rn and every other product or sum as
// mul_rn/add_rn/sub_rn (tensor/exact_math.h), the operations of the CUDA kernel
// (quant/smart_fit.h), so the levels do not depend on whether the compiler contracts a * b + c:
// -O1, a build without FMA instructions and the GPU all give the bits of the -O3 build.
#include "quant/level_dp.h"

#include <algorithm>
#include <limits>

#include "quant/level_dp_scan.h"
#include "tensor/check.h"
#include "tensor/exact_math.h"

namespace qnn {

namespace {

// Shifted values a_t = sorted_t - shift (shift = the middle of the range) and their prefix sums
// s (s[0] = 0) and ss (of the squares, SS_t+1 = fma(a_t, a_t, SS_t)); checks the order on the
// way. The halving is exact, so a_t is the same whether or not it is fused into the subtraction.
void shifted_prefix_sums(const float* sorted, int64_t count, double* a, double* s, double* ss) {
  const double shift = mul_rn(0.5, add_rn(double(sorted[0]), double(sorted[count - 1])));
  s[0] = ss[0] = 0.0;
  for (int64_t t = 0; t < count; ++t) {
    QNN_CHECK(t == 0 || sorted[t - 1] <= sorted[t], "candidates must be sorted; a[", t - 1,
              "] = ", sorted[t - 1], " > a[", t, "] = ", sorted[t]);
    a[t] = sub_rn(double(sorted[t]), shift);
    s[t + 1] = add_rn(s[t], a[t]);
    ss[t + 1] = fma_rn(a[t], a[t], ss[t]);
  }
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

// The divide and conquer over rows [0, count) as nodes (lo, mid, hi), breadth first: the node
// [lo, hi) solves row mid = lo + (hi - lo) / 2, then its halves [lo, mid) and [mid + 1, hi).
// Parents come before children, and the depth-first recursion
//   solve(lo, hi, opt_lo, opt_hi): mid; solve(lo, mid, opt_lo, arg[mid]);
//                                  solve(mid + 1, hi, arg[mid], opt_hi)
// hands node [lo, hi) the argmin range opt_lo = arg[lo - 1] (0 when lo = 0) and
// opt_hi = arg[hi] (count - 1 when hi = count): rows lo - 1 and hi are its ancestors' mids.
void build_nodes(int64_t count, LevelDpScratch& w) {
  std::vector<int32_t> lo = {0}, hi = {int32_t(count)}, mid;
  for (size_t head = 0; head < lo.size(); ++head) {
    const int32_t l = lo[head], h = hi[head], m = l + (h - l) / 2;
    mid.push_back(m);
    if (l < m) lo.push_back(l), hi.push_back(m);
    if (m + 1 < h) lo.push_back(m + 1), hi.push_back(h);
  }
  // Node n reads its range from the row's argmins with one sentinel on each side,
  // bounds[0] = 0, bounds[1 + M] = arg[M], bounds[count + 1] = count - 1:
  // opt_lo = bounds[lo] and opt_hi = bounds[hi + 1], without a test for either end.
  w.nodes.resize(size_t(count));
  for (int64_t n = 0; n < count; ++n)
    w.nodes[size_t(n)] = LevelDpScratch::Node{lo[size_t(n)], hi[size_t(n)] + 1, mid[size_t(n)], 0};
  // Depth by depth: the children of depth d's nodes are the next depth, in queue order.
  w.depth_begin.assign(1, 0);
  int64_t begin = 0, end = 1;
  while (begin < count) {
    int64_t children = 0;
    for (int64_t n = begin; n < end; ++n)
      children += (lo[size_t(n)] < mid[size_t(n)]) + (mid[size_t(n)] + 1 < hi[size_t(n)]);
    w.depth_begin.push_back(end);
    begin = end, end += children;
  }
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
    w.c[t] = fma_rn(double(t), a[t], -s[t]);
    w.x[t] = fma_rn(-double(t + 1), a[t], s[t + 1]);
    w.z[t] = fma_rn(a[t], s[t + 1], -ss[t + 1]);
    // dp[1][M] = err(0, M): with dp[0] infinite beyond 0, the only choice is j = 0.
    dp[t] = interval_cost(a, s, ss, 0, t);
  }
  const level_dp::Row row{a, w.c.data(), w.x.data(), w.z.data(), w.base.data()};
  for (int k = 2; k <= intervals; ++k) {
    // A_j = fma(-a_j, S_j, dp[k-1][j]) + SS_j.
    for (int64_t j = 0; j < count; ++j) w.base[j] = add_rn(fma_rn(-a[j], s[j], dp[j]), ss[j]);
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
