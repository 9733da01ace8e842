// ACIQ's clipping constants (see ptq/aciq.h): the closed-form MSE and its golden-section minimum.
#include "ptq/aciq.h"

#include <cmath>

#include "tensor/check.h"

namespace qnn {

const char* aciq_prior_name(AciqPrior prior) { return prior == AciqPrior::Laplace ? "laplace" : "gauss"; }

double aciq_mse(AciqPrior prior, double alpha, int bits) {
  QNN_CHECK(bits >= 1 && bits <= 16, "ACIQ handles 1 to 16 bits, got ", bits);
  const double rounding = alpha * alpha / (3.0 * std::pow(4.0, bits));
  if (prior == AciqPrior::Laplace) return 2.0 * std::exp(-alpha) + rounding;
  const double clipping = (1.0 + alpha * alpha) * (1.0 - std::erf(alpha / std::sqrt(2.0))) -
                          std::sqrt(2.0 / M_PI) * alpha * std::exp(-alpha * alpha / 2.0);
  return clipping + rounding;
}

double aciq_alpha(AciqPrior prior, int bits) {
  QNN_CHECK(bits >= 1 && bits <= 16, "ACIQ handles 1 to 16 bits, got ", bits);
  // The minimum lies well inside [0, 4 bits + 4] for both priors (about 1.24 M for Laplace).
  double lo = 0.0, hi = 4.0 * bits + 4.0;
  const double ratio = (std::sqrt(5.0) - 1.0) / 2.0;
  double a = hi - ratio * (hi - lo), b = lo + ratio * (hi - lo);
  double fa = aciq_mse(prior, a, bits), fb = aciq_mse(prior, b, bits);
  while (hi - lo > 1e-10) {
    if (fa < fb) {
      hi = b, b = a, fb = fa;
      a = hi - ratio * (hi - lo);
      fa = aciq_mse(prior, a, bits);
    } else {
      lo = a, a = b, fa = fb;
      b = lo + ratio * (hi - lo);
      fb = aciq_mse(prior, b, bits);
    }
  }
  return (lo + hi) / 2.0;
}

double aciq_alpha_one_sided(AciqPrior prior, int bits) {
  QNN_CHECK(bits >= 1 && bits <= 15, "one-sided ACIQ handles 1 to 15 bits, got ", bits);
  return aciq_alpha(prior, bits + 1);
}

}  // namespace qnn
