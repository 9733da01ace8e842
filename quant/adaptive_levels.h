// Adaptive quantization levels fitted to gradient statistics: ALQ (adaptive levels) and AMQ
// (adaptive multiplier of exponential levels), their refit schedule, and a small holder that
// refits a level set from gradients.
//
// Source: learning-to-quantize (Tabrizian/learning-to-quantize), nuq/quantize.py (`alq`,
// `amq_norm_less`, `amq_norm_based`, `update_levels`) and estim/gestim.py.
// All levels lie in [-1, 1] (normalized coordinates), ends fixed at -1 and +1, sorted.
//
// ALQ, coordinate descent: each interior level x between neighbours a < x < b in turn
// minimizes V(a, x) + V(x, b); setting the derivative to zero gives (the ALQ paper's Eq. 8)
//     x = F^{-1}( F(b) - integral_a^b (r - a) p(r) dr / (b - a) ),
// which is the midpoint for a uniform density. A level that would not stay strictly between
// its neighbours is left where it is (the reference asserts instead).
//
// AMQ: levels +-p^j, j = 0..s, s = 2^(bits-1) - 1. Positive-half objective
//     V+(p) = integral_0^{p^s} (p^{2s} - r^2) p(r) dr + sum_{j<s} V(p^{j+1}, p^j)
// and its closed-form derivative for a truncated normal (paper Appendix G.3)
//     dV/dp = 2 s p^{2s-1} (F(p^s) - F(0))
//           + sum_j [mu (j p^{j-1} + (j+1) p^j) - (2j+1) p^{2j}] (F(p^j) - F(p^{j+1}))
//           + sigma^2 sum_j (j p^{j-1} + (j+1) p^j) (f(p^{j+1}) - f(p^j)),
// p <- p - lr dV/dp from several starting points; the p with the lowest V+ wins (the
// reference scores V over the levels {p^s, ..., 1} alone, without the central term whose
// derivative it descends; here the score is the objective itself).
//
// Symmetric ALQ (--nuq_sym) fits the positive half against a dummy level at 0 and mirrors it,
// so V of the mirrored set need not fall from epoch to epoch; the default mode's does not rise.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quant/gradient_stats.h"
#include "quant/level_distribution.h"
#include "quant/quantizer.h"

namespace qnn {

// ---- Schedule (3.6) --------------------------------------------------------------------

// True at the steps in options.refit_at (0, 100, 2000) and at every multiple of
// options.refit_every (10000; 0 disables the period).
bool refit_due(int64_t step, const QuantizerOptions& options);

// ---- ALQ (3.4) -------------------------------------------------------------------------

struct AlqOptions {
  int epochs = 30;          // cd_epochs
  bool closed_form = true;  // Eq. 8 (--nuq_inv); false: 10 finite-difference descent steps
  bool symmetric = false;   // --nuq_sym: fit the positive half (with a dummy 0), mirror it
};

// The Eq. 8 minimizer of V(a, x) + V(x, b) over x in [a, b] (the midpoint if [a, b] has no mass).
double alq_closed_form_level(const Density& density, double a, double b);

// Coordinate descent from sorted `initial` levels (-1 first, +1 last, strictly increasing;
// an even count in symmetric mode). `losses`, if given, receives V after every epoch.
std::vector<double> alq_descent(const Density& density, std::vector<double> initial,
                                const AlqOptions& options, std::vector<double>* losses = nullptr);

// ALQ from three starts: the quantile levels of `quantile_source`, uniform levels and
// exponential levels with p = 0.5; returns the result with the lowest final V under `density`.
// (alq: density = norm-less TruncatedNormal, quantile_source = norm-based mixture;
//  alq_nb: both the mixture.)
std::vector<double> fit_alq(const Density& density, const Density& quantile_source, int bits,
                            const AlqOptions& options);

// ---- AMQ (3.5) -------------------------------------------------------------------------

struct AmqOptions {
  double lr = 0.7;  // amq_lr
  int epochs = 50;  // amq_epochs (40 in the CIFAR runs)
};

// The 2^bits levels -p^0 < ... < -p^s < p^s < ... < p^0 (s = 2^(bits-1) - 1), in double.
std::vector<double> multiplier_levels(int bits, double p);
// V+(p), the positive-half objective above.
double amq_objective(const Density& density, double p, int bits);
// dV+/dp for the norm-less model (closed form).
double amq_derivative(const TruncatedNormal& density, double p, int bits);
// The norm-based version: the central term with the mixture's cdf, the sums over components
// weighted by coeff_b, each with its own exact truncated normal.
double amq_derivative(const NormalMixtureHist& density, double p, int bits);
// The starting points: first update {.1,.2,.3,.4,.5,.6,.8,.9} (amq) or the same without .6
// (amq_nb); later updates {.1,.2,.3,.4,p_prev,.5,.8,.9} for both.
std::vector<double> amq_starting_points(bool norm_based, bool first_update, double previous);
// Gradient descent on p from every start; returns the p with the lowest amq_objective.
// p is kept inside [1e-3, 1 - 1e-3] so that the levels stay distinct and sorted.
double fit_amq(const Density& density, const std::function<double(double)>& derivative, int bits,
               const std::vector<double>& starts, const AmqOptions& options);

// ---- The holder ------------------------------------------------------------------------

enum class AdaptiveKind { alq, alq_nb, amq, amq_nb };
// "alq", "alq_nb", "amq", "amq_nb" (an error lists them otherwise).
AdaptiveKind adaptive_kind_from_name(const std::string& name);

struct AdaptiveOptions {
  int bits = 3;            // 2^bits levels, sign included
  double multiplier = 0.5; // p of the exponential levels every kind starts from
  int64_t dist_num = 20;   // buckets kept by norm for the norm-based model
  int nbins = 50000;       // bins of the norm-based mixture
  AlqOptions alq;
  AmqOptions amq;
};

// The current level set of one adaptive scheme. Plug-in: the quantizer's observe(x, n, step)
// calls maybe_refit(x, n, step, options) and, when it returns true, set_levels(levels()).
class AdaptiveLevels {
 public:
  AdaptiveLevels(AdaptiveKind kind, AdaptiveOptions options);

  // When refit_due(step, schedule): statistics of this gradient's full buckets (bucket size
  // schedule.bucket_size), then refit(). Returns whether the levels were refitted.
  bool maybe_refit(const float* grad, int64_t n, int64_t step, const QuantizerOptions& schedule);
  // Refits from a snapshot (the reference pools 10 fresh mini-batches into it). Returns false,
  // leaving the levels as they are, when the snapshot holds no bucket.
  bool refit(const GradientStats& stats);

  const std::vector<float>& levels() const { return levels_; }
  AdaptiveKind kind() const { return kind_; }
  double multiplier() const { return multiplier_; }  // AMQ's current p
  int refits() const { return refits_; }
  // V of the current levels under the last norm-based model (the reference's `nb_error`).
  double nb_variance() const { return nb_variance_; }
  // Puts back what levels(), multiplier(), refits() and nb_variance() returned (a checkpoint), so
  // that the next refit starts where the saved run's would. Checked first, changed only if all
  // is valid: 2^bits finite levels strictly increasing within [-1, 1], a finite multiplier in
  // (0, 1), refits >= 0, a finite nb_variance >= 0.
  void restore(const std::vector<float>& levels, double multiplier, int64_t refits, double nb_variance);

 private:
  AdaptiveKind kind_;
  AdaptiveOptions options_;
  std::vector<float> levels_;
  double multiplier_;
  int refits_ = 0;
  double nb_variance_ = 0.0;
};

}  // namespace qnn
