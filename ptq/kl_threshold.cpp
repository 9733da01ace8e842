// TensorRT's entropy calibration (see ptq/kl_threshold.h).
#include "ptq/kl_threshold.h"

#include <cmath>
#include <limits>

#include "tensor/check.h"

namespace qnn {

namespace {

// Every zero bin gets eps; the non-zero ones give up that mass evenly. False if all are zero.
bool smooth(std::vector<double>& p, double eps = 1e-4) {
  int64_t zeros = 0;
  for (double v : p) zeros += v == 0.0;
  const int64_t nonzeros = int64_t(p.size()) - zeros;
  if (nonzeros == 0) return false;
  const double taken = eps * double(zeros) / double(nonzeros);
  for (double& v : p) v = v == 0.0 ? eps : v - taken;
  return true;
}

}  // namespace

double kl_candidate_divergence(const std::vector<double>& bins, int64_t i, int64_t levels) {
  QNN_CHECK(levels >= 2 && i >= levels && i <= int64_t(bins.size()), "KL candidate of ", i, " bins with ", levels,
            " levels over ", bins.size(), " bins");
  std::vector<double> p(bins.begin(), bins.begin() + i);
  for (size_t k = size_t(i); k < bins.size(); ++k) p[size_t(i - 1)] += bins[k];
  std::vector<double> q(size_t(i), 0.0);
  const int64_t per_group = i / levels;
  for (int64_t g = 0; g < levels; ++g) {
    const int64_t start = g * per_group, stop = g == levels - 1 ? i : start + per_group;
    double count = 0.0;
    int64_t nonzero = 0;
    for (int64_t k = start; k < stop; ++k) {
      count += bins[size_t(k)];
      nonzero += p[size_t(k)] != 0.0;
    }
    if (nonzero == 0) continue;
    for (int64_t k = start; k < stop; ++k)
      if (p[size_t(k)] != 0.0) q[size_t(k)] = count / double(nonzero);
  }
  if (!smooth(p) || !smooth(q)) return std::numeric_limits<double>::infinity();
  double sp = 0.0, sq = 0.0;
  for (int64_t k = 0; k < i; ++k) sp += p[size_t(k)], sq += q[size_t(k)];
  double kl = 0.0;
  for (int64_t k = 0; k < i; ++k) {
    const double pk = p[size_t(k)] / sp, qk = q[size_t(k)] / sq;
    if (pk > 0.0) kl += pk * std::log(pk / qk);
  }
  return kl;
}

double kl_threshold(const Histogram& histogram, int64_t levels) {
  QNN_CHECK(levels >= 2, "KL calibration needs at least 2 levels, got ", levels);
  const int64_t bins = int64_t(histogram.counts.size());
  if (bins <= levels || histogram.total() == 0.0) return histogram.max;
  double best = std::numeric_limits<double>::infinity();
  int64_t best_i = bins;
  for (int64_t i = levels; i < bins; ++i) {
    const double kl = kl_candidate_divergence(histogram.counts, i, levels);
    if (kl < best) best = kl, best_i = i;
  }
  if (best_i == bins) return histogram.max;
  return (double(best_i) + 0.5) * histogram.bin_width();
}

}  // namespace qnn
