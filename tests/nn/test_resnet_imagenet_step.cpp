// The step bench/imagenet_step.cpp times, checked for what it computes: one SGD step through the
// apps' Trainer on ImageNet ResNet-18 (nn/resnet_imagenet.h) from a FixedSource gives a finite
// loss near ln(1000) (a fresh network guesses uniformly) and updates every weight exactly as a
// first SGD step with momentum and weight decay does; eval mode then runs forward without
// autograd and without touching the batch-norm running statistics, which train mode updates.
// Small inputs (batch 2, 64x64) keep it to a few seconds on two cores.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "nn/init.h"
#include "nn/resnet_imagenet.h"
#include "train/trainer.h"

using namespace qnn;

namespace {

std::vector<float> running_statistics(ImageNetResNet& model) {
  std::vector<float> all;
  for (auto& [name, tensor] : model.named_buffers())
    if (name.find("running_") != std::string::npos) {
      const std::vector<float> v = tensor->to_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
  return all;
}

int64_t non_finite(const std::vector<float>& v) {
  int64_t n = 0;
  for (float x : v) n += !std::isfinite(x);
  return n;
}

}  // namespace

TEST_CASE("imagenet resnet step: one SGD step through Trainer, then eval and train forwards") {
  manual_seed(0);
  auto model = make_imagenet_resnet("resnet18", 1000);
  FlatParameters& flat = model->flatten();
  const float lr = 0.1f, weight_decay = 1e-4f;
  SGD sgd(flat, {lr, 0.9f, 0.0f, weight_decay, false});
  LRSchedule constant;  // lr 0.1 throughout
  Trainer trainer(*model, sgd, constant, nullptr, 1, false);
  FixedSource source(Tensor::normal({2, 3, 64, 64}, 0, 1, 1), label_tensor({3, 999}));

  const std::vector<float> before = flat.values().to_vector();
  const std::vector<float> stats_before = running_statistics(*model);
  const EpochResult r = trainer.train_epoch(source, 0, 1, 1);
  CHECK(r.steps == 1);
  CHECK(r.images == 2);
  REQUIRE(std::isfinite(r.loss));
  CHECK(std::abs(r.loss - std::log(1000.0)) < 1.5);

  // The first step with momentum: the buffer is d = g + wd * p and p' = p - lr * d. The
  // gradient is still in the flat buffer (the next step zeroes it).
  const std::vector<float> after = flat.values().to_vector(), grad = flat.grads().to_vector();
  REQUIRE(after.size() == before.size());
  int64_t moved = 0, wrong = 0, nonzero_grad = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    const float expected = before[i] - lr * (grad[i] + weight_decay * before[i]);
    if (after[i] != before[i]) ++moved;
    if (grad[i] != 0) ++nonzero_grad;
    if (std::abs(after[i] - expected) > 1e-6f * (1 + std::abs(expected))) ++wrong;
  }
  CHECK(wrong == 0);
  CHECK(nonzero_grad > int64_t(before.size()) * 9 / 10);
  CHECK(moved > int64_t(before.size()) * 9 / 10);  // weight decay moves even a zero-gradient weight
  const std::vector<float> stats_after = running_statistics(*model);
  CHECK(stats_after != stats_before);  // the training forward updated the running statistics

  Tensor images, labels;
  source.produce(images, labels);
  model->eval();
  {
    NoGradGuard no_grad;
    const std::vector<float> a = (*model)(Variable(images)).value().to_vector();
    const std::vector<float> b = (*model)(Variable(images)).value().to_vector();
    REQUIRE(a.size() == 2 * 1000);
    CHECK(a == b);  // running statistics: the same logits every time
    CHECK(non_finite(a) == 0);
  }
  CHECK(running_statistics(*model) == stats_after);

  model->train();
  const Variable logits = (*model)(Variable(images));
  CHECK(logits.value().shape() == Shape{2, 1000});
  CHECK(non_finite(logits.value().to_vector()) == 0);
  CHECK(running_statistics(*model) != stats_after);
}
