// ACIQ's clipping constants (ptq/aciq.h) against the optimal alphas Banner et al. publish for 2 to
// 8 bits (their code's tables, the same in Distiller's ACIQ clipper), two-sided and one-sided, for
// the Laplace and Gaussian priors; each alpha must minimise its closed-form MSE.
#include <doctest.h>

#include <cmath>
#include <initializer_list>

#include "ptq/aciq.h"

using namespace qnn;

namespace {
// alpha / b (Laplace) and alpha / sigma (Gaussian) for M = 1..8 bits, and the minimum MSEs.
const double kLaplace[] = {1.86282, 2.83068, 3.89723, 5.02864, 6.20477, 7.41313, 8.64562, 9.89676};
const double kLaplaceMse[] = {0.599643, 0.284878, 0.119702, 0.0460215, 0.0165718, 0.00567877, 0.00187252, 0.000598853};
const double kGauss[] = {1.23991, 1.71064, 2.15159, 2.55914, 2.93620, 3.28691, 3.61511, 3.92404};
const double kGaussMse[] = {0.215010, 0.0871485, 0.0314294, 0.0104933, 0.00332259, 0.00101292, 0.000300215, 8.70779e-05};
// One-sided (ReLU outputs) for M = 1..8, as published: two decimals, cut (not rounded).
const double kLaplaceOneSided[] = {2.83, 3.89, 5.02, 6.20, 7.41, 8.64, 9.89, 11.16};
const double kGaussOneSided[] = {1.71, 2.15, 2.55, 2.93, 3.28, 3.61, 3.92, 4.20};
}  // namespace

TEST_CASE("aciq: the optimal alpha of 1 to 8 bits equals the published table, Laplace and Gaussian") {
  for (int m = 1; m <= 8; ++m) {
    CAPTURE(m);
    const double laplace = aciq_alpha(AciqPrior::Laplace, m), gauss = aciq_alpha(AciqPrior::Gauss, m);
    CHECK(laplace == doctest::Approx(kLaplace[m - 1]).epsilon(2e-6));
    CHECK(gauss == doctest::Approx(kGauss[m - 1]).epsilon(3e-6));
    CHECK(aciq_mse(AciqPrior::Laplace, laplace, m) == doctest::Approx(kLaplaceMse[m - 1]).epsilon(1e-5));
    CHECK(aciq_mse(AciqPrior::Gauss, gauss, m) == doctest::Approx(kGaussMse[m - 1]).epsilon(1e-5));
    // A minimum: moving alpha by 0.01 either way costs.
    for (AciqPrior prior : {AciqPrior::Laplace, AciqPrior::Gauss}) {
      const double a = aciq_alpha(prior, m);
      CHECK(aciq_mse(prior, a + 0.01, m) > aciq_mse(prior, a, m));
      CHECK(aciq_mse(prior, a - 0.01, m) > aciq_mse(prior, a, m));
    }
  }
}

TEST_CASE("aciq: one-sided alpha(M) is the two-sided alpha(M + 1) and matches the one-sided tables") {
  for (int m = 1; m <= 8; ++m) {
    CAPTURE(m);
    CHECK(aciq_alpha_one_sided(AciqPrior::Laplace, m) == aciq_alpha(AciqPrior::Laplace, m + 1));
    const double laplace = aciq_alpha_one_sided(AciqPrior::Laplace, m), gauss = aciq_alpha_one_sided(AciqPrior::Gauss, m);
    CHECK((laplace >= kLaplaceOneSided[m - 1] && laplace < kLaplaceOneSided[m - 1] + 0.01));
    CHECK((gauss >= kGaussOneSided[m - 1] && gauss < kGaussOneSided[m - 1] + 0.02));
  }
}

TEST_CASE("aciq: on a ReLU output's exponential tail the objective is the two-sided one at one bit more") {
  // Values y ~ Exp(1) (the positive part of a Laplace), 2^M bins on [0, alpha]: clipping error
  // integral_alpha^inf (y - alpha)^2 e^-y dy = 2 e^-alpha, rounding alpha^2 / (12 4^M).
  for (int m = 1; m <= 8; ++m)
    for (double a : {0.5, 2.0, 7.0}) {
      const double one_sided = 2.0 * std::exp(-a) + a * a / (12.0 * std::pow(4.0, m));
      CHECK(one_sided == doctest::Approx(aciq_mse(AciqPrior::Laplace, a, m + 1)).epsilon(1e-12));
    }
}

TEST_CASE("aciq: bad bit widths are errors") {
  CHECK_THROWS_WITH(aciq_alpha(AciqPrior::Laplace, 0), doctest::Contains("1 to 16 bits"));
  CHECK_THROWS_WITH(aciq_alpha_one_sided(AciqPrior::Gauss, 16), doctest::Contains("1 to 15 bits"));
}
