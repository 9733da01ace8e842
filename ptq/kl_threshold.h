// Entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017): choose the clip
// threshold whose quantized distribution loses the least information, measured by the
// Kullback-Leibler divergence KL(P || Q) = sum_i P_i log(P_i / Q_i).
//
// On a histogram of |x| (or of a ReLU's output) with B bins (2048) and L quantization levels
// (128 for int8), for every candidate length i = L .. B - 1:
//   P = bins[0 .. i), with every count beyond (the outliers the clip would saturate) added to
//       its last bin: the distribution the clipped tensor has;
//   Q = bins[0 .. i) merged into L groups of floor(i / L) bins (the last group takes the rest),
//       each group's count spread evenly over the group's bins where P is non-zero (bins where
//       P is zero stay zero): what L levels can represent;
//   both smoothed so no bin is zero (each zero bin gets eps = 1e-4, taken evenly off the
//       non-zero bins, as MXNet's calibration does), normalised, and compared.
// The threshold is the end of the best candidate, (i + 0.5) bin widths, as in Migacz's slides.
// scripts/kl_threshold_fixture.py is a NumPy port; tests/ptq check both agree.
#pragma once
#include <cstdint>
#include <vector>

#include "ptq/histogram.h"

namespace qnn {

// KL(P || Q) of the candidate of length i (bins), as above; +inf when P is empty.
double kl_candidate_divergence(const std::vector<double>& bins, int64_t i, int64_t levels);

// The threshold (a value) of the histogram; levels >= 2. With fewer bins than levels, or
// nothing counted, the histogram's max.
double kl_threshold(const Histogram& histogram, int64_t levels);

}  // namespace qnn
