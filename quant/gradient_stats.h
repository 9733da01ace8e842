// Gradient statistics for fitting adaptive quantization levels (ALQ / AMQ).
//
// Source: learning-to-quantize (Tabrizian/learning-to-quantize), `snap_online_mean` and
// `_bucketize` in estim/gestim.py. A few mini-batch gradients (10 in the paper
// runs) are flattened, cut into buckets of `bucket_size`, the partial last bucket is skipped,
// and every bucket b with norm n_b = ||x_b||_2 and normalized coordinates y = x_b / n_b gives
//
//   norm_b = n_b,   mean_b = mean(y),   sigma_b = sqrt(unbiased var(y)).
//
// Two summaries feed the distribution models of quant/level_distribution.h:
//   * norm-based ("nb", for alq_nb / amq_nb): the `dist_num` buckets with the largest norms,
//     one truncated normal per bucket, weighted by its norm;
//   * norm-less ("nl", for alq / amq): one pooled normal with
//       mean  = (sum over buckets of sum(y)) / total_params,
//       sigma = sqrt((sum over buckets of var(y) * (len - 1)) / total_params).
//
// Deviation: a bucket whose norm is exactly zero has no normalized coordinates (the reference
// divides by zero and gets NaN); it is skipped and counts for nothing. So is a bucket whose norm
// is not finite (it holds NaN or an infinity): the levels are fitted to the finite buckets.
#pragma once
#include <cstdint>
#include <vector>

namespace qnn {

struct BucketStats {
  double norm = 0.0;   // ||bucket||_2
  double mean = 0.0;   // mean of bucket / norm
  double sigma = 0.0;  // sqrt of the unbiased variance of bucket / norm
};

struct GradientStats {
  // Norm-based statistics: the kept buckets, largest norm first.
  std::vector<BucketStats> buckets;
  // Norm-less statistics, pooled over every full bucket of every gradient added.
  double nl_mean = 0.0;
  double nl_sigma = 0.0;
  int64_t total_params = 0;  // coordinates the norm-less statistics were pooled over
  int64_t total_buckets = 0; // buckets seen, before the top-by-norm selection
};

// The statistics of one bucket of `len` >= 2 coordinates (norm 0 gives all zeros; a NaN or an
// infinity gives a norm that is not finite).
BucketStats bucket_stats(const float* x, int64_t len);

// Gathers statistics over several mini-batch gradients; snapshot() summarises them.
class GradientStatsAccumulator {
 public:
  explicit GradientStatsAccumulator(int64_t bucket_size);

  // One flattened gradient of n coordinates: its full buckets are added, the tail is skipped.
  void add(const float* grad, int64_t n);
  // The snapshot with the `dist_num` largest-norm buckets kept (ties: earlier bucket first).
  GradientStats snapshot(int64_t dist_num) const;

  int64_t gradients() const { return gradients_; }
  int64_t bucket_size() const { return bucket_size_; }
  void clear();

 private:
  int64_t bucket_size_;
  int64_t gradients_ = 0;
  std::vector<BucketStats> buckets_;
  double sum_ = 0.0;       // sum of normalized coordinates
  double variance_ = 0.0;  // sum of var(y) * (len - 1)
  int64_t params_ = 0;
};

}  // namespace qnn
