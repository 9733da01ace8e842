// Distribution models of normalized gradient coordinates on [-1, 1], and the variance that
// stochastic rounding over a level set adds under them.
//
// Source: learning-to-quantize (Tabrizian/learning-to-quantize), estim/dist.py.
//   * TruncatedNormal(mu, sigma) on [-1, 1]: the norm-less ("nl") model of alq / amq.
//   * NormalMixtureHist(means, sigmas, norms): the norm-based ("nb") model of alq_nb / amq_nb,
//     a mixture of truncated normals with weights coeff_b = norm_b / sum(norm) (the norm, not
//     its square), each component's mass discretized into `nbins` (50000) linear bins on
//     [-1, 1] and normalized (the reference's linspace(-1, 1, nbins) makes nbins - 1 bins). Its pdf is piecewise constant (bin mass / bin width) and its cdf
//     is linear inside a bin.
//   * The variance objective for sorted levels l_0 < ... < l_m:
//       V(levels) = sum_j  integral_{l_j}^{l_{j+1}} (r - l_j)(l_{j+1} - r) p(r) dr,
//     the expected normalized variance per coordinate. The reference integrates it with
//     scipy's quad; here it is exact: closed form for the normal (using
//     integral r f = mu dF - sigma^2 df), bin by bin for the histogram.
//   * Quantile levels: ppf(linspace(0, 1, 2^bits)) with the ends replaced by -1 and +1.
#pragma once
#include <array>
#include <vector>

namespace qnn {

// A probability density on [-1, 1].
class Density {
 public:
  virtual ~Density() = default;
  virtual double cdf(double x) const = 0;
  virtual double pdf(double x) const = 0;
  // Moments about the left end: m_k = integral_a^b (r - a)^k p(r) dr for k = 0, 1, 2
  // (a <= b; the parts outside [-1, 1] contribute nothing).
  virtual std::array<double, 3> moments(double a, double b) const = 0;

  // The x in [lo, hi] with cdf(x) = q (bisection; the cdf is continuous and non-decreasing).
  double inverse_cdf(double q, double lo = -1.0, double hi = 1.0) const;
  double ppf(double q) const { return inverse_cdf(q); }
  // integral_a^b (r - a)(b - r) p(r) dr: the rounding variance between two adjacent levels.
  double interval_variance(double a, double b) const;
};

// V(levels) for sorted levels (the sum of interval_variance over adjacent pairs).
double level_variance(const Density& density, const std::vector<double>& levels);

// The 2^bits quantile levels of `density`, first and last replaced by -1 and +1.
std::vector<double> quantile_levels(const Density& density, int bits);

// Normal(mean, sigma^2) truncated to [-1, 1].
class TruncatedNormal : public Density {
 public:
  TruncatedNormal(double mean, double sigma);
  double cdf(double x) const override;
  double pdf(double x) const override;  // on [-1, 1] inclusive (the limit from inside), else 0
  std::array<double, 3> moments(double a, double b) const override;
  double mean() const { return mean_; }
  double sigma() const { return sigma_; }

 private:
  // Untruncated mass between -1 and x (x clamped to [-1, 1]).
  double mass_below(double x) const;
  double mean_, sigma_;
  bool upper_;        // the whole interval lies above the mean: use upper tails for accuracy
  double tail_alpha_; // Phi(alpha), or the upper tail Q(alpha) when upper_
  double mass_;       // Phi(beta) - Phi(alpha): the mass the truncation keeps
};

// Norm-weighted mixture of truncated normals, discretized into linear bins on [-1, 1].
class NormalMixtureHist : public Density {
 public:
  NormalMixtureHist(const std::vector<double>& means, const std::vector<double>& sigmas,
                    const std::vector<double>& norms, int nbins = 50000);
  double cdf(double x) const override;
  double pdf(double x) const override;
  std::array<double, 3> moments(double a, double b) const override;

  int bins() const { return int(density_.size()); }
  // The exact components and their weights coeff_b = norm_b / sum(norm) (AMQ's derivative).
  const std::vector<TruncatedNormal>& components() const { return components_; }
  const std::vector<double>& weights() const { return weights_; }

 private:
  double edge(int k) const { return -1.0 + width_ * k; }
  int bin_of(double x) const;  // clamped to [0, bins-1]
  std::vector<TruncatedNormal> components_;
  std::vector<double> weights_;
  double width_;
  std::vector<double> density_;  // per bin: mass / width
  std::vector<double> cumulative_;  // cumulative_[k] = mass of bins [0, k); size bins + 1
};

}  // namespace qnn
