// A histogram of non-negative values (a ReLU's outputs, or |w| of a weight tensor) over
// [0, max] in equal bins: what the percentile, MSE and KL range methods (ptq/range_methods.h)
// read. Value v goes to bin min(floor(v / max * bins), bins - 1); a histogram whose max is 0
// holds everything in bin 0.
#pragma once
#include <cstdint>
#include <vector>

namespace qnn {

struct Histogram {
  double max = 0.0;
  std::vector<double> counts;

  Histogram() = default;
  Histogram(double max_value, int64_t bins);
  // Adds n values (their absolute values when `absolute`); values above max go to the last bin.
  void add(const float* values, int64_t n, bool absolute = false);
  double bin_width() const { return counts.empty() ? 0.0 : max / double(counts.size()); }
  double total() const;
};

}  // namespace qnn
