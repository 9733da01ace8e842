// Range estimation methods (see ptq/range_methods.h).
#include "ptq/range_methods.h"

#include <algorithm>
#include <cmath>

#include "ptq/aciq.h"
#include "ptq/kl_threshold.h"
#include "tensor/check.h"

namespace qnn {

namespace {

constexpr RangeMethod kMethods[] = {RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse,
                                    RangeMethod::AciqLaplace, RangeMethod::AciqGauss, RangeMethod::Kl};

double weighted_mse(const std::vector<double>& values, const std::vector<double>& weights, const QuantGrid& grid,
                    double alpha) {
  double total = 0.0;
  for (size_t i = 0; i < values.size(); ++i) {
    const double e = values[i] - grid.quantize(values[i], alpha);
    total += weights[i] * e * e;
  }
  return total;
}

}  // namespace

RangeMethod parse_range_method(const std::string& name) {
  for (RangeMethod m : kMethods)
    if (name == range_method_name(m)) return m;
  throw Error("unknown range method '" + name + "'; valid: minmax, percentile, mse, aciq-laplace, aciq-gauss, kl");
}

const char* range_method_name(RangeMethod method) {
  switch (method) {
    case RangeMethod::MinMax: return "minmax";
    case RangeMethod::Percentile: return "percentile";
    case RangeMethod::Mse: return "mse";
    case RangeMethod::AciqLaplace: return "aciq-laplace";
    case RangeMethod::AciqGauss: return "aciq-gauss";
    case RangeMethod::Kl: return "kl";
  }
  return "?";
}

bool needs_histogram(RangeMethod method) {
  return method == RangeMethod::Percentile || method == RangeMethod::Mse || method == RangeMethod::Kl;
}

void PositiveStats::add(const float* values, int64_t n) {
  count += double(n);
  for (int64_t i = 0; i < n; ++i) {
    const double v = values[i];
    QNN_CHECK(std::isfinite(v), "calibration met a non-finite activation (", v, ")");
    if (v <= 0.0) continue;
    positive += 1.0;
    sum += v;
    sum_squares += v * v;
    max = std::max(max, v);
  }
}

double histogram_percentile(const Histogram& histogram, double percentile) {
  QNN_CHECK(percentile > 0.0 && percentile <= 100.0, "the percentile must be in (0, 100], got ", percentile);
  const double total = histogram.total();
  if (total == 0.0) return 0.0;
  const double target = total * percentile / 100.0;
  double below = 0.0;
  for (size_t b = 0; b < histogram.counts.size(); ++b) {
    const double c = histogram.counts[b];
    if (below + c >= target && c > 0.0)
      return (double(b) + (target - below) / c) * histogram.bin_width();
    below += c;
  }
  return histogram.max;
}

double mse_clip(const std::vector<double>& values, const std::vector<double>& weights, double max_value,
                const QuantGrid& grid) {
  QNN_CHECK(values.size() == weights.size(), "mse_clip: ", values.size(), " values, ", weights.size(), " weights");
  if (!(max_value > 0.0)) return 0.0;
  const int candidates = 256;
  int best = candidates;
  double best_mse = weighted_mse(values, weights, grid, max_value);
  for (int k = 1; k < candidates; ++k) {
    const double m = weighted_mse(values, weights, grid, max_value * k / candidates);
    if (m < best_mse) best_mse = m, best = k;
  }
  // Refine between the neighbours of the best candidate (the MSE is not smooth: the grid's
  // levels move past the values, so keep the scan's best if the search finds nothing better).
  double lo = max_value * (best - 1) / candidates, hi = max_value * std::min(best + 1, candidates) / candidates;
  double best_alpha = max_value * best / candidates;
  const double ratio = (std::sqrt(5.0) - 1.0) / 2.0;
  for (int step = 0; step < 40 && hi - lo > 1e-9 * max_value; ++step) {
    const double a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo);
    const double fa = weighted_mse(values, weights, grid, a), fb = weighted_mse(values, weights, grid, b);
    if (fa < best_mse) best_mse = fa, best_alpha = a;
    if (fb < best_mse) best_mse = fb, best_alpha = b;
    if (fa < fb) hi = b;
    else lo = a;
  }
  return best_alpha;
}

int one_sided_bits(const QuantGrid& grid) {
  return std::max(1, int(std::lround(std::log2(double(grid.positive_levels() - 1)))));
}

double weight_clip(const float* w, int64_t n, const QuantGrid& grid, const RangeOptions& options) {
  QNN_CHECK(n > 0, "weight_clip of an empty tensor");
  double max_abs = 0.0, mean = 0.0;
  for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, double(std::fabs(w[i]))), mean += w[i];
  mean /= double(n);
  if (max_abs == 0.0) return 0.0;
  switch (options.method) {
    case RangeMethod::MinMax:
    case RangeMethod::Kl:  // TensorRT calibrates activations by entropy and takes weights' max
      return max_abs;
    case RangeMethod::Percentile: {
      Histogram h(max_abs, options.histogram_bins);
      h.add(w, n, true);
      return std::min(max_abs, histogram_percentile(h, options.percentile));
    }
    case RangeMethod::Mse: {
      std::vector<double> values(w, w + n), weights(size_t(n), 1.0);
      return mse_clip(values, weights, max_abs, grid);
    }
    case RangeMethod::AciqLaplace:
    case RangeMethod::AciqGauss: {
      double spread = 0.0;  // b = mean |w - mu|, or the unbiased standard deviation
      const bool laplace = options.method == RangeMethod::AciqLaplace;
      for (int64_t i = 0; i < n; ++i) {
        const double d = w[i] - mean;
        spread += laplace ? std::fabs(d) : d * d;
      }
      spread = laplace ? spread / double(n) : std::sqrt(spread / double(std::max<int64_t>(n - 1, 1)));
      const int bits = int(std::lround(std::log2(double(grid.qmax - grid.qmin + 1))));
      const double c = aciq_alpha(laplace ? AciqPrior::Laplace : AciqPrior::Gauss, bits);
      return std::min(max_abs, std::fabs(mean) + c * spread);
    }
  }
  return max_abs;
}

double activation_clip(const PositiveStats& stats, const Histogram& histogram, const QuantGrid& grid,
                       const RangeOptions& options) {
  if (stats.positive == 0.0 || stats.max <= 0.0) return 0.0;
  switch (options.method) {
    case RangeMethod::MinMax:
      return stats.max;
    case RangeMethod::Percentile:
      return std::min(stats.max, histogram_percentile(histogram, options.percentile));
    case RangeMethod::Mse: {
      // A bin's values are taken as spread evenly over it: 16 points each. Bin centres alone
      // alias with the grid (a step that is a whole number of bins puts every centre at the same
      // distance from a level), which misjudges the rounding error at 8 bits.
      const int points = 16;
      std::vector<double> values, weights;
      const double width = histogram.bin_width();
      for (size_t b = 0; b < histogram.counts.size(); ++b)
        if (histogram.counts[b] > 0.0)
          for (int j = 0; j < points; ++j)
            values.push_back((double(b) + (j + 0.5) / points) * width), weights.push_back(histogram.counts[b] / points);
      return mse_clip(values, weights, histogram.max, grid);
    }
    case RangeMethod::AciqLaplace:
    case RangeMethod::AciqGauss: {
      const bool laplace = options.method == RangeMethod::AciqLaplace;
      const double scale = laplace ? stats.sum / stats.positive : std::sqrt(stats.sum_squares / stats.positive);
      const double c = aciq_alpha_one_sided(laplace ? AciqPrior::Laplace : AciqPrior::Gauss, one_sided_bits(grid));
      return std::min(stats.max, c * scale);
    }
    case RangeMethod::Kl:
      return std::min(stats.max, kl_threshold(histogram, grid.positive_levels()));
  }
  return stats.max;
}

}  // namespace qnn
