// FakeQuantizer: everything a quantized layer needs to fake-quantize one tensor (its weight, or
// its input activations) in quantization-aware training, held in one object: the bit width and
// signedness, symmetric or affine, per tensor or per channel, and either
//   - an observer (qat/observer.h) whose running range gives the qparams, with the
//     straight-through gradient (PyTorch's FakeQuantize module with a MinMax or MovingAverage-
//     MinMax observer), or
//   - a learned scale (LSQ, Esser et al. ICLR 2020) and optionally a learned zero point (LSQ+),
//     as Variables a module registers as parameters (PyTorch's _LearnableFakeQuantize with LSQ's
//     initialisation and gradient scale).
//
//   FakeQuantizerConfig a;  a.bits = 4;                  // unsigned, affine, moving average
//   FakeQuantizer act(a);
//   Variable xq = act(x);                                 // observe, then fake quantize
//   FakeQuantizerConfig c;  c.bits = 4;  c.is_signed = true;  c.symmetric = true;
//   c.granularity = Granularity::PerChannel;  c.channels = 16;  c.learnable = true;
//   FakeQuantizer w(c);
//   w.scale() = register_parameter("weight_scale", w.scale().value());  // in a Module
//   Variable wq = w(weight);     // first call: s0 = 2 mean|w| / sqrt(Q_P) per channel
//
// freeze(): an observer stops updating its range (qparams fixed); learned qparams stop receiving
// gradients (they are then constants; x's gradient is unchanged).
#pragma once
#include "autograd/variable.h"
#include "qat/observer.h"
#include "qat/quant_range.h"

namespace qnn {

struct FakeQuantizerConfig {
  int bits = 8;
  bool is_signed = false;
  bool symmetric = false;
  Granularity granularity = Granularity::PerTensor;
  int64_t channels = 1;  // per channel: the size of axis 0 (fixed, so learned qparams can be parameters)
  ObserverKind observer = ObserverKind::MovingAverageMinMax;
  float averaging_constant = 0.01f;
  bool learnable = false;         // LSQ: learn the scale (no observer)
  bool learn_zero_point = false;  // LSQ+: learn the zero point too (learnable only)
};

class FakeQuantizer {
 public:
  explicit FakeQuantizer(FakeQuantizerConfig config);

  // Observer mode: observes x (unless frozen), then fake-quantizes it with the observer's qparams.
  // Learnable mode: on the first call (unless initialised) sets the scale from x by LSQ's rule,
  // then fake-quantizes with gradients to x, the scale and (learn_zero_point) the zero point,
  // scaled by lsq_grad_factor(x.numel(), qmax).
  Variable operator()(const Variable& x);

  void freeze(bool frozen = true);
  bool frozen() const { return frozen_; }
  const FakeQuantizerConfig& config() const { return config_; }
  QuantRange range() const { return range_; }

  // The qparams the next call would use: the observer's (it must have observed), or the learned
  // values (detached copies).
  QParams qparams() const;

  const Observer& observer() const { return observer_; }
  Observer& observer() { return observer_; }
  // Learnable mode: [channels] Variables; assign a module's registered parameter to share it.
  Variable& scale() { return scale_; }
  Variable& zero_point() { return zero_point_; }
  // Learnable mode: whether the scale has been set (by the first call or by mark_initialized()
  // after loading it from a checkpoint).
  bool initialized() const { return initialized_; }
  void mark_initialized() { initialized_ = true; }

 private:
  FakeQuantizerConfig config_;
  QuantRange range_;
  Observer observer_;
  Variable scale_, zero_point_;
  bool initialized_ = false;
  bool frozen_ = false;
};

}  // namespace qnn
