// Quantization-aware training layers (see nn/qat_layers.h): each method's quantizer, its state
// as parameters and buffers, and the quantized Conv2d and Linear around it.
#include "nn/qat_layers.h"

#include "nn/init.h"
#include "nn/qat_conv_bn.h"
#include "qat/functions.h"

namespace qnn {

QatMethod parse_qat_method(const std::string& name) {
  for (QatMethod m : {QatMethod::None, QatMethod::Linear, QatMethod::Lsq, QatMethod::Pact, QatMethod::Dorefa,
                      QatMethod::Wrpn})
    if (name == qat_method_name(m)) return m;
  throw Error("[parse_qat_method] unknown QAT method '" + name + "'; valid: none, linear, lsq, pact, dorefa, wrpn");
}

const char* qat_method_name(QatMethod method) {
  switch (method) {
    case QatMethod::None: return "none";
    case QatMethod::Linear: return "linear";
    case QatMethod::Lsq: return "lsq";
    case QatMethod::Pact: return "pact";
    case QatMethod::Dorefa: return "dorefa";
    case QatMethod::Wrpn: return "wrpn";
  }
  return "?";
}

QatQuantizer::QatQuantizer(QatMethod method, int bits, Role role, int64_t channels, bool symmetric)
    : method_(method), bits_(bits), role_(role) {
  QNN_CHECK(method != QatMethod::None, "a quantizer needs a method other than 'none'");
  QNN_CHECK(bits >= 2 && bits <= 8, "bits must be 2 to 8, found ", bits);
  const bool weight = role == Role::Weight;
  QNN_CHECK(!symmetric || (method == QatMethod::Linear && !weight),
            "a symmetric grid is an option of linear activation quantizers (weights are always symmetric)");
  if (method == QatMethod::Linear || method == QatMethod::Lsq) {
    FakeQuantizerConfig c;
    c.bits = bits;
    c.is_signed = weight;
    c.symmetric = weight || symmetric;
    c.observer = ObserverKind::MovingAverageMinMax;
    c.averaging_constant = 0.01f;
    c.learnable = method == QatMethod::Lsq;
    // Observed weights get a range per output channel; LSQ learns one step per tensor, as in the paper.
    c.granularity = weight && method == QatMethod::Linear ? Granularity::PerChannel : Granularity::PerTensor;
    c.channels = c.granularity == Granularity::PerChannel ? channels : 1;
    fq_ = std::make_unique<FakeQuantizer>(c);
    if (c.learnable) {
      fq_->scale() = register_parameter("scale", Tensor::full({c.channels}, 1.0f));
      zero_point_ = &register_buffer("zero_point", fq_->zero_point().value().clone());
    } else {
      // min > max: nothing observed yet (finite, so a checkpoint may hold it).
      min_val_ = &register_buffer("min_val", Tensor::full({c.channels}, 1.0f));
      max_val_ = &register_buffer("max_val", Tensor::full({c.channels}, -1.0f));
    }
    initialized_ = &register_buffer("initialized", Tensor::zeros({1}));
  } else if (method == QatMethod::Pact && !weight) {
    alpha_ = register_parameter("alpha", Tensor::full({1}, kPactInitialAlpha));
  }
}

Variable QatQuantizer::forward(const Variable& x) {
  const bool weight = role_ == Role::Weight;
  if (input_hook) input_hook(x.value());
  if (!fake_quant_enabled_ || (weight && prequantized_)) return x;
  switch (method_) {
    case QatMethod::Linear: {
      fq_->freeze(observer_frozen_ || !training());
      QNN_CHECK(fq_->observer().has_observed() || !fq_->frozen(), "the ", weight ? "weight" : "activation",
                " observer has no range yet: run a training step (or load a checkpoint that has one) first");
      Variable y = (*fq_)(x);
      if (!fq_->frozen()) {
        min_val_->copy_from(fq_->observer().min_val());
        max_val_->copy_from(fq_->observer().max_val());
        initialized_->fill(1.0f);
      }
      return y;
    }
    case QatMethod::Lsq: {
      fq_->zero_point() = Variable(*zero_point_);  // the buffer, on the model's device
      const bool was = fq_->initialized();
      Variable y = (*fq_)(x);
      if (!was) initialized_->fill(1.0f);
      return y;
    }
    case QatMethod::Pact:
      return weight ? dorefa_weight(x, bits_) : pact(x, alpha_, bits_);
    case QatMethod::Dorefa:
      return weight ? dorefa_weight(x, bits_) : dorefa_activation(x, bits_);
    case QatMethod::Wrpn:
      return weight ? wrpn_weight(x, bits_) : wrpn_activation(x, bits_);
    case QatMethod::None: break;
  }
  throw Error("[QatQuantizer] no method");
}

void QatQuantizer::after_load() {
  if (!initialized_ || initialized_->item() < 0.5f) return;
  if (method_ == QatMethod::Linear) fq_->observer().set_range(*min_val_, *max_val_);
  if (method_ == QatMethod::Lsq) fq_->mark_initialized();
}

void QatQuantizer::freeze_observer(bool frozen) { observer_frozen_ = frozen; }

QatConv2d::QatConv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding,
                     QatMethod method, int bits)
    : params{stride, padding} {
  QNN_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0, "channels ", in_channels, " -> ", out_channels,
            ", kernel ", kernel, ": all must be positive");
  weight = register_parameter("weight", kaiming_normal({out_channels, in_channels, kernel, kernel}, true));
  weight_fake_quant = register_module(
      "weight_fake_quant", std::make_shared<QatQuantizer>(method, bits, QatQuantizer::Role::Weight, out_channels));
}

Variable QatConv2d::forward(const Variable& x) {
  if (input_hook) input_hook(x);
  if (folded_bn_) return folded_conv_bn(x, *this, *folded_bn_);
  return conv2d(x, weight_fake_quant->forward(weight), bias, params);
}

QatLinear::QatLinear(int64_t in_features, int64_t out_features, QatMethod method, int bits) {
  weight = register_parameter("weight", uniform_fan_in({out_features, in_features}, in_features));
  bias = register_parameter("bias", uniform_fan_in({out_features}, in_features));
  weight_fake_quant = register_module(
      "weight_fake_quant", std::make_shared<QatQuantizer>(method, bits, QatQuantizer::Role::Weight, out_features));
}

Variable QatLinear::forward(const Variable& x) {
  if (input_hook) input_hook(x);
  return linear(x, weight_fake_quant->forward(weight), bias);
}

}  // namespace qnn
