// ImageNet ResNets (nn/resnet_imagenet.h) against torchvision 0.14: parameter counts, names and
// shapes, zero_init_residual, the error for an unknown name, and logits equal to torchvision's
// in eval and train mode. The weights are not stored: every parameter and buffer is set by the
// formula of scripts/make_imagenet_resnet_fixture.py, which wrote
// tests/fixtures/imagenet_resnet.safetensors (torchvision's logits on that formula's input).
// Tolerance: 1e-4 of the largest expected magnitude (float32 sums over up to 4,608 terms per
// conv, in a different order from PyTorch's, through 18 to 50 layers; the differences seen are
// below 1e-5). The formula's small last BN weight per block keeps the train-mode forward well
// conditioned (see the script's docstring).
#include <doctest.h>

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>

#include "nn/resnet_imagenet.h"
#include "nn/state_dict.h"
#include "tests/gpu.h"
#include "tests/qat/helpers.h"

using namespace qnn;

namespace {

const SafetensorsFile& fixture() {
  static const SafetensorsFile file = load_safetensors("tests/fixtures/imagenet_resnet.safetensors");
  return file;
}

// float32(offset + (u - 0.5) * scale), u = ((i * 2654435761 + k * 40503) mod 2^32) / 2^32,
// element by element, as the fixture script computes it in float64.
Tensor formula_tensor(const Shape& shape, uint64_t k, double offset, double scale) {
  Tensor t = Tensor::zeros(shape);
  float* data = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint64_t h = (static_cast<uint64_t>(i) * 2654435761ull + k * 40503ull) & 0xFFFFFFFFull;
    const double u = static_cast<double>(h) / 4294967296.0;
    // volatile: the product is rounded on its own, never fused with the addition into an FMA.
    volatile double centred = (u - 0.5) * scale;
    data[i] = static_cast<float>(offset + centred);
  }
  return t;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every parameter, then every buffer, numbered k = 0, 1, ... in that order (the script's order).
void set_formula_weights(ImageNetResNet& model) {
  std::vector<std::pair<std::string, Tensor*>> tensors;
  int64_t fc_in = 0;
  for (auto& [name, v] : model.named_parameters()) {
    tensors.emplace_back(name, &v.value());  // the node's tensor, shared with the model
    if (name == "fc.weight") fc_in = v.size(1);
  }
  for (auto& [name, t] : model.named_buffers()) tensors.emplace_back(name, t);
  const std::string last_bn_weight = model.kind() == ResidualBlockKind::Basic ? ".bn2.weight" : ".bn3.weight";
  REQUIRE(fc_in > 0);
  for (size_t k = 0; k < tensors.size(); ++k) {
    const std::string& name = tensors[k].first;
    Tensor& t = *tensors[k].second;
    double offset = 0, scale = 0;
    if (ends_with(name, "num_batches_tracked")) {
      t.fill(static_cast<float>(k));
      continue;
    } else if (name.rfind("fc.", 0) == 0) {
      scale = 2.0 / std::sqrt(static_cast<double>(fc_in));
    } else if (t.dim() == 4) {
      scale = std::sqrt(24.0 / static_cast<double>(t.size(1) * t.size(2) * t.size(3)));
    } else if (name.rfind("layer", 0) == 0 && ends_with(name, last_bn_weight)) {
      offset = 0.1, scale = 0.1;
    } else if (ends_with(name, ".weight")) {
      offset = 1.0, scale = 0.5;
    } else if (ends_with(name, ".bias") || ends_with(name, ".running_mean")) {
      scale = 0.2;
    } else if (ends_with(name, ".running_var")) {
      offset = 1.0, scale = 1.0;
    } else {
      FAIL("no formula for " << name);
    }
    t.copy_from(formula_tensor(t.shape(), k, offset, scale));
  }
}

// The first 16 elements (flat), as the fixture stores them.
Tensor head(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  v.resize(std::min<size_t>(v.size(), 16));
  return Tensor::from_vector(v, {int64_t(v.size())});
}

Variable formula_input() { return Variable(formula_tensor({2, 3, 64, 64}, 100000, 0.0, 2.0)); }

double max_abs(const Tensor& t) {
  double m = 0;
  for (float v : t.to_vector()) m = std::max(m, std::fabs(double(v)));
  return m;
}

// Within 1e-4 of the largest magnitude of `expected`, element by element.
#define CHECK_MATCHES_TORCHVISION(ours, key)                                               \
  do {                                                                                     \
    const Tensor ours_ = (ours);                                                           \
    const Tensor& expected_ = fixture().get(key);                                          \
    REQUIRE(ours_.shape() == expected_.shape());                                           \
    CHECK_CLOSE_TENSORS(ours_, expected_, 1e-4 * max_abs(expected_), 0.0, key);            \
  } while (0)

bool has_name(Module& model, const std::string& wanted, const Shape& shape) {
  for (auto& [name, v] : model.named_parameters())
    if (name == wanted) return v.shape() == shape;
  for (auto& [name, t] : model.named_buffers())
    if (name == wanted) return t->shape() == shape;
  return false;
}

size_t state_dict_size(Module& model) { return state_dict(model).size(); }

// One freshly initialised model per architecture, shared by the tests that only read it
// (building ResNet-50 draws 25 million Kaiming-normal weights).
ImageNetResNet& fresh(const std::string& arch) {
  static std::map<std::string, std::shared_ptr<ImageNetResNet>> built;
  auto& model = built[arch];
  if (!model) model = make_imagenet_resnet(arch);
  return *model;
}

}  // namespace

TEST_CASE("imagenet resnet: parameter counts and state-dict sizes are torchvision's") {
  ImageNetResNet& r18 = fresh("resnet18");
  ImageNetResNet& r34 = fresh("resnet34");
  ImageNetResNet& r50 = fresh("resnet50");
  CHECK(r18.num_parameters() == 11689512);
  CHECK(r34.num_parameters() == 21797672);
  CHECK(r50.num_parameters() == 25557032);
  // torchvision's state_dict() lengths: parameters plus running_mean, running_var and
  // num_batches_tracked of every BN.
  CHECK(state_dict_size(r18) == 122);
  CHECK(state_dict_size(r34) == 218);
  CHECK(state_dict_size(r50) == 320);
  // 10 classes change only fc: (512 * expansion + 1) * (1000 - 10) parameters fewer.
  CHECK(make_imagenet_resnet("resnet18", 10)->num_parameters() == 11689512 - 513 * 990);
  CHECK(r18.kind() == ResidualBlockKind::Basic);
  CHECK(r50.kind() == ResidualBlockKind::Bottleneck);
  CHECK(r34.blocks().size() == 16);
}

TEST_CASE("imagenet resnet: names and shapes follow torchvision") {
  ImageNetResNet& r18 = fresh("resnet18");
  auto params = r18.named_parameters();
  CHECK(params.front().first == "conv1.weight");
  CHECK(params.back().first == "fc.bias");
  CHECK(has_name(r18, "conv1.weight", {64, 3, 7, 7}));
  CHECK(has_name(r18, "layer1.1.conv2.weight", {64, 64, 3, 3}));
  CHECK(has_name(r18, "layer2.0.downsample.0.weight", {128, 64, 1, 1}));
  CHECK(has_name(r18, "layer4.1.bn2.num_batches_tracked", {}));
  CHECK(has_name(r18, "fc.weight", {1000, 512}));
  CHECK(!has_name(r18, "layer1.0.downsample.0.weight", {64, 64, 1, 1}));  // same shape: no projection
  CHECK(!has_name(r18, "layer1.0.conv3.weight", {64, 64, 1, 1}));

  ImageNetResNet& r50 = fresh("resnet50");
  CHECK(has_name(r50, "layer1.0.conv1.weight", {64, 64, 1, 1}));
  CHECK(has_name(r50, "layer1.0.conv3.weight", {256, 64, 1, 1}));
  CHECK(has_name(r50, "layer1.0.downsample.0.weight", {256, 64, 1, 1}));  // channels change
  CHECK(has_name(r50, "layer1.0.downsample.1.running_var", {256}));
  CHECK(has_name(r50, "layer2.0.conv1.weight", {128, 256, 1, 1}));
  CHECK(has_name(r50, "layer3.5.bn3.weight", {1024}));
  CHECK(has_name(r50, "layer4.2.conv2.weight", {512, 512, 3, 3}));
  CHECK(has_name(r50, "fc.weight", {1000, 2048}));
  CHECK(!has_name(r50, "layer1.1.downsample.0.weight", {256, 256, 1, 1}));

  NoGradGuard no_grad;
  auto small = make_imagenet_resnet("resnet18", 10);
  small->eval();
  CHECK(small->forward(Variable(Tensor::zeros({1, 3, 32, 32}))).shape() == Shape{1, 10});
  CHECK_THROWS_WITH_AS(small->forward(Variable(Tensor::zeros({1, 1, 32, 32}))),
                       doctest::Contains("expects images [N, 3, H, W]"), Error);
}

TEST_CASE("imagenet resnet: initialisation and zero_init_residual") {
  auto check_bn_weights = [](ImageNetResNet& model, bool zero_last) {
    for (auto& [name, v] : model.named_parameters()) {
      const bool bn_weight = v.dim() == 1 && ends_with(name, ".weight") && name != "fc.weight";
      if (!bn_weight) continue;
      const bool last = ends_with(name, model.kind() == ResidualBlockKind::Basic ? ".bn2.weight" : ".bn3.weight");
      const float expected = zero_last && last ? 0.0f : 1.0f;
      const std::vector<float> w = v.value().to_vector();
      CHECK_MESSAGE(std::all_of(w.begin(), w.end(), [&](float x) { return x == expected; }),
                    name << " should be all " << expected);
    }
  };
  for (const char* arch : {"resnet18", "resnet50"}) {
    CAPTURE(arch);
    check_bn_weights(fresh(arch), false);
    auto zeroed = make_imagenet_resnet(arch, 1000, /*zero_init_residual=*/true);
    check_bn_weights(*zeroed, true);
    for (auto& block : zeroed->blocks()) CHECK(max_abs(block->last_bn().weight.value()) == 0.0);
  }
  // Kaiming normal, fan_out: std sqrt(2 / (64 * 7 * 7)) for conv1.
  const std::vector<float> w = fresh("resnet18").named_parameters().front().second.value().to_vector();
  double sum_sq = 0;
  for (float x : w) sum_sq += double(x) * x;
  CHECK(std::sqrt(sum_sq / w.size()) == doctest::Approx(std::sqrt(2.0 / (64 * 49))).epsilon(0.05));
}

TEST_CASE("imagenet resnet: an unknown name lists the valid ones") {
  CHECK_THROWS_WITH_AS(make_imagenet_resnet("resnet101"),
                       doctest::Contains("unknown architecture 'resnet101'; valid: resnet18, resnet34, resnet50"), Error);
  CHECK_THROWS_WITH_AS(make_imagenet_resnet("resnet18", 0), doctest::Contains("num_classes must be positive"), Error);
}

namespace {

// The torchvision comparison on `device`: the weights are made on the CPU, then moved.
void check_logits_against_torchvision(Device device) {
  const Variable x(formula_input().value().to(device));
  CHECK_EQUAL_TENSORS(head(x.value()), fixture().get("input.head"), "input.head");
  for (const std::string arch : {"resnet18", "resnet50"}) {
    CAPTURE(arch);
    auto model = make_imagenet_resnet(arch);
    set_formula_weights(*model);
    model->to(device);
    // The formula gives the script's numbers exactly (the fixture holds the first few of some).
    const std::string head_prefix = arch + ".head.";
    for (const NamedTensor& stored : fixture().tensors)
      if (stored.name.rfind(head_prefix, 0) == 0) {
        const std::string name = stored.name.substr(head_prefix.size());
        bool found = false;
        for (const NamedTensor& ours : state_dict(*model))
          if (ours.name == name) {
            found = true;
            CHECK_EQUAL_TENSORS(head(ours.tensor), stored.tensor, stored.name);
          }
        CHECK_MESSAGE(found, name << " is not in the model");
      }
    NoGradGuard no_grad;
    model->eval();
    CHECK_MATCHES_TORCHVISION(model->forward(x).value(), arch + ".eval_logits");
    model->train();
    CHECK_MATCHES_TORCHVISION(model->forward(x).value(), arch + ".train_logits");
    const std::string bn = arch + ".layer1.0.bn1.";
    BatchNorm2d* watched = nullptr;
    for (auto& [name, child] : model->blocks().front()->named_children())
      if (name == "bn1") watched = dynamic_cast<BatchNorm2d*>(child.get());
    REQUIRE(watched != nullptr);
    CHECK_MATCHES_TORCHVISION(*watched->running_mean, bn + "running_mean");
    CHECK_MATCHES_TORCHVISION(*watched->running_var, bn + "running_var");
    CHECK(watched->num_batches_tracked->item() == fixture().get(bn + "num_batches_tracked").item());
  }
}

}  // namespace

TEST_CASE("imagenet resnet: logits equal torchvision's in eval and train mode") {
  check_logits_against_torchvision(Device::CPU);
}

// cuDNN and cuBLAS in full fp32 (TF32 off): the same 1e-4 tolerance as on the CPU.
GPU_TEST_CASE("imagenet resnet: logits on the GPU equal torchvision's in eval and train mode") {
  testing::NoTF32 full_fp32;
  check_logits_against_torchvision(Device::CUDA);
}

TEST_CASE("imagenet resnet: a saved state dict reloads to the same logits") {
  auto original = make_imagenet_resnet("resnet18");
  set_formula_weights(*original);
  char pattern[] = "/tmp/qnn_imagenet_resnet_XXXXXX";
  const int fd = mkstemp(pattern);
  REQUIRE(fd >= 0);
  close(fd);
  const std::string path = pattern;
  save_safetensors(path, state_dict(*original));
  auto reloaded = make_imagenet_resnet("resnet18");  // different random weights until loaded
  load_state_dict(*reloaded, load_safetensors(path));
  std::remove(path.c_str());

  NoGradGuard no_grad;
  original->eval();
  reloaded->eval();
  const Variable x = formula_input();
  const Tensor expected = original->forward(x).value();
  CHECK_EQUAL_TENSORS(reloaded->forward(x).value(), expected, "reloaded eval logits");
  CHECK_MATCHES_TORCHVISION(expected, "resnet18.eval_logits");

  // A file for 10 classes does not load into a 1000-class model: the mismatch is named.
  save_safetensors(path, state_dict(*make_imagenet_resnet("resnet18", 10)));
  CHECK_THROWS_WITH_AS(load_state_dict(*original, load_safetensors(path)),
                       doctest::Contains("'fc.weight' has shape [10, 512], the model expects [1000, 512]"), Error);
  std::remove(path.c_str());
}
