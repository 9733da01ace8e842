// VarianceRecorder: the variance metric of smart-quantizer (its README) measured during
// training. Installed as a hook on a model's flat gradient, it asks each scheme, at every step,
// what variance it would add to the current gradient, sum_i (x_i - l_i)(r_i - x_i) in gradient
// units squared, without changing the gradient: training stays unquantized SGD, as in the
// reference measurement (the first 200 steps, averaged).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "autograd/flat_parameters.h"
#include "quant/quantizer.h"

namespace qnn {

class VarianceRecorder {
 public:
  VarianceRecorder(const std::vector<std::string>& schemes, const QuantizerOptions& options, uint64_t seed);
  // Records one step: the variance every scheme would add to `gradient`.
  void record(const float* gradient, int64_t n);
  // Adds record(flat gradient) as a hook; the recorder must outlive the hook's use.
  void install(FlatParameters& parameters);

  const std::vector<std::string>& schemes() const { return names_; }
  // history()[s][t]: scheme s's variance at recorded step t.
  const std::vector<std::vector<double>>& history() const { return history_; }
  double mean(size_t scheme) const;
  int64_t steps() const { return steps_; }

 private:
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<GradientQuantizer>> quantizers_;
  std::vector<std::vector<double>> history_;
  uint64_t seed_;
  int64_t steps_ = 0;
};

}  // namespace qnn
