// ALQ and AMQ level fitting, the refit schedule and the AdaptiveLevels holder.
// Source: learning-to-quantize nuq/quantize.py (`alq`, `amq_norm_less`, `amq_norm_based`,
// `update_levels`), estim/gestim.py. Formulas in adaptive_levels.h.
#include "quant/adaptive_levels.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/check.h"

namespace qnn {

namespace {

constexpr double kMinSigma = 1e-9;  // a constant bucket has sigma 0; the models need sigma > 0
constexpr double kMinMultiplier = 1e-3, kMaxMultiplier = 1.0 - 1e-3;

void check_bits(int bits) { QNN_CHECK(bits >= 1 && bits <= 8, "bits must be in [1, 8], got ", bits); }

bool strictly_increasing(const std::vector<double>& v) {
  for (size_t i = 0; i + 1 < v.size(); ++i)
    if (!(v[i] < v[i + 1])) return false;
  return true;
}

std::vector<double> uniform_start(int bits) {
  const int count = 1 << bits;
  std::vector<double> levels(count);
  for (int i = 0; i < count; ++i) levels[i] = -1.0 + 2.0 * i / (count - 1);
  return levels;
}

// Symmetric mode works on [0 (dummy), positive half...]; this mirrors it back, dropping the 0.
std::vector<double> mirror(const std::vector<double>& half) {
  std::vector<double> full;
  for (size_t i = half.size() - 1; i >= 1; --i) full.push_back(-half[i]);
  full.insert(full.end(), half.begin() + 1, half.end());
  return full;
}

// Ten steps of central-difference gradient descent on V(a, x) + V(x, b) from x (lr 1,
// eps = (b - a) / 1000): the reference's default update (without --nuq_inv).
double alq_finite_difference_level(const Density& density, double a, double b, double x) {
  const double eps = (b - a) / 1000.0;
  auto objective = [&](double y) { return density.interval_variance(a, y) + density.interval_variance(y, b); };
  for (int it = 0; it < 10; ++it) x -= 1.0 * (objective(x + eps) - objective(x - eps)) / (2.0 * eps);
  return x;
}

}  // namespace

// ---- Schedule --------------------------------------------------------------------------

bool refit_due(int64_t step, const QuantizerOptions& options) {
  QNN_CHECK(step >= 0, "step must be non-negative, got ", step);
  QNN_CHECK(options.refit_every >= 0, "refit_every must be non-negative, got ", options.refit_every);
  if (std::find(options.refit_at.begin(), options.refit_at.end(), step) != options.refit_at.end())
    return true;
  return options.refit_every > 0 && step % options.refit_every == 0;
}

// ---- ALQ -------------------------------------------------------------------------------

double alq_closed_form_level(const Density& density, double a, double b) {
  QNN_CHECK(a < b, "neighbours must satisfy a < b, got a = ", a, " b = ", b);
  const std::array<double, 3> m = density.moments(a, b);
  if (!(m[0] > 0.0)) return 0.5 * (a + b);  // no mass: every x gives V = 0
  const double target = density.cdf(b) - m[1] / (b - a);
  return density.inverse_cdf(target, a, b);
}

std::vector<double> alq_descent(const Density& density, std::vector<double> initial,
                                const AlqOptions& options, std::vector<double>* losses) {
  QNN_CHECK(initial.size() >= 2, "need at least 2 levels, got ", initial.size());
  QNN_CHECK(initial.front() == -1.0 && initial.back() == 1.0,
            "levels must run from -1 to 1, got ", initial.front(), " .. ", initial.back());
  QNN_CHECK(strictly_increasing(initial), "levels must be strictly increasing");
  QNN_CHECK(options.epochs >= 0, "epochs must be non-negative, got ", options.epochs);
  std::vector<double> work = initial;
  if (options.symmetric) {
    QNN_CHECK(initial.size() % 2 == 0, "symmetric mode needs an even level count, got ", initial.size());
    work.assign(initial.begin() + initial.size() / 2, initial.end());
    QNN_CHECK(work.front() > 0.0, "symmetric mode needs a positive upper half, got ", work.front());
    work.insert(work.begin(), 0.0);
  }
  if (losses) losses->clear();
  for (int epoch = 0; epoch < options.epochs; ++epoch) {
    for (size_t i = 1; i + 1 < work.size(); ++i) {
      const double a = work[i - 1], b = work[i + 1];
      const double x = options.closed_form ? alq_closed_form_level(density, a, b)
                                           : alq_finite_difference_level(density, a, b, work[i]);
      if (x > a && x < b) work[i] = x;
    }
    if (losses) losses->push_back(level_variance(density, options.symmetric ? mirror(work) : work));
  }
  return options.symmetric ? mirror(work) : work;
}

std::vector<double> fit_alq(const Density& density, const Density& quantile_source, int bits,
                            const AlqOptions& options) {
  check_bits(bits);
  const std::vector<std::vector<double>> starts = {
      quantile_levels(quantile_source, bits), uniform_start(bits), multiplier_levels(bits, 0.5)};
  std::vector<double> best;
  double best_loss = 0.0;
  for (const std::vector<double>& start : starts) {
    // A quantile start can have coinciding levels (a distribution with gaps): skip it.
    if (!strictly_increasing(start)) continue;
    if (options.symmetric && !(start[start.size() / 2] > 0.0)) continue;
    std::vector<double> losses;
    std::vector<double> levels = alq_descent(density, start, options, &losses);
    const double loss = losses.empty() ? level_variance(density, levels) : losses.back();
    if (best.empty() || loss < best_loss) best = std::move(levels), best_loss = loss;
  }
  return best;
}

// ---- AMQ -------------------------------------------------------------------------------

std::vector<double> multiplier_levels(int bits, double p) {
  check_bits(bits);
  QNN_CHECK(p > 0.0 && p < 1.0 + 1e-12, "the multiplier must be in (0, 1], got ", p);
  const int half = 1 << (bits - 1);
  std::vector<double> levels(2 * half);
  for (int j = 0; j < half; ++j) {
    levels[j] = -std::pow(p, j);              // -1, -p, ..., -p^s
    levels[2 * half - 1 - j] = std::pow(p, j);  // ..., p, 1
  }
  return levels;
}

double amq_objective(const Density& density, double p, int bits) {
  check_bits(bits);
  const int s = (1 << (bits - 1)) - 1;
  const double c = std::pow(p, s);
  const std::array<double, 3> m = density.moments(0.0, c);  // moments about 0
  double v = c * c * m[0] - m[2];                          // integral_0^c (c^2 - r^2) p dr
  for (int j = 0; j < s; ++j) v += density.interval_variance(std::pow(p, j + 1), std::pow(p, j));
  return v;
}

namespace {
// d/dp of the central term 2 s p^{2s-1} (F(p^s) - F(0)).
double central_derivative(const Density& density, double p, int s) {
  if (s == 0) return 0.0;
  return 2.0 * s * std::pow(p, 2 * s - 1) * (density.cdf(std::pow(p, s)) - density.cdf(0.0));
}
// The two sums of dV/dp for one truncated normal: arg1 + sigma^2 arg2 in the reference's terms.
double interval_derivative(const TruncatedNormal& d, double p, int s) {
  double arg1 = 0.0, arg2 = 0.0;
  for (int j = 0; j < s; ++j) {
    const double hi = std::pow(p, j), lo = std::pow(p, j + 1);
    const double dl = (j == 0 ? 0.0 : j * std::pow(p, j - 1)) + (j + 1) * hi;  // j p^{j-1} + (j+1) p^j
    arg1 += (d.mean() * dl - (2 * j + 1) * hi * hi) * (d.cdf(hi) - d.cdf(lo));
    arg2 += dl * (d.pdf(lo) - d.pdf(hi));
  }
  return arg1 + d.sigma() * d.sigma() * arg2;
}
}  // namespace

double amq_derivative(const TruncatedNormal& density, double p, int bits) {
  check_bits(bits);
  const int s = (1 << (bits - 1)) - 1;
  return central_derivative(density, p, s) + interval_derivative(density, p, s);
}

double amq_derivative(const NormalMixtureHist& density, double p, int bits) {
  check_bits(bits);
  const int s = (1 << (bits - 1)) - 1;
  double sum = 0.0;
  for (size_t c = 0; c < density.components().size(); ++c)
    sum += density.weights()[c] * interval_derivative(density.components()[c], p, s);
  return central_derivative(density, p, s) + sum;
}

std::vector<double> amq_starting_points(bool norm_based, bool first_update, double previous) {
  if (!first_update) return {0.1, 0.2, 0.3, 0.4, previous, 0.5, 0.8, 0.9};
  if (norm_based) return {0.1, 0.2, 0.3, 0.4, 0.5, 0.8, 0.9};
  return {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 0.9};
}

double fit_amq(const Density& density, const std::function<double(double)>& derivative, int bits,
               const std::vector<double>& starts, const AmqOptions& options) {
  check_bits(bits);
  QNN_CHECK(!starts.empty(), "need at least one starting point");
  QNN_CHECK(options.epochs >= 0 && options.lr > 0.0, "need epochs >= 0 and lr > 0, got ",
            options.epochs, " and ", options.lr);
  double best_p = 0.0, best_v = 0.0;
  for (size_t i = 0; i < starts.size(); ++i) {
    double p = std::min(kMaxMultiplier, std::max(kMinMultiplier, starts[i]));
    for (int epoch = 0; epoch < options.epochs; ++epoch)
      p = std::min(kMaxMultiplier, std::max(kMinMultiplier, p - options.lr * derivative(p)));
    const double v = amq_objective(density, p, bits);
    if (i == 0 || v < best_v) best_p = p, best_v = v;
  }
  return best_p;
}

// ---- AdaptiveLevels --------------------------------------------------------------------

AdaptiveKind adaptive_kind_from_name(const std::string& name) {
  if (name == "alq") return AdaptiveKind::alq;
  if (name == "alq_nb") return AdaptiveKind::alq_nb;
  if (name == "amq") return AdaptiveKind::amq;
  if (name == "amq_nb") return AdaptiveKind::amq_nb;
  QNN_CHECK(false, "unknown adaptive scheme '", name, "'; expected alq, alq_nb, amq or amq_nb");
  return AdaptiveKind::alq;
}

AdaptiveLevels::AdaptiveLevels(AdaptiveKind kind, AdaptiveOptions options)
    : kind_(kind), options_(std::move(options)), multiplier_(options_.multiplier) {
  QNN_CHECK(options_.dist_num >= 1, "dist_num must be at least 1, got ", options_.dist_num);
  QNN_CHECK(options_.nbins >= 2, "nbins must be at least 2, got ", options_.nbins);
  for (double l : multiplier_levels(options_.bits, options_.multiplier)) levels_.push_back(float(l));
}

void AdaptiveLevels::restore(const std::vector<float>& levels, double multiplier, int64_t refits,
                             double nb_variance) {
  QNN_CHECK(levels.size() == levels_.size(), "expected ", levels_.size(), " levels (", options_.bits, " bits), got ",
            levels.size());
  for (size_t i = 0; i < levels.size(); ++i) {
    QNN_CHECK(std::isfinite(levels[i]) && levels[i] >= -1.0f && levels[i] <= 1.0f, "level ", i, " is ", levels[i],
              ", expected a finite value in [-1, 1]");
    QNN_CHECK(i == 0 || levels[i - 1] < levels[i], "levels must be strictly increasing; level ", i - 1, " = ",
              levels[i - 1], " then ", levels[i]);
  }
  QNN_CHECK(std::isfinite(multiplier) && multiplier > 0.0 && multiplier < 1.0, "the multiplier must be in (0, 1), got ",
            multiplier);
  QNN_CHECK(refits >= 0 && refits <= std::numeric_limits<int>::max(), "refits must be in 0..",
            std::numeric_limits<int>::max(), ", got ", refits);
  QNN_CHECK(std::isfinite(nb_variance) && nb_variance >= 0.0, "nb_variance must be finite and >= 0, got ", nb_variance);
  levels_ = levels;
  multiplier_ = multiplier;
  refits_ = int(refits);
  nb_variance_ = nb_variance;
}

bool AdaptiveLevels::maybe_refit(const float* grad, int64_t n, int64_t step,
                                 const QuantizerOptions& schedule) {
  if (!refit_due(step, schedule)) return false;
  GradientStatsAccumulator acc(schedule.bucket_size);
  acc.add(grad, n);
  return refit(acc.snapshot(options_.dist_num));
}

bool AdaptiveLevels::refit(const GradientStats& stats) {
  if (stats.buckets.empty() || stats.total_params == 0) return false;
  std::vector<double> means, sigmas, norms;
  for (const BucketStats& b : stats.buckets) {
    means.push_back(b.mean);
    sigmas.push_back(std::max(b.sigma, kMinSigma));
    norms.push_back(b.norm);
  }
  const NormalMixtureHist nb(means, sigmas, norms, options_.nbins);
  const TruncatedNormal nl(stats.nl_mean, std::max(stats.nl_sigma, kMinSigma));
  const int bits = options_.bits;
  std::vector<double> fitted;
  switch (kind_) {
    case AdaptiveKind::alq: fitted = fit_alq(nl, nb, bits, options_.alq); break;
    case AdaptiveKind::alq_nb: fitted = fit_alq(nb, nb, bits, options_.alq); break;
    case AdaptiveKind::amq:
      multiplier_ = fit_amq(nl, [&](double p) { return amq_derivative(nl, p, bits); }, bits,
                            amq_starting_points(false, refits_ == 0, multiplier_), options_.amq);
      fitted = multiplier_levels(bits, multiplier_);
      break;
    case AdaptiveKind::amq_nb:
      multiplier_ = fit_amq(nb, [&](double p) { return amq_derivative(nb, p, bits); }, bits,
                            amq_starting_points(true, refits_ == 0, multiplier_), options_.amq);
      fitted = multiplier_levels(bits, multiplier_);
      break;
  }
  levels_.assign(fitted.begin(), fitted.end());
  nb_variance_ = level_variance(nb, fitted);
  ++refits_;
  return true;
}

}  // namespace qnn
