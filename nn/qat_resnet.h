// The CIFAR ResNet of nn/resnet.h (He et al. 2016) for quantization-aware training: every
// convolution and the classifier are QatConv2d / QatLinear (nn/qat_layers.h), and every ReLU
// output that a convolution reads is fake-quantized, as in PyTorch's QAT ResNets:
//
//   stem:   a0 = Q_a(relu(bn1(conv1_q(x))))                     conv1 at first_last_bits
//   block:  h = Q_a(relu(bn1(conv1_q(a))));  out = Q_a(relu(bn2(conv2_q(h)) + shortcut(a)))
//   head:   logits = fc_q(Q_f(avgpool(a_last)))                  fc and Q_f at first_last_bits
//
// conv_q / fc_q use weight_bits (first and last layer: first_last_bits), Q_a act_bits. The image
// itself is not fake-quantized (it is 8-bit data already). DoReFa, PACT and WRPN rescale the
// weights they quantize to [-1, 1], which the classifier (no batch norm after it) cannot absorb,
// and their papers keep the first and last layers in full precision; so with those methods the
// first conv and the classifier take the linear method's observed per-channel weight quantizer
// (first_last_weight_method). The parameter names of the float
// model are kept (conv1.weight, layer1.0.bn2.running_var, fc.bias, ...), so a float checkpoint
// loads into the QAT model; the quantizers' state lives under names ending in "_fake_quant"
// (layer1.0.conv1.weight_fake_quant.scale, layer1.0.act1_fake_quant.min_val, ...).
// WRPN widens every stage by QatSpec::width (16w, 32w, 64w channels). With QatSpec::fold_bn every
// convolution and its batch norm train folded (nn/qat_conv_bn.h): the weight quantizers then see
// w * gamma / sigma; the names stay the same.
#pragma once
#include <memory>
#include <vector>

#include "nn/qat_layers.h"
#include "nn/resnet.h"
#include "tensor/safetensors.h"

namespace qnn {

struct QatSpec {
  QatMethod method = QatMethod::Lsq;
  int weight_bits = 4, act_bits = 4;
  int first_last_bits = 8;
  int64_t width = 1;  // channel multiplier (WRPN); 1 keeps the float model's shapes
  // Every convolution followed by a batch norm folds it in (nn/qat_conv_bn.h); linear and lsq only.
  bool fold_bn = false;
  // linear only: activations on a zero-centred grid (QatQuantizer's symmetric option).
  bool symmetric_activations = false;
  std::string describe() const;  // "lsq W4A4", "wrpn W2A2 x2" with a width, "lsq W4A4 folded-bn", "... sym-act"
};

class QatBasicBlock : public Module {
 public:
  QatBasicBlock(int64_t in_channels, int64_t out_channels, int stride, Shortcut shortcut, const QatSpec& spec,
                std::vector<QatQuantizer*>& quantizers);
  Variable forward(const Variable& x) override;

 private:
  std::shared_ptr<QatConv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<QatConv2d> projection_conv_;
  std::shared_ptr<BatchNorm2d> projection_bn_;
  std::shared_ptr<QatQuantizer> act1_, act2_;
  int64_t out_channels_;
  int stride_;
  bool pad_shortcut_ = false;
};

class QatCifarResNet : public Module {
 public:
  QatCifarResNet(int depth, QatSpec spec, int64_t num_classes = 10, Shortcut shortcut = Shortcut::A);
  Variable forward(const Variable& x) override;
  const QatSpec& spec() const { return spec_; }
  // Every quantizer, in forward order.
  const std::vector<QatQuantizer*>& quantizers() const { return quantizers_; }
  // After loading a state: each quantizer takes up its loaded range or step.
  void after_load();
  void freeze_observers(bool frozen = true);
  // Every batch norm normalises with its running statistics and stops updating them.
  void freeze_batch_norm(bool frozen = true);

 private:
  QatSpec spec_;
  std::vector<QatQuantizer*> quantizers_;
  std::shared_ptr<QatConv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<QatQuantizer> act1_, fc_input_;
  std::shared_ptr<Sequential> layers_[3];
  std::shared_ptr<QatLinear> fc_;
};

// The weight method of the first conv and the classifier: linear and lsq their own, else linear.
QatMethod first_last_weight_method(QatMethod method);

// Whether a state_dict name is QAT state (a component ending in "_fake_quant").
bool is_qat_state_name(const std::string& name);

// Loads a model's weights from a float or QAT state: every tensor of `model` that is not QAT
// state must be in the file with its shape; QAT state present in the file is loaded too (then
// call after_load()), absent QAT state is left as built. Tensors of the file that belong to no
// model tensor are an error unless they are QAT state or start with one of `ignored_prefixes`
// (an optimizer's or gradient quantizer's state). Returns how many tensors were loaded.
int64_t load_model_weights(Module& model, const SafetensorsFile& file,
                           const std::vector<std::string>& ignored_prefixes = {});

// A QAT version of a float CIFAR ResNet: same depth, shortcut and (width 1) weights and
// batch-norm statistics; the quantizers start fresh (observers empty, steps set on first use).
std::unique_ptr<QatCifarResNet> make_qat_resnet(CifarResNet& model, QatSpec spec);

}  // namespace qnn
