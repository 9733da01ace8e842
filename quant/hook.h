// GradientQuantizationHook: puts a GradientQuantizer on the flat gradient of a model, so that
// every backward leaves the quantized gradient (decode(encode(g))) where the optimizer reads it.
//
//   FlatParameters params(model.parameters());
//   GradientQuantizationHook hook(make_quantizer("standard", options), {/*seed*/ 7});
//   hook.install(params);          // from now on backward() quantizes params.grads()
//   ... loss.backward(); sgd.step(); hook.last_bits_per_coordinate() ...
//
// As smart-quantizer's QuantizedSGD does, the hook sees the raw loss gradient only:
// weight decay and momentum are added by the optimizer afterwards. Each application runs
// quantizer.observe(g, step) (adaptive schemes refit there), optionally records the exact
// variance on the raw gradient, quantizes with randomness keyed by (seed, step, flat index), and
// advances the step. Buckets either span layers over the whole flat gradient (network-wide, as
// smart-quantizer flattens: the default) or restart at every parameter (per-layer: each
// parameter's slice is bucketed on its own, its randomness still keyed by flat index).
//
// Emulated data parallelism with K workers (learning-to-quantize's --nuq_ngpu): do NOT
// install the hook; per step, for each worker w compute its gradient on its own mini-batch
// (zero_grad, forward, backward) and copy params.grads() to a buffer of its own; then
//   hook.quantize_and_average({buf0, ..., bufK-1}, n, params.grads().data());
// quantizes each worker's gradient independently (worker w keys its randomness by
// worker_seed(seed, w)) and writes the mean, which the optimizer step then uses. With K = 1 this
// is exactly apply(). Real workers in separate processes (mpirun) exchange the same payloads
// through dist/exchange.h, which uses this hook's quantizer, seed, step and state.
//
// On the GPU (a CUDA flat gradient; install() hands the hook the gradient tensor): apply(Tensor&)
// quantizes in place with quant/device_quantizer.h, bit for bit the CPU result, with no
// synchronisation and no host read, so a training step that includes it can be captured as a
// CUDA graph. The step lives in device memory too (device_step()): the kernels read it and a
// one-thread kernel at the end of apply() advances it, INSIDE the step, so each replay of a
// captured graph quantizes with the next step's randomness; set_step() writes it with a kernel
// enqueued outside the captured region. The seed is a kernel argument. (The host counter step()
// advances only when apply() runs on the host: after graph replays, read device_step().) Not
// capturable, and run on the host side of the step: adaptive schemes at their refit steps
// (observes_at: the gradient is copied to the host, the levels refitted by the CPU code and
// uploaded), and schemes without a CUDA version (smart with buckets over 512, where candidates
// are sampled: the gradient is copied to the host, quantized there and copied back). device_capturable(step) says which. The first call (and a
// change of slices or levels) uploads small tables: run one step eagerly before capturing.
// quantize_and_average has a device twin taking CUDA tensors. last_variance() reads the device
// variance back when called (it waits for the GPU).
//
// Checkpoints. state() is the hook's state as named CPU tensors: the step counter (it keys the
// randomness of the next step and the refit schedule) and the quantizer's state (the adaptive
// schemes' fitted levels and what their next refit starts from), so that a run resumed with
// load_state() quantizes every later step bit for bit as the uninterrupted run:
//   save:  std::vector<NamedTensor> tensors = ...;           // the model's, the optimizer's
//          for (const NamedTensor& t : hook.state()) tensors.push_back(t);
//          save_safetensors(path, tensors, metadata);
//   load:  GradientQuantizationHook hook(make_quantizer(scheme, the same options), the same HookOptions);
//          hook.install(params);        // or set_layer_sizes; install touches neither the step
//          hook.load_state(file);       // nor the levels, so the order of these two is free
// load_state() sets the step itself (set_step, the device step included; no set_step after it)
// and replaces the levels a CUDA quantization reads (the next apply uploads them, into the same
// device buffer): call it before the first training step, so before any CUDA graph is captured.
// The variance totals are measurements, not state.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "quant/quantizer.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace qnn {

class FlatParameters;
class DeviceQuantizer;
class DeviceStep;

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
  ~GradientQuantizationHook();

  // Takes the parameter sizes (per-layer slices) from `params` and adds a flat-gradient hook that
  // calls apply(). This object must outlive the installation; params.clear_grad_hooks() removes it.
  void install(FlatParameters& params);
  // Per-layer slices, when the hook is used without install(); they must add up to the gradient.
  void set_layer_sizes(std::vector<int64_t> sizes) { layer_sizes_ = std::move(sizes); }

  // One step on one gradient, in place: observe, [variance], quantize; then step + 1.
  void apply(float* grad, int64_t n);
  // The same on a flat gradient tensor: CPU tensors go to apply(data, n), CUDA ones stay on the
  // GPU (see the top of this file).
  void apply(Tensor& grad);
  // Whether apply(Tensor&) of a CUDA gradient at `step` does only device work (capturable).
  bool device_capturable(int64_t step) const;
  // One step of K emulated workers: quantizes worker_grads[w] (left untouched) with seed
  // worker_seed(seed, w), writes their mean to `out` (which may be one of them); then step + 1.
  // Records the mean bits per coordinate and, if asked, the variance of the mean,
  // sum_w variance_w / K^2 (the workers' roundings are independent).
  void quantize_and_average(const std::vector<const float*>& worker_grads, int64_t n, float* out);
  // The same with tensors; CUDA tensors are quantized and averaged on the GPU (same results).
  void quantize_and_average(const std::vector<Tensor>& worker_grads, Tensor& out);
  // Worker 0 keeps the seed, so one worker is the single-worker hook.
  static uint64_t worker_seed(uint64_t seed, int64_t worker) { return seed ^ (uint64_t(worker) * 0x9E3779B97F4A7C15ull); }

  // A real exchange between processes (dist/exchange.h) encodes and decodes through quantizer()
  // itself and keeps the hook's step, state and statistics with these two: this step's adaptive
  // refit on `g` (the same gradient on every rank), then the end of the step (step + 1).
  void observe(const float* g, int64_t n) { quantizer_->observe(g, n, step_); }
  void finish_exchanged_step(double bits_per_coordinate, double variance);

  int64_t step() const { return step_; }
  void set_step(int64_t step);  // resuming from a checkpoint; also writes the device step

  // The state above, every name starting with `prefix` (quant/quantizer_state.h for the storage):
  //   <prefix>step              I64 [4]  the step counter, step()
  //   <prefix><scheme>.<entry>  each entry of quantizer().state(), e.g. quantization.amq.levels
  // (for a scheme without state, the step alone).
  std::vector<NamedTensor> state(const std::string& prefix = "quantization.") const;
  // Restores state() from the tensors whose names start with `prefix`; the others are ignored,
  // so a whole checkpoint can be given. Required: <prefix>step and exactly the quantizer's
  // entries under <prefix><scheme>.; a missing or unknown entry (another scheme's state, say), a
  // wrong shape or a bad value is a qnn::Error naming it, and leaves the hook as it was.
  void load_state(const std::vector<NamedTensor>& tensors, const std::string& prefix = "quantization.");
  void load_state(const SafetensorsFile& file, const std::string& prefix = "quantization.");  // errors name the file
  // A captured training step was replayed: its kernels advanced the device step; this keeps
  // the host counter (refit schedule, checkpoints) in line without touching the device.
  void note_replayed_step() { ++step_; }
  // The step in device memory, created by the first apply() on a CUDA gradient (nullptr before).
  const DeviceStep* device_step() const { return device_step_.get(); }
  double last_bits_per_coordinate() const { return last_bits_; }
  double last_variance() const;  // 0 unless record_variance
  // The sum of the variances recorded since the last reset (with record_variance), for a mean
  // over many steps: on the GPU it accumulates on the device, captured steps included, and is
  // read (waiting for the GPU) only here.
  double variance_total() const;
  void reset_variance_total();
  const GradientQuantizer& quantizer() const { return *quantizer_; }
  const HookOptions& options() const { return options_; }

 private:
  // Quantizes g in place with `seed` at the current step over the configured slices; returns
  // the payload bits and adds the variance of the raw g to *variance when given.
  int64_t quantize_slices(float* g, int64_t n, uint64_t seed, double* variance) const;
  // The slices the device quantizer takes: the layers when per-layer, else one.
  std::vector<int64_t> device_slices() const;
  // Device path preparation: the adaptive refit on the host when due; the device quantizer, step
  // and variance accumulator. False when the scheme has no CUDA version.
  bool prepare_device(const Tensor& observed);
  // The host round trip for schemes without a CUDA version (not capturable).
  void apply_through_host(Tensor& grad);

  std::unique_ptr<GradientQuantizer> quantizer_;
  HookOptions options_;
  std::vector<int64_t> layer_sizes_;
  std::vector<float> scratch_, sum_;  // quantize_and_average's buffers, reused across steps
  int64_t step_ = 0;
  double last_bits_ = 0;
  mutable double last_variance_ = 0;
  // GPU state: the device quantizer, the step in device memory, the variance accumulator (one
  // double, read back lazily and divided by variance_divisor_), quantize_and_average's buffers.
  std::unique_ptr<DeviceQuantizer> device_;
  std::unique_ptr<DeviceStep> device_step_;
  Tensor device_variance_, device_scratch_, device_sum_;
  Tensor device_variance_total_;  // a double in two floats on the GPU
  double variance_total_ = 0;     // the host side's total
  mutable bool variance_on_device_ = false;
  double variance_divisor_ = 1;
};

}  // namespace qnn
