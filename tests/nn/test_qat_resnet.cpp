// QAT layers and the QAT CIFAR ResNet (nn/qat_layers.h, nn/qat_resnet.h): the forward pass
// against a reference composed by hand (LSQ's initial steps and fake quantization written out
// here), the learned step's gradient against LSQ's formula, gradients reaching every learned
// quantizer value, state_dict round trips that continue training identically, float weights
// loading into the QAT model, and a few training steps of every method at 2, 4 and 8 bits.
#include <doctest.h>

#include <cmath>
#include <map>

#include "nn/init.h"
#include "nn/qat_resnet.h"
#include "nn/state_dict.h"
#include "optim/sgd.h"

using namespace qnn;

namespace {

std::map<std::string, Variable> params_of(Module& m) {
  std::map<std::string, Variable> out;
  for (auto& [name, v] : m.named_parameters()) out[name] = v;
  return out;
}

// LSQ's initial step, 2 mean|v| / sqrt(Q_P), written out.
float lsq_step(const Tensor& v, int64_t q_p) {
  double sum = 0;
  for (float x : v.to_vector()) sum += std::fabs(x);
  return float(2 * (sum / v.numel()) / std::sqrt(double(q_p)));
}

// s * clamp(round(v / s), qmin, qmax), with PyTorch's multiply-by-reciprocal.
Variable quantize_ref(const Variable& v, float s, int64_t qmin, int64_t qmax) {
  std::vector<float> x = v.value().to_vector();
  const float inv = 1.0f / s;
  for (float& e : x) e = s * std::min<float>(std::max<float>(std::nearbyint(e * inv), qmin), qmax);
  return Variable(Tensor::from_vector(x, v.shape()));
}

Variable lsq_weight_ref(const Variable& w, int bits) {
  const int64_t qmax = (1 << (bits - 1)) - 1;
  return quantize_ref(w, lsq_step(w.value(), qmax), -qmax - 1, qmax);
}

Variable lsq_act_ref(const Variable& x, int bits) {
  const int64_t qmax = (1 << bits) - 1;
  return quantize_ref(x, lsq_step(x.value(), qmax), 0, qmax);
}

Variable bn_ref(const Variable& x, std::map<std::string, Variable>& p, const std::string& name) {
  Tensor mean = Tensor::zeros({x.size(1)}), var = Tensor::full({x.size(1)}, 1.0f);
  return batch_norm(x, p[name + ".weight"], p[name + ".bias"], mean, var, true, 0.1f, 1e-5f);
}

Variable block_ref(const Variable& x, std::map<std::string, Variable>& p, const std::string& name, int stride,
                   int64_t out_channels) {
  Variable h = conv2d(x, lsq_weight_ref(p[name + ".conv1.weight"], 4), Variable(), {stride, 1});
  h = lsq_act_ref(relu(bn_ref(h, p, name + ".bn1")), 4);
  h = bn_ref(conv2d(h, lsq_weight_ref(p[name + ".conv2.weight"], 4), Variable(), {1, 1}), p, name + ".bn2");
  Variable identity = stride == 1 ? x : shortcut_pad(x, out_channels, stride);
  return lsq_act_ref(add_relu(h, identity), 4);
}

std::vector<int32_t> labels_for(int64_t n) {
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(int32_t(i % 10));
  return labels;
}

}  // namespace

TEST_CASE("qat resnet: an LSQ W4A4 ResNet-8 computes the hand-composed network") {
  manual_seed(11);
  QatSpec spec;
  spec.method = QatMethod::Lsq;
  QatCifarResNet net(8, spec);
  auto p = params_of(net);
  Variable x(Tensor::normal({4, 3, 12, 12}, 0, 1, 2));
  Variable y = net(x);
  NoGradGuard no_grad;
  Variable h = conv2d(x, lsq_weight_ref(p["conv1.weight"], 8), Variable(), {1, 1});
  h = lsq_act_ref(relu(bn_ref(h, p, "bn1")), 4);
  h = block_ref(h, p, "layer1.0", 1, 16);
  h = block_ref(h, p, "layer2.0", 2, 32);
  h = block_ref(h, p, "layer3.0", 2, 64);
  Variable ref = linear(lsq_act_ref(global_avg_pool(h), 8), lsq_weight_ref(p["fc.weight"], 8), p["fc.bias"]);
  const std::vector<float> a = y.value().to_vector(), b = ref.value().to_vector();
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-4));
  CHECK(p["conv1.weight_fake_quant.scale"].value().item() == doctest::Approx(lsq_step(p["conv1.weight"].value(), 127)).epsilon(1e-6));
  CHECK(net.quantizers().size() == 1 + 1 + 3 * 4 + 2);
}

TEST_CASE("qat layers: an LSQ weight step's gradient is LSQ's formula") {
  manual_seed(5);
  QatLinear fc(6, 3, QatMethod::Lsq, 3);
  Variable x(Tensor::normal({5, 6}, 0, 1, 4));
  Variable r(Tensor::normal({5, 3}, 0, 1, 9));
  Variable loss = sum(mul(fc(x), r));
  loss.backward();
  // dL/ds = g sum_ij dW_ij * (clamp(round(w/s)) - w/s inside the range, qmin or qmax outside),
  // dL/dW_q = r^T x, g = 1/sqrt(N Q_P), Q_P = 3.
  const float s = fc.weight_fake_quant->fake_quantizer()->scale().value().item();
  const std::vector<float> w = fc.weight.value().to_vector(), xs = x.value().to_vector(), rs = r.value().to_vector();
  double expected = 0;
  for (int o = 0; o < 3; ++o)
    for (int i = 0; i < 6; ++i) {
      double dwq = 0;
      for (int n = 0; n < 5; ++n) dwq += rs[n * 3 + o] * xs[n * 6 + i];
      const float q = std::nearbyint(w[o * 6 + i] * (1.0f / s));
      const double ds = q < -4 ? -4.0 : q > 3 ? 3.0 : q - double(w[o * 6 + i]) / s;
      expected += dwq * ds;
    }
  expected /= std::sqrt(18.0 * 3);
  const float got = fc.weight_fake_quant->fake_quantizer()->scale().grad().item();
  CHECK(got == doctest::Approx(expected).epsilon(1e-4));
}

TEST_CASE("qat resnet: gradients reach every learned step and clipping level") {
  for (QatMethod m : {QatMethod::Lsq, QatMethod::Pact}) {
    const std::string method = qat_method_name(m);
    CAPTURE(method);
    manual_seed(2);
    QatSpec spec;
    spec.method = m;
    QatCifarResNet net(8, spec);
    net.flatten();
    // PACT's alpha learns only from activations above it: start below the activations' range.
    for (auto& [name, v] : net.named_parameters())
      if (name.find(".alpha") != std::string::npos) v.value().fill(0.5f);
    Variable x(Tensor::normal({8, 3, 8, 8}, 0, 1, 3));
    cross_entropy(net(x), labels_for(8)).backward();
    int learned = 0;
    for (auto& [name, v] : net.named_parameters()) {
      if (!is_qat_state_name(name)) continue;
      ++learned;
      const float g = v.grad().item();
      CAPTURE(name);
      CHECK(std::isfinite(g));
      CHECK(g != 0.0f);
    }
    CHECK(learned == (m == QatMethod::Lsq ? 16 : 8));  // LSQ: 9 weights + 7 activations; PACT: 7 + 1 alphas
  }
}

TEST_CASE("qat resnet: state_dict round trip continues training identically") {
  for (QatMethod m : {QatMethod::Linear, QatMethod::Lsq, QatMethod::Pact}) {
    const std::string method = qat_method_name(m);
    CAPTURE(method);
    QatSpec spec;
    spec.method = m;
    manual_seed(4);
    QatCifarResNet a(8, spec);
    SGD sgd_a(a.flatten(), {0.05f, 0.0f, 0.0f, 0.0f, false});
    Variable x(Tensor::normal({8, 3, 8, 8}, 0, 1, 6));
    for (int step = 0; step < 2; ++step) {
      a.flatten().zero_grad();
      cross_entropy(a(x), labels_for(8)).backward();
      sgd_a.step();
    }
    SafetensorsFile file;
    file.path = "state";
    for (const NamedTensor& t : state_dict(a)) file.tensors.push_back({t.name, t.tensor.clone(), t.as_int64});
    manual_seed(99);
    QatCifarResNet b(8, spec);
    load_state_dict(b, file);
    b.after_load();
    SGD sgd_b(b.flatten(), {0.05f, 0.0f, 0.0f, 0.0f, false});
    for (auto* pair : {&a, &b}) {
      pair->flatten().zero_grad();
      cross_entropy((*pair)(x), labels_for(8)).backward();
    }
    sgd_a.step();
    sgd_b.step();
    CHECK(a.flatten().values().to_vector() == b.flatten().values().to_vector());
    const auto sa = state_dict(a), sb = state_dict(b);
    for (size_t i = 0; i < sa.size(); ++i) CHECK(sa[i].tensor.to_vector() == sb[i].tensor.to_vector());
    a.eval();
    b.eval();
    CHECK(a(x).value().to_vector() == b(x).value().to_vector());
  }
}

TEST_CASE("qat resnet: a float model's weights load into its QAT version") {
  manual_seed(8);
  CifarResNet fp32(8, 10, Shortcut::B);
  QatSpec spec;
  spec.method = QatMethod::Linear;
  auto qat = make_qat_resnet(fp32, spec);
  auto q = params_of(*qat);
  for (auto& [name, v] : fp32.named_parameters()) {
    CAPTURE(name);
    REQUIRE(q.count(name));
    CHECK(q[name].value().to_vector() == v.value().to_vector());
  }
  // An evaluation before any observation has no range to use.
  qat->eval();
  CHECK_THROWS_WITH_AS((*qat)(Variable(Tensor::zeros({1, 3, 8, 8}))), doctest::Contains("no range yet"), Error);
  // Another architecture's weights are refused by name.
  CifarResNet deeper(14);
  SafetensorsFile file;
  file.path = "deeper.safetensors";
  file.tensors = state_dict(deeper);
  QatCifarResNet shallow(8, spec);
  CHECK_THROWS_WITH_AS(load_model_weights(shallow, file), doctest::Contains("'layer1.1.conv1.weight' is not part"), Error);
  spec.width = 2;
  QatCifarResNet wide(8, spec);
  CifarResNet narrow(8);
  file.tensors = state_dict(narrow);
  CHECK_THROWS_WITH_AS(load_model_weights(wide, file), doctest::Contains("the model expects"), Error);
  CHECK_THROWS_WITH_AS(make_qat_resnet(fp32, spec), doctest::Contains("WRPN width"), Error);
  spec.width = 1;
  spec.act_bits = 9;
  CHECK_THROWS_WITH_AS(QatCifarResNet(8, spec), doctest::Contains("2 to 8, found 9"), Error);
  CHECK_THROWS_WITH_AS(parse_qat_method("lsq+"), doctest::Contains("valid: none, linear"), Error);
}

TEST_CASE("qat resnet: every method at 2, 4 and 8 bits lowers the loss on a small batch") {
  Variable x(Tensor::normal({16, 3, 8, 8}, 0, 1, 21));
  const std::vector<int32_t> labels = labels_for(16);
  for (QatMethod m : {QatMethod::Linear, QatMethod::Lsq, QatMethod::Pact, QatMethod::Dorefa, QatMethod::Wrpn})
    for (int bits : {2, 4, 8}) {
      const std::string method = qat_method_name(m);
    CAPTURE(method);
      CAPTURE(bits);
      manual_seed(7);
      QatSpec spec;
      spec.method = m;
      spec.weight_bits = spec.act_bits = bits;
      spec.width = m == QatMethod::Wrpn ? 2 : 1;
      QatCifarResNet net(8, spec);
      SGD sgd(net.flatten(), {0.05f, 0.9f, 0.0f, 0.0f, false});
      float first = 0, last = 0;
      // 2 bits learn more slowly: 2-bit activations in [0, 1] (DoReFa, WRPN) or [0, alpha] (PACT)
      // take 4 values, and 2-bit WRPN weights are ternary {-1, 0, 1}, so Kaiming-initialised
      // weights (|w| << 0.5) all round to 0 until SGD has grown some of them.
      const int steps = bits == 2 ? 30 : 12;
      for (int step = 0; step < steps; ++step) {
        net.flatten().zero_grad();
        Variable loss = cross_entropy(net(x), labels);
        loss.backward();
        sgd.step();
        (step == 0 ? first : last) = loss.value().item();
      }
      CHECK(std::isfinite(last));
      CHECK(last < 0.8f * first);
    }
}
