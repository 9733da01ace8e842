// Variance-optimal level points by dynamic programming (smart-quantizer's `smart` scheme,
// after ZipML, Zhang et al., arXiv 1611.05402).
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
//
// Speed (smart refits every bucket at every step): the divide and conquer visits its nodes
// (one M each) breadth first, so the nodes of one depth are independent and overlap in the CPU,
// and the inner minimum runs eight candidates at a time (quant/level_dp_scan.h); it searches
// exactly the ranges the depth-first recursion would, so it chooses the same points bit for bit.
// Scratch buffers are reusable across calls (one per thread).
#pragma once
#include <cstdint>
#include <vector>

#include "quant/smart_fit.h"
#include "tensor/exact_math.h"

namespace qnn {

// err(i, j) from the shifted values a and their prefix sums s, ss: the one expression every DP
// uses, so that all of them round alike (quant/smart_fit.h writes it out, for the CUDA kernel too).
inline double interval_cost(const double* a, const double* s, const double* ss, int64_t i,
                            int64_t j) {
  return smart_fit::interval_cost(a, s, ss, i, j);
}

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
    return interval_cost(a_.data(), s_.data(), ss_.data(), i, j);
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

// Buffers of the divide-and-conquer DP, kept between calls so that a warm call allocates nothing.
struct LevelDpScratch {
  std::vector<double> a, s, ss, c, x, z, base, dp;
  std::vector<int32_t> arg;    // argmins, one row of `count` per DP row
  // The divide and conquer's nodes, breadth first: node [lo, hi) solves row mid reading its
  // argmin range at bounds[left = lo] and bounds[right = hi + 1]; depth d's nodes are
  // [depth_begin[d], depth_begin[d + 1]).
  struct Node {
    int32_t left, right, mid, unused;
  };
  std::vector<Node> nodes;
  std::vector<int64_t> depth_begin;
  std::vector<int32_t> bounds;  // the current row's argmins between two sentinels
  int64_t nodes_count = -1;  // the candidate count the nodes were built for
};

// Divide-and-conquer DP: O(K c log c) time, O(K c) memory for the backtracking table.
LevelPoints optimal_level_points(const float* sorted, int64_t count, int intervals);
// The same DP into caller-owned buffers: writes the K+1 = intervals+1 indices to `index` and
// returns their cost (LevelPoints::cost).
double optimal_level_points_into(const float* sorted, int64_t count, int intervals,
                                 LevelDpScratch& scratch, int64_t* index);
// The plain O(K c^2) DP: the same recurrence, every j tried for every M (test oracle).
LevelPoints optimal_level_points_plain(const float* sorted, int64_t count, int intervals);

}  // namespace qnn
