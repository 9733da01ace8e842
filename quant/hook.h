// GradientQuantizationHook: puts a GradientQuantizer on the flat gradient of a model, so that
// every backward leaves the quantized gradient (decode(encode(g))) where the optimizer reads it.
//
//   FlatParameters params(model.parameters());
//   GradientQuantizationHook hook(make_quantizer("standard", options), {/*seed*/ 7});
//   hook.install(params);          // from now on backward() quantizes params.grads()
//   ... loss.backward(); sgd.step(); hook.last_bits_per_coordinate() ...
//
// As smart-quantizer's QuantizedSGD does (spec 2.1), the hook sees the raw loss gradient only:
// weight decay and momentum are added by the optimizer afterwards. Each application runs
// quantizer.observe(g, step) (adaptive schemes refit there), optionally records the exact
// variance on the raw gradient, quantizes with randomness keyed by (seed, step, flat index), and
// advances the step. Buckets either span layers over the whole flat gradient (network-wide, as
// smart-quantizer flattens: the default) or restart at every parameter (per-layer: each
// parameter's slice is bucketed on its own, its randomness still keyed by flat index).
//
// Emulated data parallelism with K workers (learning-to-quantize's --nuq_ngpu, spec 3.1): do NOT
// install the hook; per step, for each worker w compute its gradient on its own mini-batch
// (zero_grad, forward, backward) and copy params.grads() to a buffer of its own; then
//   hook.quantize_and_average({buf0, ..., bufK-1}, n, params.grads().data());
// quantizes each worker's gradient independently (worker w keys its randomness by
// worker_seed(seed, w)) and writes the mean, which the optimizer step then uses. With K = 1 this
// is exactly apply().
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "quant/quantizer.h"

namespace qnn {

class FlatParameters;

enum class Flattening { network_wide, per_layer };

struct HookOptions {
  uint64_t seed = 0;
  Flattening flattening = Flattening::network_wide;
  bool record_variance = false;  // compute variance() of the raw gradient at every step
};

class GradientQuantizationHook {
 public:
  GradientQuantizationHook(std::unique_ptr<GradientQuantizer> quantizer, HookOptions options = {});
  GradientQuantizationHook(const GradientQuantizationHook&) = delete;  // installed hooks hold `this`
  GradientQuantizationHook& operator=(const GradientQuantizationHook&) = delete;

  // Takes the parameter sizes (per-layer slices) from `params` and adds a flat-gradient hook that
  // calls apply(). This object must outlive the installation; params.clear_grad_hooks() removes it.
  void install(FlatParameters& params);
  // Per-layer slices, when the hook is used without install(); they must add up to the gradient.
  void set_layer_sizes(std::vector<int64_t> sizes) { layer_sizes_ = std::move(sizes); }

  // One step on one gradient, in place: observe, [variance], quantize; then step + 1.
  void apply(float* grad, int64_t n);
  // One step of K emulated workers: quantizes worker_grads[w] (left untouched) with seed
  // worker_seed(seed, w), writes their mean to `out` (which may be one of them); then step + 1.
  // Records the mean bits per coordinate and, if asked, the variance of the mean,
  // sum_w variance_w / K^2 (the workers' roundings are independent).
  void quantize_and_average(const std::vector<const float*>& worker_grads, int64_t n, float* out);
  // Worker 0 keeps the seed, so one worker is the single-worker hook.
  static uint64_t worker_seed(uint64_t seed, int64_t worker) { return seed ^ (uint64_t(worker) * 0x9E3779B97F4A7C15ull); }

  int64_t step() const { return step_; }
  void set_step(int64_t step) { step_ = step; }  // resuming from a checkpoint
  double last_bits_per_coordinate() const { return last_bits_; }
  double last_variance() const { return last_variance_; }  // 0 unless record_variance
  const GradientQuantizer& quantizer() const { return *quantizer_; }
  const HookOptions& options() const { return options_; }

 private:
  // Quantizes g in place with `seed` at the current step over the configured slices; returns
  // the payload bits and adds the variance of the raw g to *variance when given.
  int64_t quantize_slices(float* g, int64_t n, uint64_t seed, double* variance) const;

  std::unique_ptr<GradientQuantizer> quantizer_;
  HookOptions options_;
  std::vector<int64_t> layer_sizes_;
  std::vector<float> scratch_, sum_;  // quantize_and_average's buffers, reused across steps
  int64_t step_ = 0;
  double last_bits_ = 0, last_variance_ = 0;
};

}  // namespace qnn
