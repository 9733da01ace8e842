// Variance-optimal level points by dynamic programming (smart-quantizer's `smart` scheme, spec
// section 2.5, after ZipML, Zhang et al., arXiv 1611.05402).
//
// Given sorted candidate values a_0 <= ... <= a_{c-1}, choose K+1 of them as levels, a_0 and
// a_{c-1} included, so that the variance stochastic rounding adds to the candidates,
//   sum_t (x_t - l)(r - x_t)   over adjacent chosen levels l <= x_t <= r,
// is smallest. The cost of one interval [a_i, a_j] comes from prefix sums S (of a) and SS (of a^2):
//   err(i, j) = sum_{t=i..j} (a_j - a_t)(a_t - a_i)
//             = -(j-i+1) a_i a_j + (a_i + a_j)(S_{j+1} - S_i) - (SS_{j+1} - SS_i).
// The DP over K intervals is
//   dp[0][0] = 0, dp[0][M > 0] = inf,   dp[k][M] = min_{0 <= j <= M} dp[k-1][j] + err(j, M),
// with answer dp[K][c-1]; backtracking the argmins gives the K+1 points (duplicates allowed).
// err satisfies the quadrangle inequality, so the (smallest) argmin is monotone in M and each row
// can be solved by divide and conquer in O(c log c): O(K c log c) in all. The plain O(K c^2)
// DP is kept as a test oracle.
#pragma once
#include <cstdint>
#include <vector>

namespace qnn {

// err(i, j) in O(1) from prefix sums over the sorted candidates. The sums are taken about the
// middle of the range (err depends only on differences), which keeps the cancellation small.
class IntervalCost {
 public:
  IntervalCost(const float* sorted, int64_t count);
  int64_t size() const { return int64_t(a_.size()); }
  // The shifted value a_t - shift, and the prefix sums S_t and SS_t of the shifted values.
  double value(int64_t t) const { return a_[t]; }
  double sum(int64_t t) const { return s_[t]; }
  double sum_sq(int64_t t) const { return ss_[t]; }
  // err(i, j) for 0 <= i <= j < size(): the rounding variance of a_i..a_j between a_i and a_j.
  double operator()(int64_t i, int64_t j) const {
    const double ai = a_[i], aj = a_[j];
    return -double(j - i + 1) * ai * aj + (ai + aj) * (s_[j + 1] - s_[i]) - (ss_[j + 1] - ss_[i]);
  }

 private:
  std::vector<double> a_, s_, ss_;  // shifted values and their prefix sums (s_[0] = ss_[0] = 0)
};

// The chosen points: K+1 ascending candidate indices, first 0 and last count-1, and their total
// cost, sum_k err(index[k-1], index[k]) = dp[K][count-1].
struct LevelPoints {
  std::vector<int64_t> index;
  double cost = 0.0;
};

// Divide-and-conquer DP: O(K c log c) time, O(K c) memory for the backtracking table.
LevelPoints optimal_level_points(const float* sorted, int64_t count, int intervals);
// The plain O(K c^2) DP: the same recurrence, every j tried for every M (test oracle).
LevelPoints optimal_level_points_plain(const float* sorted, int64_t count, int intervals);

}  // namespace qnn
