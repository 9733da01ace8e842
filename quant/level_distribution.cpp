// Distribution models for adaptive levels: truncated normal, the 50000-bin norm-weighted
// mixture, V(levels) and quantile levels.
// Source: learning-to-quantize estim/dist.py (TruncNorm, CondNormalTruncHist,
// est_var_adjacent_levels) and nuq/quantize.py (get_quantile_levels).
//
// Closed forms used for a normal density f with mean mu (truncation only rescales f and F):
//   integral (r - a) f dr   = (mu - a) dF - sigma^2 [f]
//   integral (r - a)^2 f dr = (sigma^2 + (mu - a)^2) dF - sigma^2 [(r - a + mu - a) f]
// where dF and [.] are differences between the ends of the interval.
#include "quant/level_distribution.h"

#include <algorithm>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

namespace {
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;
double normal_cdf(double z) { return 0.5 * std::erfc(-z * kInvSqrt2); }
double normal_upper(double z) { return 0.5 * std::erfc(z * kInvSqrt2); }
double normal_pdf(double z) { return kInvSqrt2Pi * std::exp(-0.5 * z * z); }
// v (a whole number or not) as an int clamped to [lo, hi]; NaN gives lo. Converting NaN or a
// double beyond int's range is undefined behaviour, so the clamp comes first.
int clamped_int(double v, int lo, int hi) {
  if (!(v > double(lo))) return lo;
  if (!(v < double(hi))) return hi;
  return int(v);
}
}  // namespace

// ---- Density ---------------------------------------------------------------------------

double Density::inverse_cdf(double q, double lo, double hi) const {
  QNN_CHECK(lo <= hi, "empty search interval [", lo, ", ", hi, "]");
  if (q <= cdf(lo)) return lo;
  if (q >= cdf(hi)) return hi;
  // Invariant: cdf(lo) < q <= cdf(hi). 64 halvings reach the resolution of a double.
  for (int it = 0; it < 64 && hi - lo > 0.0; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (mid <= lo || mid >= hi) break;
    if (cdf(mid) < q) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

double Density::interval_variance(double a, double b) const {
  if (b <= a) return 0.0;
  const std::array<double, 3> m = moments(a, b);
  // (r - a)(b - r) = t (w - t) with t = r - a, w = b - a.
  return std::max(0.0, (b - a) * m[1] - m[2]);
}

double level_variance(const Density& density, const std::vector<double>& levels) {
  double v = 0.0;
  for (size_t j = 0; j + 1 < levels.size(); ++j) {
    QNN_CHECK(levels[j] <= levels[j + 1], "levels must be sorted; level ", j, " = ", levels[j],
              " > level ", j + 1, " = ", levels[j + 1]);
    v += density.interval_variance(levels[j], levels[j + 1]);
  }
  return v;
}

std::vector<double> quantile_levels(const Density& density, int bits) {
  QNN_CHECK(bits >= 1 && bits <= 16, "bits must be in [1, 16], got ", bits);
  const int count = 1 << bits;
  std::vector<double> levels(count);
  for (int i = 0; i < count; ++i) levels[i] = density.ppf(double(i) / double(count - 1));
  levels.front() = -1.0;
  levels.back() = 1.0;
  return levels;
}

// ---- TruncatedNormal -------------------------------------------------------------------

TruncatedNormal::TruncatedNormal(double mean, double sigma) : mean_(mean), sigma_(sigma) {
  QNN_CHECK(std::isfinite(mean) && std::isfinite(sigma) && sigma > 0.0,
            "need a finite mean and a positive sigma, got mean ", mean, " sigma ", sigma);
  const double alpha = (-1.0 - mean) / sigma;
  upper_ = alpha > 0.0;
  tail_alpha_ = upper_ ? normal_upper(alpha) : normal_cdf(alpha);
  mass_ = mass_below(1.0);
  QNN_CHECK(mass_ > 0.0, "Normal(", mean, ", ", sigma, "^2) has no mass on [-1, 1] in double precision");
}

double TruncatedNormal::mass_below(double x) const {
  x = std::min(1.0, std::max(-1.0, x));
  const double z = (x - mean_) / sigma_;
  // Differences of upper tails are accurate when both points lie far above the mean.
  return upper_ ? tail_alpha_ - normal_upper(z) : normal_cdf(z) - tail_alpha_;
}

double TruncatedNormal::cdf(double x) const {
  if (x <= -1.0) return 0.0;
  if (x >= 1.0) return 1.0;
  return std::min(1.0, std::max(0.0, mass_below(x) / mass_));
}

double TruncatedNormal::pdf(double x) const {
  if (x < -1.0 || x > 1.0) return 0.0;
  return normal_pdf((x - mean_) / sigma_) / (sigma_ * mass_);
}

std::array<double, 3> TruncatedNormal::moments(double a, double b) const {
  const double lo = std::max(a, -1.0), hi = std::min(b, 1.0);
  if (hi <= lo) return {0.0, 0.0, 0.0};
  const double m0 = (mass_below(hi) - mass_below(lo)) / mass_;
  const double f_lo = pdf(lo), f_hi = pdf(hi), s2 = sigma_ * sigma_, mu = mean_ - a;
  const double m1 = mu * m0 - s2 * (f_hi - f_lo);
  const double m2 = (s2 + mu * mu) * m0 - s2 * ((hi - a + mu) * f_hi - (lo - a + mu) * f_lo);
  return {m0, m1, m2};
}

// ---- NormalMixtureHist -----------------------------------------------------------------

NormalMixtureHist::NormalMixtureHist(const std::vector<double>& means,
                                     const std::vector<double>& sigmas,
                                     const std::vector<double>& norms, int nbins) {
  QNN_CHECK(!means.empty(), "the mixture needs at least one component");
  QNN_CHECK(means.size() == sigmas.size() && means.size() == norms.size(),
            "means, sigmas and norms differ in length: ", means.size(), ", ", sigmas.size(), ", ",
            norms.size());
  QNN_CHECK(nbins >= 2, "nbins must be at least 2, got ", nbins);
  double total_norm = 0.0;
  for (double n : norms) {
    QNN_CHECK(std::isfinite(n) && n >= 0.0, "norms must be finite and non-negative, got ", n);
    total_norm += n;
  }
  QNN_CHECK(total_norm > 0.0, "the norms sum to zero");

  width_ = 2.0 / nbins;
  std::vector<double> mass(nbins, 0.0), component(nbins);
  for (size_t c = 0; c < means.size(); ++c) {
    components_.emplace_back(means[c], sigmas[c]);
    weights_.push_back(norms[c] / total_norm);
    // Beyond 10 sigma lies a mass under 1e-23: only the bins in between are evaluated (a
    // bucket's sigma is about 1/sqrt(bucket_size), so these are few).
    const double reach = 10.0 * sigmas[c];
    const int k0 = clamped_int(std::floor((means[c] - reach + 1.0) / width_), 0, nbins);
    const int k1 = clamped_int(std::ceil((means[c] + reach + 1.0) / width_), 0, nbins);
    double prev = 0.0, sum = 0.0;
    for (int k = k0; k < k1; ++k) {
      const double cur = components_.back().cdf(edge(k + 1));
      component[k] = cur - prev;
      sum += component[k];
      prev = cur;
    }
    QNN_CHECK(sum > 0.0, "component ", c, " has no mass on the bins");
    for (int k = k0; k < k1; ++k) mass[k] += weights_.back() * component[k] / sum;
  }
  double total = 0.0;
  for (double m : mass) total += m;
  density_.resize(nbins);
  cumulative_.assign(nbins + 1, 0.0);
  for (int k = 0; k < nbins; ++k) {
    density_[k] = mass[k] / total / width_;
    cumulative_[k + 1] = cumulative_[k] + mass[k] / total;
  }
}

int NormalMixtureHist::bin_of(double x) const {
  return clamped_int(std::floor((x + 1.0) / width_), 0, bins() - 1);  // NaN: bin 0
}

double NormalMixtureHist::cdf(double x) const {
  if (x <= -1.0) return 0.0;
  if (x >= 1.0) return 1.0;
  const int k = bin_of(x);
  return std::min(1.0, cumulative_[k] + (x - edge(k)) * density_[k]);
}

double NormalMixtureHist::pdf(double x) const {
  if (x < -1.0 || x > 1.0) return 0.0;
  return density_[bin_of(x)];
}

std::array<double, 3> NormalMixtureHist::moments(double a, double b) const {
  const double lo = std::max(a, -1.0), hi = std::min(b, 1.0);
  double m0 = 0.0, m1 = 0.0, m2 = 0.0;
  if (hi <= lo) return {m0, m1, m2};
  // Exact for the piecewise-constant density: integrate t^k over the part of each bin inside
  // [lo, hi], with t = r - a measured from the left end (no cancellation between large terms).
  for (int k = bin_of(lo), last = bin_of(hi); k <= last; ++k) {
    const double l = std::max(lo, edge(k)), h = std::min(hi, edge(k + 1));
    if (h <= l) continue;
    const double t0 = l - a, t1 = h - a, d = density_[k] * (t1 - t0);
    m0 += d;
    m1 += d * (t1 + t0) / 2.0;
    m2 += d * (t1 * t1 + t1 * t0 + t0 * t0) / 3.0;
  }
  return {m0, m1, m2};
}

}  // namespace qnn
