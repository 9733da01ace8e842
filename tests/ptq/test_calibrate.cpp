// Post-training calibration of a QAT ResNet (ptq/calibrate.h) on a random ResNet-8 with random
// batch-norm statistics: batch-norm folding leaves the float outputs as they were; calibration
// sets every range; bias correction removes each convolution's mean output shift (measured on
// the inputs the quantized model gives it) and leaves a clear shift when off; bit allocation
// keeps each channel on its own grid within the budget; the export loads back and evaluates
// as the calibrated model does.
#include <doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <algorithm>

#include "nn/init.h"
#include "nn/layers.h"
#include "nn/qat_export.h"
#include "ptq/calibrate.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

Module* find_module(Module& root, const std::string& path) {
  Module* m = &root;
  size_t start = 0;
  while (m && start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Module* next = nullptr;
    for (auto& [name, child] : m->named_children())
      if (name == part) next = child.get();
    m = next;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return m;
}

const char* kConvs[] = {"conv1", "layer1.0.conv1", "layer1.0.conv2", "layer2.0.conv1", "layer2.0.conv2",
                        "layer3.0.conv1", "layer3.0.conv2"};

std::string bn_of(const std::string& conv) { return conv.substr(0, conv.size() - 5) + "bn" + conv.back(); }

// A ResNet-8 with seeded weights and batch-norm statistics far from the identity.
std::unique_ptr<QatCifarResNet> random_net(QatSpec spec) {
  manual_seed(21);
  auto net = std::make_unique<QatCifarResNet>(8, spec, 10, Shortcut::A);
  uint64_t stream = 0;
  for (auto& [name, t] : net->named_buffers()) {
    if (name.find("running_mean") != std::string::npos) t->copy_from(Tensor::normal(t->shape(), 0.0f, 0.3f, 5, ++stream));
    if (name.find("running_var") != std::string::npos) t->copy_from(Tensor::uniform(t->shape(), 0.5f, 2.0f, 5, ++stream));
  }
  for (auto& [name, v] : net->named_parameters()) {
    if (name.find("bn") != std::string::npos && name.find(".weight") != std::string::npos)
      v.value().copy_from(Tensor::uniform(v.shape(), 0.5f, 1.5f, 6, ++stream));
    if (name.find("bn") != std::string::npos && name.find(".bias") != std::string::npos)
      v.value().copy_from(Tensor::normal(v.shape(), 0.1f, 0.2f, 6, ++stream));
  }
  net->eval();
  return net;
}

QatSpec linear_spec(int bits, bool fold) {
  QatSpec spec;
  spec.method = QatMethod::Linear;
  spec.weight_bits = spec.act_bits = bits;
  spec.fold_bn = fold;
  return spec;
}

// Per output channel, the mean over the calibration images of the quantized layer's batch-norm
// output minus the float layer's, both fed the input the quantized model gives the layer.
std::vector<double> mean_shift(QatCifarResNet& quantized, QatCifarResNet& reference, const std::string& conv_name,
                               const Tensor& images) {
  auto* conv = dynamic_cast<QatConv2d*>(find_module(quantized, conv_name));
  auto* bn = dynamic_cast<BatchNorm2d*>(find_module(quantized, bn_of(conv_name)));
  auto* ref_conv = dynamic_cast<QatConv2d*>(find_module(reference, conv_name));
  auto* ref_bn = dynamic_cast<BatchNorm2d*>(find_module(reference, bn_of(conv_name)));
  REQUIRE((conv && bn && ref_conv && ref_bn));
  Variable input;
  conv->input_hook = [&](const Variable& x) { input = x; };
  NoGradGuard no_grad;
  quantized(Variable(images));
  conv->input_hook = nullptr;
  // The quantized layer as the model runs it (folded or not), and the float layer.
  const Variable q = conv->folded_batch_norm() ? conv->forward(input) : bn->forward(conv->forward(input));
  ref_conv->weight_fake_quant->set_fake_quant_enabled(false);
  const Variable f = ref_bn->forward(conv2d(input, ref_conv->weight, Variable(), ref_conv->params));
  const std::vector<float> a = q.value().to_vector(), b = f.value().to_vector();
  const int64_t n = q.size(0), c = q.size(1), hw = q.size(2) * q.size(3);
  std::vector<double> shift(size_t(c), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < hw; ++p) shift[size_t(k)] += a[size_t((i * c + k) * hw + p)] - b[size_t((i * c + k) * hw + p)];
  for (double& s : shift) s /= double(n * hw);
  return shift;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace

TEST_CASE("ptq calibrate: batch-norm folding leaves the float model's outputs as they were") {
  const Variable x(Tensor::normal({4, 3, 8, 8}, 0, 1, 9));
  auto plain = random_net(linear_spec(8, false)), folded = random_net(linear_spec(8, true));
  for (QatQuantizer* q : plain->quantizers()) q->set_fake_quant_enabled(false);
  for (QatQuantizer* q : folded->quantizers()) q->set_fake_quant_enabled(false);
  NoGradGuard no_grad;
  const std::vector<float> a = (*plain)(x).value().to_vector(), b = (*folded)(x).value().to_vector();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(b[i]).epsilon(1e-4).scale(1e-4));
}

TEST_CASE("ptq calibrate: bias correction removes every convolution's mean output shift") {
  const Tensor images = Tensor::normal({32, 3, 8, 8}, 0, 1, 10);
  for (bool fold : {false, true}) {
    CAPTURE(fold);
    PtqOptions options;
    options.range.method = RangeMethod::AciqLaplace;
    options.per_channel = true;
    options.batch_size = 8;
    auto reference = random_net(linear_spec(2, fold));
    auto uncorrected = random_net(linear_spec(2, fold));
    calibrate_ptq(*uncorrected, images, options);
    options.bias_correction = true;
    auto corrected = random_net(linear_spec(2, fold));
    calibrate_ptq(*corrected, images, options);
    for (const std::string conv : kConvs) {
      CAPTURE(conv);
      const double before = max_abs(mean_shift(*uncorrected, *reference, conv, images));
      const double after = max_abs(mean_shift(*corrected, *reference, conv, images));
      // 2-bit weights shift the mean output clearly (the first layer keeps 8 bits) ...
      CHECK(before > (conv == "conv1" ? 1e-5 : 1e-2));
      CHECK(after < 2e-5);   // ... and bias correction takes the shift out, up to float rounding
    }
  }
}

TEST_CASE("ptq calibrate: every range is set; the export loads back and evaluates the same") {
  const Tensor images = Tensor::normal({16, 3, 8, 8}, 0, 1, 11);
  const Variable x(Tensor::normal({4, 3, 8, 8}, 0, 1, 12));
  for (RangeMethod method : {RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse, RangeMethod::AciqGauss,
                             RangeMethod::Kl}) {
    CAPTURE(range_method_name(method));
    PtqOptions options;
    options.range.method = method;
    options.bias_correction = true;
    auto net = random_net(linear_spec(4, true));
    calibrate_ptq(*net, images, options);
    for (QatQuantizer* q : net->quantizers()) CHECK(q->fake_quantizer()->observer().has_observed());
    NoGradGuard no_grad;
    const std::vector<float> before = (*net)(x).value().to_vector();
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("qnn_ptq_" + std::to_string(::getpid()) + range_method_name(method) + ".safetensors")).string();
    export_qat_model(*net, path, {{"arch", "resnet8"}});
    auto loaded = random_net(linear_spec(4, true));
    load_qat_export(*loaded, load_safetensors(path));
    loaded->eval();
    const std::vector<float> after = (*loaded)(x).value().to_vector();
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < before.size(); ++i) CHECK(after[i] == doctest::Approx(before[i]).epsilon(1e-5).scale(1e-5));
    std::remove(path.c_str());
  }
}

TEST_CASE("ptq calibrate: bit allocation puts each channel on its own grid within the budget") {
  const Tensor images = Tensor::normal({16, 3, 8, 8}, 0, 1, 13);
  PtqOptions options;
  options.range.method = RangeMethod::MinMax;
  options.bit_allocation = true;
  options.budget_bits = 3;
  auto net = random_net(linear_spec(8, false));
  const PtqResult result = calibrate_ptq(*net, images, options);
  CHECK(std::fabs(result.inner_weight_bits - 3.0) <= 0.1);
  const std::string key = "qweight.layer2.0.conv1.weight.channel_bits";
  REQUIRE(result.metadata.count(key));
  CHECK(!result.metadata.count("qweight.conv1.weight.channel_bits"));  // the first layer keeps 8 bits
  auto* conv = dynamic_cast<QatConv2d*>(find_module(*net, "layer2.0.conv1"));
  REQUIRE(conv);
  std::vector<int> bits;
  {
    std::string text = result.metadata.at(key);
    size_t start = 0;
    while (start <= text.size()) {
      const size_t comma = text.find(',', start);
      bits.push_back(std::stoi(text.substr(start, comma - start)));
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  REQUIRE(int64_t(bits.size()) == conv->weight.size(0));
  // The fake-quantized weight of channel c takes at most 2^M_c distinct values.
  NoGradGuard no_grad;
  const std::vector<float> wq = conv->weight_fake_quant->forward(conv->weight).value().to_vector();
  const int64_t per = conv->weight.numel() / conv->weight.size(0);
  for (size_t c = 0; c < bits.size(); ++c) {
    std::vector<float> row(wq.begin() + int64_t(c) * per, wq.begin() + int64_t(c + 1) * per);
    std::sort(row.begin(), row.end());
    const int64_t distinct = std::unique(row.begin(), row.end()) - row.begin();
    CHECK(distinct <= (int64_t(1) << bits[c]));
  }
  PtqOptions bad = options;
  auto four_bit = random_net(linear_spec(4, false));
  CHECK_THROWS_WITH(calibrate_ptq(*four_bit, images, bad), doctest::Contains("8-bit containers"));
}
