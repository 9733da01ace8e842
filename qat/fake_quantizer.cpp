// FakeQuantizer (see qat/fake_quantizer.h): the observer or the learned qparams, around the
// differentiable fake quantization of qat/functions.h.
#include "qat/fake_quantizer.h"

#include "qat/functions.h"
#include "qat/lsq.h"

namespace qnn {

namespace {

ObserverConfig observer_config(const FakeQuantizerConfig& c) {
  ObserverConfig o;
  o.kind = c.observer;
  o.range = quant_range(c.bits, c.is_signed);
  o.symmetric = c.symmetric;
  o.granularity = c.granularity;
  o.averaging_constant = c.averaging_constant;
  return o;
}

}  // namespace

FakeQuantizer::FakeQuantizer(FakeQuantizerConfig config)
    : config_(config), range_(quant_range(config.bits, config.is_signed)), observer_(observer_config(config)) {
  QNN_CHECK(config_.channels >= 1, "channels must be at least 1, found ", config_.channels);
  QNN_CHECK(config_.granularity == Granularity::PerChannel || config_.channels == 1,
            "a per-tensor quantizer has one channel, found channels = ", config_.channels);
  QNN_CHECK(config_.learnable || !config_.learn_zero_point,
            "learn_zero_point needs learnable = true (an observer's zero point is not learned)");
  if (config_.learnable) {
    const int64_t c = config_.channels;
    scale_ = Variable(Tensor::full({c}, 1.0f), true);
    // Symmetric ranges keep their zero point fixed where the observers put it; affine ones start at 0.
    const float zp = config_.symmetric && !config_.is_signed ? float((range_.qmin + range_.qmax) / 2) : 0.0f;
    zero_point_ = Variable(Tensor::full({c}, zp), config_.learn_zero_point);
  }
}

Variable FakeQuantizer::operator()(const Variable& x) {
  QNN_CHECK(x.defined(), "the input is an undefined Variable");
  if (config_.granularity == Granularity::PerChannel)
    QNN_CHECK(x.dim() >= 1 && x.size(0) == config_.channels, "a per-channel quantizer of ", config_.channels,
              " channels cannot quantize ", shape_str(x.shape()), " (axis 0 must have ", config_.channels, ")");
  if (!config_.learnable) {
    if (!frozen_) observer_.observe(x.value());
    const QParams q = observer_.qparams();
    return fake_quantize(x, q.scale, q.zero_point, range_, config_.granularity);
  }
  QNN_CHECK(scale_.value().device() == x.value().device(), "the learned scale is on ",
            device_name(scale_.value().device()), "; the input on ", device_name(x.value().device()));
  if (!initialized_) {
    scale_.value().copy_from(lsq_initial_scale(x.value(), range_, config_.granularity));
    initialized_ = true;
  }
  const float g = lsq_grad_factor(x.numel(), range_.qmax);
  if (frozen_)
    return fake_quantize_learnable(x, Variable(scale_.value()), Variable(zero_point_.value()), range_,
                                   config_.granularity, g);
  return fake_quantize_learnable(x, scale_, zero_point_, range_, config_.granularity, g);
}

void FakeQuantizer::freeze(bool frozen) {
  frozen_ = frozen;
  observer_.freeze(frozen);
}

QParams FakeQuantizer::qparams() const {
  if (!config_.learnable) return observer_.qparams();
  QNN_CHECK(initialized_, "the learned scale is not initialised yet: call the quantizer on a tensor first");
  return {scale_.value().clone(), zero_point_.value().clone()};
}

}  // namespace qnn
