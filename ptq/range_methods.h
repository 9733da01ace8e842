// Range estimation for post-training quantization: given what a tensor holds (its values, their
// histogram, their statistics), choose the clip value alpha of its integer grid (ptq/grid.h).
// Clipping trades rounding error (a grid spread over a wide range) for clipping error (values
// beyond alpha); each method strikes that balance its own way:
//
//   minmax      alpha = max: nothing clipped (Jacob et al. CVPR 2018; PyTorch's MinMaxObserver)
//   percentile  alpha = the p-th percentile of the values (McKinstry et al. 2018), p = 99.99
//   mse         alpha = argmin sum_x (x - Q_alpha(x))^2 over the observed values, Q_alpha the
//               exact grid (Sung et al. 2015; PyTorch's HistogramObserver minimises the same)
//   aciq-laplace, aciq-gauss   alpha from a fitted prior (ptq/aciq.h): Banner et al. 2019
//   kl          TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC
//               2017): the threshold whose quantized distribution Q is closest in KL divergence
//               to the observed one P (ptq/kl_threshold.h)
//
// Two kinds of tensors: weights (signed, symmetric around zero: the methods see |w|) and ReLU
// outputs (non-negative: one-sided). ACIQ's prior for a weight is fitted two-sided, with
// b = mean |w - mu| (Laplace maximum likelihood) or sigma = std(w), and Distiller's symmetric
// clip alpha = |mu| + c_M b. For a ReLU output y = relu(z), the zeros say nothing about z's
// shape, but the positive part does: if z ~ Laplace(mu <= 0, b), y given y > 0 is exponential
// with the same b (the Laplace tail is memoryless), so b = mean(y | y > 0); for a Gaussian prior
// we take sigma = sqrt(mean(y^2 | y > 0)), exact for a zero-centred z (half-normal). The grid's
// one-sided optimum then applies, alpha = c+_M b with M the bits that cover [0, alpha]
// (ptq/aciq.h). Every alpha is capped at the largest value seen (clipping above it is useless).
#pragma once
#include <string>
#include <vector>

#include "ptq/grid.h"
#include "ptq/histogram.h"

namespace qnn {

enum class RangeMethod { MinMax, Percentile, Mse, AciqLaplace, AciqGauss, Kl };

RangeMethod parse_range_method(const std::string& name);  // error listing the valid names
const char* range_method_name(RangeMethod method);        // "minmax", "aciq-laplace", ...
bool needs_histogram(RangeMethod method);                  // percentile, mse, kl

// Sums of a ReLU output's values, for ACIQ (accumulated over the calibration batches).
struct PositiveStats {
  double count = 0, positive = 0, sum = 0, sum_squares = 0, max = 0;  // sums over values > 0
  void add(const float* values, int64_t n);
};

struct RangeOptions {
  RangeMethod method = RangeMethod::MinMax;
  double percentile = 99.99;  // in (0, 100]
  int histogram_bins = 2048;
};

// alpha for one weight tensor or output channel: `n` values, signed, on `grid` (symmetric).
// kl takes the weights' max, as TensorRT does (entropy calibration is for activations).
double weight_clip(const float* w, int64_t n, const QuantGrid& grid, const RangeOptions& options);

// alpha for a ReLU output from its statistics and (percentile, mse, kl) the histogram of its
// positive values over [0, stats.max] (zeros lie exactly on every grid and cost nothing, so
// they are left out). 0 when nothing positive was seen.
double activation_clip(const PositiveStats& stats, const Histogram& histogram, const QuantGrid& grid,
                       const RangeOptions& options);

// The building blocks, exposed for tests:
// the value below which `percentile` % of the histogram's count lies (linear within a bin);
double histogram_percentile(const Histogram& histogram, double percentile);
// the alpha in (0, max_value] minimising sum_i weights[i] (values[i] - grid.quantize(values[i], alpha))^2:
// a scan of 256 candidates, then golden-section search between the best one's neighbours.
double mse_clip(const std::vector<double>& values, const std::vector<double>& weights, double max_value,
                const QuantGrid& grid);
// the bits M whose 2^M bins span [0, alpha] on this grid: log2(levels in [0, alpha] - 1) rounded.
int one_sided_bits(const QuantGrid& grid);

}  // namespace qnn
