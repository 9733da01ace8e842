// The QAT CIFAR ResNet and weight loading (see nn/qat_resnet.h).
#include "nn/qat_resnet.h"

#include <map>

#include "nn/state_dict.h"

namespace qnn {

namespace {

std::shared_ptr<QatQuantizer> activation_quantizer(const QatSpec& spec, int bits,
                                                   std::vector<QatQuantizer*>& quantizers) {
  auto q = std::make_shared<QatQuantizer>(spec.method, bits, QatQuantizer::Role::Activation, 1,
                                         spec.symmetric_activations);
  quantizers.push_back(q.get());
  return q;
}

std::shared_ptr<QatConv2d> qat_conv(int64_t in, int64_t out, int kernel, int stride, int padding, int bits,
                                    QatMethod method, std::vector<QatQuantizer*>& quantizers) {
  auto conv = std::make_shared<QatConv2d>(in, out, kernel, stride, padding, method, bits);
  quantizers.push_back(conv->weight_fake_quant.get());
  return conv;
}

// conv, then bn: folded into one (nn/qat_conv_bn.h) when the spec asks for it.
void maybe_fold(const QatSpec& spec, QatConv2d& conv, BatchNorm2d& bn) {
  if (spec.fold_bn) conv.fold_batch_norm(&bn);
}

Variable conv_bn(QatConv2d& conv, BatchNorm2d& bn, const Variable& x) {
  return conv.folded_batch_norm() ? conv.forward(x) : bn.forward(conv.forward(x));
}

// relu(conv_bn(x)), or relu(conv_bn(x) + residual): batch norm and ReLU as one fused op
// (BatchNorm2d::forward_relu) when the batch norm is not folded.
Variable conv_bn_relu(QatConv2d& conv, BatchNorm2d& bn, const Variable& x,
                      const Variable& residual = Variable()) {
  if (!conv.folded_batch_norm()) return bn.forward_relu(conv.forward(x), residual);
  const Variable h = conv.forward(x);
  return residual.defined() ? add_relu(h, residual) : relu(h);
}

}  // namespace

QatMethod first_last_weight_method(QatMethod method) {
  return method == QatMethod::Linear || method == QatMethod::Lsq ? method : QatMethod::Linear;
}

std::string QatSpec::describe() const {
  std::string s = std::string(qat_method_name(method)) + " W" + std::to_string(weight_bits) + "A" +
                  std::to_string(act_bits);
  if (first_last_bits != 8) s += " FL" + std::to_string(first_last_bits);
  if (width != 1) s += " x" + std::to_string(width);
  if (fold_bn) s += " folded-bn";
  if (symmetric_activations) s += " sym-act";
  return s;
}

QatBasicBlock::QatBasicBlock(int64_t in_channels, int64_t out_channels, int stride, Shortcut shortcut,
                             const QatSpec& spec, std::vector<QatQuantizer*>& quantizers)
    : out_channels_(out_channels), stride_(stride) {
  conv1_ = register_module("conv1", qat_conv(in_channels, out_channels, 3, stride, 1, spec.weight_bits, spec.method, quantizers));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out_channels));
  maybe_fold(spec, *conv1_, *bn1_);
  act1_ = register_module("act1_fake_quant", activation_quantizer(spec, spec.act_bits, quantizers));
  conv2_ = register_module("conv2", qat_conv(out_channels, out_channels, 3, 1, 1, spec.weight_bits, spec.method, quantizers));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels));
  maybe_fold(spec, *conv2_, *bn2_);
  if (stride != 1 || in_channels != out_channels) {
    if (shortcut == Shortcut::A) {
      pad_shortcut_ = true;
    } else {
      auto projection = register_module("shortcut", std::make_shared<Sequential>());
      projection_conv_ = projection->add(qat_conv(in_channels, out_channels, 1, stride, 0, spec.weight_bits, spec.method, quantizers));
      projection_bn_ = projection->add(std::make_shared<BatchNorm2d>(out_channels));
      maybe_fold(spec, *projection_conv_, *projection_bn_);
    }
  }
  act2_ = register_module("act2_fake_quant", activation_quantizer(spec, spec.act_bits, quantizers));
}

Variable QatBasicBlock::forward(const Variable& x) {
  Variable h = act1_->forward(conv_bn_relu(*conv1_, *bn1_, x));
  Variable identity = x;
  if (pad_shortcut_) identity = shortcut_pad(x, out_channels_, stride_);
  if (projection_conv_) identity = conv_bn(*projection_conv_, *projection_bn_, x);
  return act2_->forward(conv_bn_relu(*conv2_, *bn2_, h, identity));
}

QatCifarResNet::QatCifarResNet(int depth, QatSpec spec, int64_t num_classes, Shortcut shortcut) : spec_(spec) {
  QNN_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "depth must be 6n+2 (20, 32, 44, 56, 110), got ", depth);
  QNN_CHECK(spec.method != QatMethod::None, "a QAT ResNet needs a method other than 'none'");
  for (int bits : {spec.weight_bits, spec.act_bits, spec.first_last_bits})
    QNN_CHECK(bits >= 2 && bits <= 8, "QAT bit widths must be 2 to 8, found ", bits);
  QNN_CHECK(spec.width >= 1 && spec.width <= 16, "the width multiplier must be 1 to 16, found ", spec.width);
  QNN_CHECK(!spec.fold_bn || spec.method == QatMethod::Linear || spec.method == QatMethod::Lsq,
            "batch-norm folding is for the linear and lsq methods (PyTorch's ConvBn2d); ", qat_method_name(spec.method),
            " normalises its weights itself");
  QNN_CHECK(!spec.symmetric_activations || spec.method == QatMethod::Linear,
            "symmetric activations are an option of the linear method");
  const int blocks = (depth - 2) / 6;
  const int64_t base = 16 * spec.width;
  conv1_ = register_module("conv1", qat_conv(3, base, 3, 1, 1, spec.first_last_bits, first_last_weight_method(spec.method),
                                             quantizers_));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(base));
  maybe_fold(spec, *conv1_, *bn1_);
  act1_ = register_module("act1_fake_quant", activation_quantizer(spec, spec.act_bits, quantizers_));
  int64_t in = base;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t width = base << stage;
    layers_[stage] = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks; ++b) {
      layers_[stage]->add(std::make_shared<QatBasicBlock>(in, width, (stage > 0 && b == 0) ? 2 : 1, shortcut, spec,
                                                          quantizers_));
      in = width;
    }
  }
  fc_input_ = register_module("fc_input_fake_quant", activation_quantizer(spec, spec.first_last_bits, quantizers_));
  fc_ = register_module("fc", std::make_shared<QatLinear>(in, num_classes, first_last_weight_method(spec.method),
                                                          spec.first_last_bits));
  quantizers_.push_back(fc_->weight_fake_quant.get());
}

Variable QatCifarResNet::forward(const Variable& x) {
  QNN_CHECK(x.dim() == 4 && x.size(1) == 3, "expects images [N, 3, H, W], got ", shape_str(x.shape()));
  Variable h = act1_->forward(conv_bn_relu(*conv1_, *bn1_, image_input(x)));
  for (auto& stage : layers_) h = stage->forward(h);
  return fc_->forward(fc_input_->forward(global_avg_pool(h)));
}

void QatCifarResNet::after_load() {
  for (QatQuantizer* q : quantizers_) q->after_load();
}

void QatCifarResNet::freeze_observers(bool frozen) {
  for (QatQuantizer* q : quantizers_) q->freeze_observer(frozen);
}

void QatCifarResNet::freeze_batch_norm(bool frozen) {
  std::vector<Module*> pending = {this};
  while (!pending.empty()) {
    Module* m = pending.back();
    pending.pop_back();
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bn->frozen = frozen;
    for (auto& [name, child] : m->named_children()) pending.push_back(child.get());
  }
}

bool is_qat_state_name(const std::string& name) {
  const std::string suffix = "_fake_quant.";
  return name.find(suffix) != std::string::npos;
}

int64_t load_model_weights(Module& model, const SafetensorsFile& file, const std::vector<std::string>& ignored_prefixes) {
  std::map<std::string, Tensor*> targets;
  std::vector<std::pair<std::string, Variable>> params = model.named_parameters();
  for (auto& [name, v] : params) targets[name] = &v.node().value;
  for (auto& [name, t] : model.named_buffers()) targets[name] = t;
  for (const NamedTensor& t : file.tensors) {
    if (targets.count(t.name) || is_qat_state_name(t.name)) continue;
    bool ignored = false;
    for (const std::string& p : ignored_prefixes) ignored = ignored || t.name.rfind(p, 0) == 0;
    QNN_CHECK(ignored, file.path, ": tensor '", t.name, "' is not part of this model (was it written for another "
              "--arch, --shortcut or --wrpn-width?)");
  }
  int64_t loaded = 0;
  for (auto& [name, target] : targets) {
    if (!file.has(name)) {
      QNN_CHECK(is_qat_state_name(name), file.path, ": the model's tensor '", name, "' is missing");
      continue;
    }
    const Tensor& source = file.get(name);
    QNN_CHECK(source.shape() == target->shape(), file.path, ": tensor '", name, "' has shape ",
              shape_str(source.shape()), ", the model expects ", shape_str(target->shape()));
    target->copy_from(source);
    ++loaded;
  }
  return loaded;
}

std::unique_ptr<QatCifarResNet> make_qat_resnet(CifarResNet& model, QatSpec spec) {
  QNN_CHECK(spec.width == 1, "a widened (WRPN width ", spec.width, ") network cannot take the float model's weights");
  bool projection = false;
  int64_t classes = 0;
  for (auto& [name, v] : model.named_parameters()) {
    projection = projection || name.find(".shortcut.") != std::string::npos;
    if (name == "fc.weight") classes = v.size(0);
  }
  auto qat = std::make_unique<QatCifarResNet>(model.depth(), spec, classes, projection ? Shortcut::B : Shortcut::A);
  qat->to(model.device());
  const std::vector<NamedTensor> state = state_dict(model);
  SafetensorsFile file;
  file.path = "the float model";
  file.tensors = state;
  load_model_weights(*qat, file);
  return qat;
}

}  // namespace qnn
