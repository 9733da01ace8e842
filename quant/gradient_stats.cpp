// Gradient statistics for adaptive levels: per-bucket norm, mean and sigma of the normalized
// coordinates, pooled norm-less statistics, top-by-norm selection.
// Source: learning-to-quantize estim/gestim.py (`snap_online_mean`).
#include "quant/gradient_stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "tensor/check.h"

namespace qnn {

BucketStats bucket_stats(const float* x, int64_t len) {
  QNN_CHECK(len >= 2, "a bucket needs at least 2 coordinates for an unbiased variance, got ", len);
  double sq = 0.0, sum = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    sq += double(x[i]) * double(x[i]);
    sum += double(x[i]);
  }
  BucketStats s;
  s.norm = std::sqrt(sq);
  if (s.norm == 0.0 || !std::isfinite(s.norm)) return s;
  // Two passes on y = x / norm: the mean, then the squared deviations from it.
  s.mean = sum / s.norm / double(len);
  double dev = 0.0;
  for (int64_t i = 0; i < len; ++i) {
    const double d = double(x[i]) / s.norm - s.mean;
    dev += d * d;
  }
  s.sigma = std::sqrt(dev / double(len - 1));
  return s;
}

GradientStatsAccumulator::GradientStatsAccumulator(int64_t bucket_size) : bucket_size_(bucket_size) {
  QNN_CHECK(bucket_size >= 2, "bucket_size must be at least 2, got ", bucket_size);
}

void GradientStatsAccumulator::add(const float* grad, int64_t n) {
  QNN_CHECK(n >= 0, "gradient length must be non-negative, got ", n);
  QNN_CHECK(grad != nullptr || n == 0, "gradient pointer is null");
  const int64_t full = n / bucket_size_;  // the partial last bucket is skipped (ig_sm_bkts)
  for (int64_t b = 0; b < full; ++b) {
    const BucketStats s = bucket_stats(grad + b * bucket_size_, bucket_size_);
    if (s.norm == 0.0 || !std::isfinite(s.norm)) continue;  // empty, or a NaN or infinity in it
    buckets_.push_back(s);
    sum_ += s.mean * double(bucket_size_);
    variance_ += s.sigma * s.sigma * double(bucket_size_ - 1);
    params_ += bucket_size_;
  }
  ++gradients_;
}

GradientStats GradientStatsAccumulator::snapshot(int64_t dist_num) const {
  QNN_CHECK(dist_num >= 1, "dist_num must be at least 1, got ", dist_num);
  GradientStats out;
  out.total_params = params_;
  out.total_buckets = int64_t(buckets_.size());
  if (params_ > 0) {
    out.nl_mean = sum_ / double(params_);
    out.nl_sigma = std::sqrt(variance_ / double(params_));
  }
  std::vector<size_t> order(buckets_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buckets_[a].norm > buckets_[b].norm; });
  const size_t keep = std::min(order.size(), size_t(dist_num));
  out.buckets.reserve(keep);
  for (size_t i = 0; i < keep; ++i) out.buckets.push_back(buckets_[order[i]]);
  return out;
}

void GradientStatsAccumulator::clear() {
  gradients_ = 0;
  buckets_.clear();
  sum_ = variance_ = 0.0;
  params_ = 0;
}

}  // namespace qnn
