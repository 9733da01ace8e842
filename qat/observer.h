// Range observers: they watch the tensors that flow through a quantized layer, keep a running
// minimum and maximum, and turn it into the (scale, zero point) of affine fake quantization. They
// are PyTorch's observers (torch.ao.quantization, 1.13), exactly:
//   ObserverKind::MinMax               MinMaxObserver / PerChannelMinMaxObserver(ch_axis=0)
//   ObserverKind::MovingAverageMinMax  MovingAverageMinMaxObserver / MovingAveragePerChannel-
//                                      MinMaxObserver(ch_axis=0), averaging constant 0.01: the
//                                      first batch sets the range, later ones move it by 1%
//                                      of the difference (an exponential moving average, as in
//                                      Jacob et al. CVPR 2018's EMA of activation ranges)
// with qparams as their calculate_qparams computes them (formulas in qat/observer_math.h):
// symmetric or affine, over any 2- to 8-bit range (signed or unsigned, quant_range()).
//
// Differences from PyTorch, both deliberate:
//   - asking for qparams before anything was observed is an error (PyTorch warns and returns
//     scale 1, zero point 0);
//   - an unsigned symmetric range takes zero point floor((qmin + qmax) / 2) at every bit width,
//     which is PyTorch's rule when quant_min/quant_max are given (PyTorch's default 8-bit quint8
//     observer, built without them, uses 128 rather than 127).
// A frozen observer ignores observe(): its range, and so its qparams, stay as they are (the
// "freeze observer" phase of quantization-aware training, PyTorch's disable_observer).
//
// The running range lives on the device of the observed tensors; an observer on the GPU never
// copies a value to the host (qparams() returns device tensors that the fake quantization
// kernels read there).
#pragma once
#include <limits>

#include "qat/observer_kernels.h"
#include "qat/quant_range.h"

namespace qnn {

enum class ObserverKind { MinMax, MovingAverageMinMax };

struct ObserverConfig {
  ObserverKind kind = ObserverKind::MinMax;
  QuantRange range{0, 255};
  bool symmetric = false;
  Granularity granularity = Granularity::PerTensor;
  float averaging_constant = 0.01f;                      // moving average only, in (0, 1]
  float eps = std::numeric_limits<float>::epsilon();     // the smallest scale, 2^-23
};

class Observer {
 public:
  explicit Observer(ObserverConfig config);  // throws on a bad range, constant or eps

  // Records x's range, unless frozen. Per channel, later tensors must have the first one's
  // x.size(0); every tensor must be on the first one's device.
  void observe(const Tensor& x);
  // The scale and zero point of the running range, [1] or [channels], on its device.
  QParams qparams() const;

  void freeze(bool frozen = true) { frozen_ = frozen; }
  bool frozen() const { return frozen_; }
  bool has_observed() const { return min_.defined(); }
  const Tensor& min_val() const { return min_; }  // undefined until the first observe()
  const Tensor& max_val() const { return max_; }
  // Restores a running range (from a checkpoint): [channels] tensors on one device, min <= max.
  void set_range(const Tensor& min_val, const Tensor& max_val);
  const ObserverConfig& config() const { return config_; }

 private:
  ObserverConfig config_;
  Tensor min_, max_;
  bool frozen_ = false;
};

const char* observer_kind_name(ObserverKind kind);

}  // namespace qnn
