// CPU softmax cross-entropy: one row per iteration, rows in parallel, the mean summed in row
// order so it is deterministic (see tensor/softmax_xent.h).
#include "tensor/softmax_xent.h"

#include <algorithm>
#include <cmath>

namespace qnn {

namespace {

void check_inputs(const char* op, const Tensor& logits, const std::vector<int32_t>& labels) {
  if (logits.dim() != 2 || logits.size(0) < 1 || logits.size(1) < 1)
    throw Error(str("[", op, "] expected logits of shape [N, classes] with N, classes >= 1, got ",
                    shape_str(logits.shape())));
  const int64_t n = logits.size(0), classes = logits.size(1);
  if (static_cast<int64_t>(labels.size()) != n)
    throw Error(str("[", op, "] logits ", shape_str(logits.shape()), " have ", n, " rows but ",
                    labels.size(), " labels were given"));
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= classes)
      throw Error(str("[", op, "] label ", labels[i], " at index ", i, " is out of range for ",
                      classes, " classes (expected 0 <= label < ", classes, ")"));
}

}  // namespace

Tensor cross_entropy_forward(const Tensor& logits, const std::vector<int32_t>& labels, Tensor& lse) {
  check_inputs("cross_entropy", logits, labels);
  const int64_t n = logits.size(0), classes = logits.size(1);
  lse = Tensor({n}, logits.device());
  std::vector<double> row_loss(static_cast<size_t>(n));
  const float* pz = logits.data();
#pragma omp parallel for schedule(static) if (n * classes >= 32768)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = pz + i * classes;
    float m = z[0];
    for (int64_t k = 1; k < classes; ++k) m = std::max(m, z[k]);
    double s = 0.0;
    for (int64_t k = 0; k < classes; ++k) s += std::exp(static_cast<double>(z[k]) - m);
    const double l = m + std::log(s);
    lse.data()[i] = static_cast<float>(l);
    row_loss[i] = l - z[labels[i]];
  }
  double total = 0.0;
  for (double l : row_loss) total += l;
  return Tensor::full({1}, static_cast<float>(total / n), logits.device());
}

Tensor cross_entropy_backward(const Tensor& dloss, const Tensor& logits,
                              const std::vector<int32_t>& labels, const Tensor& lse) {
  check_inputs("cross_entropy_backward", logits, labels);
  const int64_t n = logits.size(0), classes = logits.size(1);
  QNN_CHECK(dloss.numel() == 1 && lse.shape() == Shape({n}), "expected a one-element loss gradient and lse [",
            n, "], got ", shape_str(dloss.shape()), " and ", shape_str(lse.shape()));
  Tensor dz(logits.shape(), logits.device());
  const float g = dloss.data()[0] / static_cast<float>(n);
  const float* pz = logits.data();
  float* pdz = dz.data();
#pragma omp parallel for schedule(static) if (n * classes >= 32768)
  for (int64_t i = 0; i < n; ++i) {
    const float l = lse.data()[i];
    for (int64_t k = 0; k < classes; ++k) pdz[i * classes + k] = g * std::exp(pz[i * classes + k] - l);
    pdz[i * classes + labels[i]] -= g;
  }
  return dz;
}

}  // namespace qnn
