// Histograms of non-negative values (see ptq/histogram.h).
#include "ptq/histogram.h"

#include <algorithm>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

Histogram::Histogram(double max_value, int64_t bins) : max(max_value), counts(size_t(bins), 0.0) {
  QNN_CHECK(bins >= 1, "a histogram needs at least one bin, got ", bins);
  QNN_CHECK(std::isfinite(max_value) && max_value >= 0.0, "a histogram's max must be finite and >= 0, got ", max_value);
}

void Histogram::add(const float* values, int64_t n, bool absolute) {
  const int64_t bins = int64_t(counts.size());
  const double per_unit = max > 0.0 ? double(bins) / max : 0.0;
  for (int64_t i = 0; i < n; ++i) {
    double v = values[i];
    if (absolute) v = std::fabs(v);
    QNN_CHECK(std::isfinite(v) && v >= 0.0, "histogram values must be finite and non-negative, found ", v);
    const int64_t bin = std::min<int64_t>(int64_t(v * per_unit), bins - 1);
    counts[size_t(bin)] += 1.0;
  }
}

double Histogram::total() const {
  double t = 0.0;
  for (double c : counts) t += c;
  return t;
}

}  // namespace qnn
