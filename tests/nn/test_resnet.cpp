// CIFAR ResNets: parameter counts, PyTorch-style names, output shapes, seeded initialisation.
#include <doctest.h>

#include "nn/init.h"
#include "nn/resnet.h"

using namespace qnn;

TEST_CASE("resnet: parameter counts") {
  // Option A: conv1 432 + bn1 32 + stages 14016 + 51072 + 203520 + fc 650.
  CHECK(CifarResNet(20).num_parameters() == 269722);
  // Each deeper net adds blocks of 2 convs + 2 BNs per stage: 4672 + 18560 + 73984 per block.
  CHECK(CifarResNet(32).num_parameters() == 269722 + 2 * (4672 + 18560 + 73984));
  CHECK(CifarResNet(110).num_parameters() == 269722 + 15 * (4672 + 18560 + 73984));
  // Option B adds two 1x1 conv + BN projections: 16*32 + 64 and 32*64 + 128.
  CHECK(CifarResNet(20, 10, Shortcut::B).num_parameters() == 269722 + 512 + 64 + 2048 + 128);
  CHECK_THROWS_WITH_AS(CifarResNet(21), doctest::Contains("depth must be 6n+2"), Error);
  CHECK(cifar_resnet_depth("resnet56") == 56);
  CHECK_THROWS_WITH_AS(cifar_resnet_depth("resnet18"), doctest::Contains("valid: resnet20"), Error);
}

TEST_CASE("resnet: names follow PyTorch") {
  CifarResNet net(20, 10, Shortcut::B);
  auto params = net.named_parameters();
  CHECK(params.front().first == "conv1.weight");
  CHECK(params[1].first == "bn1.weight");
  CHECK(params.back().first == "fc.bias");
  bool found_shortcut = false;
  for (auto& [name, v] : params) found_shortcut = found_shortcut || name == "layer2.0.shortcut.0.weight";
  CHECK(found_shortcut);
  auto buffers = net.named_buffers();
  CHECK(buffers[0].first == "bn1.running_mean");
  CHECK(buffers[2].first == "bn1.num_batches_tracked");
  CHECK(buffers.back().first == "layer3.2.bn2.num_batches_tracked");
}

TEST_CASE("resnet: forward shapes, train/eval, seeded init") {
  manual_seed(3);
  CifarResNet a(20);
  manual_seed(3);
  CifarResNet b(20);
  CHECK(a.parameters()[0].value().to_vector() == b.parameters()[0].value().to_vector());
  a.flatten();
  Variable x(Tensor::normal({2, 3, 32, 32}, 0, 1, 1));
  Variable y = a(x);
  CHECK(y.shape() == Shape{2, 10});
  a.eval();
  NoGradGuard no_grad;
  Variable z = a(x);
  CHECK(z.shape() == Shape{2, 10});
  CHECK(!z.requires_grad());
  CHECK_THROWS_WITH_AS(a(Variable(Tensor::zeros({2, 1, 32, 32}))), doctest::Contains("expects images [N, 3, H, W]"), Error);
}

TEST_CASE("resnet: a training step moves the loss the right way") {
  manual_seed(1);
  CifarResNet net(20);
  FlatParameters& flat = net.flatten();
  Variable x(Tensor::normal({8, 3, 32, 32}, 0, 1, 5));
  std::vector<int32_t> labels = {0, 1, 2, 3, 4, 5, 6, 7};
  Variable loss = cross_entropy(net(x), labels);
  const float before = loss.value().item();
  flat.zero_grad();
  loss.backward();
  // Plain gradient step on the flat buffer.
  for (int64_t i = 0; i < flat.numel(); ++i) flat.values().data()[i] -= 0.05f * flat.grads().data()[i];
  const float after = cross_entropy(net(x), labels).value().item();
  CHECK(after < before);
}
