// CPU softmax cross-entropy: one row per iteration, rows in parallel, the mean summed in row
// order so it is deterministic (see tensor/softmax_xent.h).
#include "tensor/softmax_xent.h"

#include "tensor/device.h"

#include <algorithm>
#include <cmath>

namespace qnn {

namespace {

// The CPU version also checks every label's range (the GPU version cannot without waiting for
// the device; there, labels come from a dataset whose loader checked them).
void check_labels(const char* op, const Tensor& logits, const Tensor& labels) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  const float* t = labels.data();
  for (int64_t i = 0; i < n; ++i)
    if (!(t[i] >= 0 && t[i] < classes && t[i] == std::floor(t[i])))
      throw Error(str("[", op, "] label ", t[i], " at index ", i, " is out of range for ", classes,
                      " classes (expected an integer 0 <= label < ", classes, ")"));
}

}  // namespace

void check_cross_entropy_inputs(const char* op, const Tensor& logits, const Tensor& labels) {
  if (logits.dim() != 2 || logits.size(0) < 1 || logits.size(1) < 1)
    throw Error(str("[", op, "] expected logits of shape [N, classes] with N, classes >= 1, got ",
                    shape_str(logits.shape())));
  const int64_t n = logits.size(0);
  if (labels.numel() != n)
    throw Error(str("[", op, "] logits ", shape_str(logits.shape()), " have ", n, " rows but ",
                    labels.numel(), " labels were given"));
  if (labels.device() != logits.device())
    throw Error(str("[", op, "] logits are on ", device_name(logits.device()), " but labels on ",
                    device_name(labels.device())));
}

Tensor label_tensor(const std::vector<int32_t>& labels, Device device) {
  std::vector<float> values(labels.begin(), labels.end());
  return Tensor::from_vector(values, {static_cast<int64_t>(values.size())}).to(device);
}

Tensor cross_entropy_forward(const Tensor& logits, const Tensor& labels, Tensor& lse) {
  check_cross_entropy_inputs("cross_entropy", logits, labels);
  QNN_ON_CUDA(logits, cuda::cross_entropy_forward(logits, labels, lse));
  check_labels("cross_entropy", logits, labels);
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
    row_loss[i] = l - z[static_cast<int64_t>(labels.data()[i])];
  }
  double total = 0.0;
  for (double l : row_loss) total += l;
  return Tensor::full({1}, static_cast<float>(total / n), logits.device());
}

Tensor cross_entropy_backward(const Tensor& dloss, const Tensor& logits, const Tensor& labels,
                              const Tensor& lse) {
  check_cross_entropy_inputs("cross_entropy_backward", logits, labels);
  const int64_t n = logits.size(0), classes = logits.size(1);
  QNN_CHECK(dloss.numel() == 1 && lse.shape() == Shape({n}), "expected a one-element loss gradient and lse [",
            n, "], got ", shape_str(dloss.shape()), " and ", shape_str(lse.shape()));
  QNN_ON_CUDA(logits, cuda::cross_entropy_backward(dloss, logits, labels, lse));
  Tensor dz(logits.shape(), logits.device());
  const float g = dloss.data()[0] / static_cast<float>(n);
  const float* pz = logits.data();
  float* pdz = dz.data();
#pragma omp parallel for schedule(static) if (n * classes >= 32768)
  for (int64_t i = 0; i < n; ++i) {
    const float l = lse.data()[i];
    for (int64_t k = 0; k < classes; ++k) pdz[i * classes + k] = g * std::exp(pz[i * classes + k] - l);
    pdz[i * classes + static_cast<int64_t>(labels.data()[i])] -= g;
  }
  return dz;
}

}  // namespace qnn
