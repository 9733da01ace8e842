// The golden test: a small conv-bn-relu-pool-conv-relu-pool-linear net with PyTorch's weights on
// PyTorch's batch must give PyTorch's logits, loss, running statistics and every gradient, and
// three SGD steps (momentum 0.9, nesterov, weight decay 5e-4) must land on PyTorch's parameters.
// The fixture is written by scripts/make_golden.py (PyTorch 1.13); tolerance 1e-4 relative to
// each tensor's largest magnitude.
#include <doctest.h>

#include <algorithm>
#include <cmath>

#include "nn/layers.h"
#include "nn/state_dict.h"
#include "optim/sgd.h"

using namespace qnn;

namespace {

struct GoldenNet : Module {
  std::shared_ptr<Conv2d> conv1 = register_module("conv1", std::make_shared<Conv2d>(3, 8, 3, 1, 1, false));
  std::shared_ptr<BatchNorm2d> bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(8));
  std::shared_ptr<Conv2d> conv2 = register_module("conv2", std::make_shared<Conv2d>(8, 16, 3, 2, 1, true));
  std::shared_ptr<Linear> fc = register_module("fc", std::make_shared<Linear>(16, 10));
  Variable forward(const Variable& x) override {
    Variable h = max_pool2d(relu(bn1->forward(conv1->forward(x))), 2, 2, 0);
    return fc->forward(global_avg_pool(relu(conv2->forward(h))));
  }
};

double relative_error(const Tensor& ours, const Tensor& theirs) {
  REQUIRE(ours.numel() == theirs.numel());
  double diff = 0, scale = 1e-6;
  for (int64_t i = 0; i < ours.numel(); ++i) {
    diff = std::max(diff, std::fabs(double(ours.data()[i]) - theirs.data()[i]));
    scale = std::max(scale, std::fabs(double(theirs.data()[i])));
  }
  return diff / scale;
}

#define CHECK_CLOSE(ours, name) \
  do { const std::string key = (name); const double err = relative_error(ours, golden.get(key)); CHECK_MESSAGE(err <= 1e-4, key << ": relative error " << err); } while (0)

}  // namespace

TEST_CASE("golden: forward, backward and three nesterov SGD steps match PyTorch") {
  const SafetensorsFile golden = load_safetensors("tests/fixtures/golden.safetensors");
  GoldenNet net;
  load_state_dict(net, golden);
  FlatParameters& flat = net.flatten();
  SGD sgd(flat, {0.1f, 0.9f, 0.0f, 5e-4f, true});
  Variable x(golden.get("input"));
  std::vector<int32_t> labels;
  for (float l : golden.get("labels").to_vector()) labels.push_back(static_cast<int32_t>(l));

  for (int step = 1; step <= 3; ++step) {
    Variable logits = net(x);
    Variable loss = cross_entropy(logits, labels);
    CHECK_CLOSE(loss.value(), "step" + std::to_string(step) + ".loss");
    sgd.zero_grad();
    loss.backward();
    if (step == 1) {
      CHECK_CLOSE(logits.value(), "forward1.logits");
      CHECK_CLOSE(*net.bn1->running_mean, "forward1.bn1.running_mean");
      CHECK_CLOSE(*net.bn1->running_var, "forward1.bn1.running_var");
      for (auto& [name, p] : net.named_parameters()) CHECK_CLOSE(p.grad(), "grad." + name);
    }
    sgd.step();
    for (auto& [name, p] : net.named_parameters()) CHECK_CLOSE(p.value(), "step" + std::to_string(step) + "." + name);
  }
  CHECK_CLOSE(*net.bn1->running_mean, "step3.bn1.running_mean");
  CHECK_CLOSE(*net.bn1->running_var, "step3.bn1.running_var");
  CHECK(net.bn1->num_batches_tracked->item() == golden.get("step3.bn1.num_batches_tracked").item());
  net.eval();
  NoGradGuard no_grad;
  CHECK_CLOSE(net(x).value(), "eval.logits");
}
