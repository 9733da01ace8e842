// Batch-norm folding for QAT (nn/qat_conv_bn.h): against PyTorch 1.13's ConvBn2d
// (tests/fixtures/conv_bn.safetensors, from scripts/make_conv_bn_fixture.py) in training, in
// evaluation and with frozen batch-norm statistics; evaluation being exactly the folded
// convolution; gradients against finite differences; and a folded QAT ResNet training,
// freezing and exporting.
#include <doctest.h>

#include "nn/init.h"
#include "nn/state_dict.h"
#include "tests/autograd/helpers.h"
#include "nn/qat_conv_bn.h"
#include "nn/qat_export.h"
#include "nn/qat_resnet.h"
#include "optim/sgd.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/qat/helpers.h"

using namespace qnn;

namespace {

const SafetensorsFile& fixture() {
  static const SafetensorsFile file = load_safetensors("tests/fixtures/conv_bn.safetensors");
  return file;
}

// The fixture's layer: 3 -> 4 channels, 3x3, padding 1, linear 4-bit weights, its batch norm.
struct FoldedLayer {
  QatConv2d conv{3, 4, 3, 1, 1, QatMethod::Linear, 4};
  BatchNorm2d bn{4};
  FoldedLayer() {
    const SafetensorsFile& f = fixture();
    conv.weight.node().value.copy_from(f.get("weight"));
    bn.weight.node().value.copy_from(f.get("gamma"));
    bn.bias.node().value.copy_from(f.get("beta"));
    bn.running_mean->copy_from(f.get("running_mean"));
    bn.running_var->copy_from(f.get("running_var"));
    conv.fold_batch_norm(&bn);
  }
  // forward and backward with the fixture's x and dy; returns y and dx.
  std::pair<Tensor, Tensor> step() {
    Variable x(fixture().get("x").clone(), true);
    for (Variable* p : {&conv.weight, &bn.weight, &bn.bias}) p->node().grad = Tensor();
    Variable y = conv.forward(x);
    y.backward(fixture().get("dy"));
    return {y.value(), x.grad()};
  }
  void check_against(const std::string& prefix, const std::pair<Tensor, Tensor>& out) {
    const SafetensorsFile& f = fixture();
    CHECK_CLOSE_TENSORS(out.first, f.get(prefix + ".y"), 1e-5, 1e-5, prefix + ".y");
    CHECK_CLOSE_TENSORS(out.second, f.get(prefix + ".dx"), 1e-5, 1e-5, prefix + ".dx");
    CHECK_CLOSE_TENSORS(conv.weight.grad(), f.get(prefix + ".dweight"), 1e-4, 1e-5, prefix + ".dweight");
    CHECK_CLOSE_TENSORS(bn.weight.grad(), f.get(prefix + ".dgamma"), 1e-4, 1e-5, prefix + ".dgamma");
    CHECK_CLOSE_TENSORS(bn.bias.grad(), f.get(prefix + ".dbeta"), 1e-4, 1e-5, prefix + ".dbeta");
    CHECK_CLOSE_TENSORS(*bn.running_mean, f.get(prefix + ".running_mean"), 1e-6, 1e-6, prefix + ".running_mean");
    CHECK_CLOSE_TENSORS(*bn.running_var, f.get(prefix + ".running_var"), 1e-6, 1e-6, prefix + ".running_var");
  }
};

Tensor buffer(Module& m, const std::string& name) {
  for (auto& [n, t] : m.named_buffers())
    if (n == name) return *t;
  FAIL("no buffer " << name);
  return Tensor();
}

}  // namespace

TEST_CASE("folded conv + batch norm equals PyTorch's ConvBn2d: training, evaluation, frozen statistics") {
  FoldedLayer layer;
  layer.check_against("train", layer.step());
  // The observer saw w * gamma / sigma: its per-channel range is PyTorch's bit for bit.
  FakeQuantizer& fq = *layer.conv.weight_fake_quant->fake_quantizer();
  CHECK_EQUAL_TENSORS(fq.observer().min_val(), fixture().get("train.min_val"), "observer min_val");
  CHECK_EQUAL_TENSORS(fq.observer().max_val(), fixture().get("train.max_val"), "observer max_val");

  layer.conv.weight_fake_quant->freeze_observer();  // the fixture disabled PyTorch's observer here
  layer.conv.eval();
  layer.bn.eval();
  {
    NoGradGuard no_grad;
    CHECK_CLOSE_TENSORS(layer.conv.forward(Variable(fixture().get("x"))).value(), fixture().get("eval.y"), 1e-5,
                        1e-5, "eval.y");
  }
  layer.conv.train();
  layer.bn.train();
  layer.bn.frozen = true;
  const float tracked = layer.bn.num_batches_tracked->item();
  layer.check_against("frozen", layer.step());
  CHECK(layer.bn.num_batches_tracked->item() == tracked);
}

TEST_CASE("folded conv + batch norm: evaluation is the folded convolution conv(x, Q(w f)) + beta - f mu") {
  FoldedLayer layer;
  layer.step();  // the observer gets its range; the running statistics move
  layer.conv.eval();
  layer.bn.eval();
  NoGradGuard no_grad;
  const Variable x(fixture().get("x"));
  const Tensor f = fold_factor(layer.bn).value();
  const Variable wq = layer.conv.weight_fake_quant->forward(mul_channels(layer.conv.weight, Variable(f), 0));
  std::vector<float> bias(4);
  for (int c = 0; c < 4; ++c)
    bias[c] = layer.bn.bias.value().data()[c] - f.data()[c] * layer.bn.running_mean->data()[c];
  const Tensor expected = conv2d(x, wq, Variable(Tensor::from_vector(bias, {4})), layer.conv.params).value();
  CHECK_CLOSE_TENSORS(layer.conv.forward(x).value(), expected, 1e-5, 1e-5, "folded evaluation");
}

TEST_CASE("folded conv + batch norm: gradients of x, w, gamma and beta match finite differences") {
  // Rounding has no useful finite differences, so the weight quantizer passes values through
  // (prequantized) and the smooth folded layer is checked; momentum 0 keeps the running
  // statistics, and so f, the same across the evaluations. The PyTorch comparison above covers
  // the quantized layer's gradients.
  FoldedLayer layer;
  layer.conv.weight_fake_quant->set_prequantized(true);
  layer.bn.momentum = 0.0f;
  const Tensor x = Tensor::uniform({2, 3, 5, 5}, -1.0f, 1.0f, 21);
  auto f = [&layer](const std::vector<Variable>& v) {
    layer.conv.weight = v[1];
    layer.bn.weight = v[2];
    layer.bn.bias = v[3];
    return layer.conv.forward(v[0]);
  };
  CHECK_GRADCHECK(f, {x, fixture().get("weight"), fixture().get("gamma"), fixture().get("beta")});
}

TEST_CASE("a folded QAT ResNet trains, freezes its batch norms and exports what it evaluates") {
  Variable x(Tensor::normal({8, 3, 8, 8}, 0, 1, 31));
  std::vector<int32_t> labels;
  for (int i = 0; i < 8; ++i) labels.push_back(i % 10);
  for (QatMethod m : {QatMethod::Linear, QatMethod::Lsq}) {
    CAPTURE(qat_method_name(m));
    QatSpec spec;
    spec.method = m;
    spec.fold_bn = true;
    manual_seed(4);
    QatCifarResNet net(8, spec, 10, Shortcut::B);
    CHECK(spec.describe() == std::string(qat_method_name(m)) + " W4A4 folded-bn");
    SGD sgd(net.flatten(), {0.05f, 0.9f, 0.0f, 0.0f, false});
    for (int step = 0; step < 4; ++step) {
      if (step == 2) net.freeze_batch_norm();
      const std::vector<NamedTensor> before = state_dict(net);
      net.flatten().zero_grad();
      const Variable loss = cross_entropy(net(x), labels);
      CHECK(std::isfinite(loss.value().item()));
      loss.backward();
      sgd.step();
      if (step >= 2)  // frozen: the running statistics stay
        for (const NamedTensor& t : before)
          if (t.name.find("running_") != std::string::npos) CHECK_EQUAL_TENSORS(buffer(net, t.name), t.tensor, t.name);
    }
    net.eval();
    NoGradGuard no_grad;
    const Tensor logits = net(x).value();
    const testing::TempDir dir;
    const std::string path = dir.file(std::string("folded_export_") + qat_method_name(m) + ".safetensors");
    export_qat_model(net, path, {});
    QatCifarResNet loaded(8, spec, 10, Shortcut::B);
    load_qat_export(loaded, load_safetensors(path));
    loaded.eval();
    // The export's weights are Q(w f) / f; the loaded layer multiplies by f again, so the logits
    // agree to float rounding rather than bit for bit.
    CHECK_CLOSE_TENSORS(loaded(x).value(), logits, 1e-4, 1e-4, "exported logits");
  }
  QatSpec dorefa;
  dorefa.method = QatMethod::Dorefa;
  dorefa.fold_bn = true;
  CHECK_THROWS_WITH_AS(QatCifarResNet(8, dorefa), doctest::Contains("folding is for the linear and lsq"), Error);
}
