// gradcheck (see autograd/gradcheck.h): analytic gradients from one backward pass against central
// differences, for the scalar L = sum_k w_k f(x)_k with w a fixed random tensor. backward() with
// seed w gives dL/dx directly; each numeric derivative costs two evaluations of f, run without
// recording a graph and summed in double so that float rounding in L stays far below h.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

namespace qnn {

namespace {

double weighted_sum(const Tensor& y, const Tensor& w) {
  double s = 0.0;
  for (int64_t k = 0; k < y.numel(); ++k) s += static_cast<double>(y.data()[k]) * w.data()[k];
  return s;
}

}  // namespace

GradcheckResult gradcheck(const std::function<Variable(const std::vector<Variable>&)>& f,
                          const std::vector<Tensor>& inputs, float h, float rtol, float atol) {
  std::vector<Variable> leaves;
  for (const Tensor& t : inputs) leaves.emplace_back(t.clone(), true);

  // Analytic: one backward pass with the random weights as the seed.
  Variable out = f(leaves);
  QNN_CHECK(out.defined(), "the function returned an undefined Variable");
  const Tensor weights = Tensor::uniform(out.shape(), -1.0f, 1.0f, /*seed=*/0x9c4ec7);
  if (out.requires_grad()) out.backward(weights);

  GradcheckResult result;
  std::ostringstream report;
  int mismatches = 0;
  constexpr int kReported = 8;
  NoGradGuard no_grad;
  for (size_t i = 0; i < leaves.size(); ++i) {
    Tensor& x = leaves[i].value();
    const Tensor& grad = leaves[i].grad();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const float saved = x.data()[j];
      x.data()[j] = saved + h;
      const double plus = weighted_sum(f(leaves).value(), weights);
      x.data()[j] = saved - h;
      const double minus = weighted_sum(f(leaves).value(), weights);
      x.data()[j] = saved;
      const double numeric = (plus - minus) / (2.0 * h);
      const double analytic = grad.defined() ? grad.data()[j] : 0.0;
      if (std::abs(analytic - numeric) > atol + rtol * std::abs(numeric)) {
        result.ok = false;
        if (mismatches++ < kReported)
          report << "input " << i << " " << shape_str(x.shape()) << " element " << j
                 << ": analytic " << analytic << ", numeric " << numeric << "\n";
      }
    }
  }
  if (mismatches > kReported) report << "... " << mismatches - kReported << " more mismatches\n";
  result.report = report.str();
  return result;
}

}  // namespace qnn
