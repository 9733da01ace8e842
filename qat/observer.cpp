// Range observers (see qat/observer.h): state and checks around the kernels of
// qat/observer_kernels.h.
#include "qat/observer.h"

#include <cmath>

namespace qnn {

const char* observer_kind_name(ObserverKind kind) {
  return kind == ObserverKind::MinMax ? "min-max" : "moving-average min-max";
}

Observer::Observer(ObserverConfig config) : config_(config) {
  check_quant_range("Observer", config_.range);
  QNN_CHECK(config_.averaging_constant > 0.0f && config_.averaging_constant <= 1.0f,
            "the averaging constant must be in (0, 1], found ", config_.averaging_constant);
  QNN_CHECK(std::isfinite(config_.eps) && config_.eps > 0.0f, "eps must be finite and positive, found ",
            config_.eps);
}

void Observer::observe(const Tensor& x) {
  QNN_CHECK(x.defined() && x.numel() > 0, "cannot observe an empty or undefined tensor");
  if (frozen_) return;
  if (min_.defined()) {
    const int64_t channels = qparam_count("Observer::observe", x, config_.granularity);
    QNN_CHECK(channels == min_.numel(), "the observer has seen ", min_.numel(),
              " channel(s) along axis 0; this tensor ", shape_str(x.shape()), " has ", channels);
    QNN_CHECK(x.device() == min_.device(), "the observer's range is on ", device_name(min_.device()),
              "; this tensor is on ", device_name(x.device()));
  }
  const ChannelRange batch = channel_min_max(x, config_.granularity);
  const bool first = !min_.defined();
  if (first) {
    min_ = Tensor(batch.min.shape(), x.device());
    max_ = Tensor(batch.max.shape(), x.device());
  }
  const RangeUpdate update =
      config_.kind == ObserverKind::MinMax ? RangeUpdate::MinMax : RangeUpdate::MovingAverage;
  update_running_range(min_, max_, batch, update, config_.averaging_constant, first);
}

QParams Observer::qparams() const {
  QNN_CHECK(min_.defined(), "the ", observer_kind_name(config_.kind),
            " observer has observed nothing yet: call observe() (or set_range()) first");
  return qparams_from_range(min_, max_, config_.range, config_.symmetric, config_.eps);
}

void Observer::set_range(const Tensor& min_val, const Tensor& max_val) {
  QNN_CHECK(min_val.defined() && max_val.defined() && min_val.dim() == 1 && min_val.shape() == max_val.shape() &&
                min_val.numel() > 0 && min_val.device() == max_val.device(),
            "min and max must be two non-empty [channels] tensors on one device, found ",
            min_val.defined() ? shape_str(min_val.shape()) : "undefined", " and ",
            max_val.defined() ? shape_str(max_val.shape()) : "undefined");
  QNN_CHECK(config_.granularity == Granularity::PerChannel || min_val.numel() == 1,
            "a per-tensor observer keeps one range, found ", min_val.numel());
  if (!min_val.is_cuda())
    for (int64_t c = 0; c < min_val.numel(); ++c)
      QNN_CHECK(std::isfinite(min_val.data()[c]) && std::isfinite(max_val.data()[c]) &&
                    min_val.data()[c] <= max_val.data()[c],
                "channel ", c, " needs a finite range with min <= max, found ", min_val.data()[c], " to ",
                max_val.data()[c]);
  min_ = min_val.clone();
  max_ = max_val.clone();
}

}  // namespace qnn
