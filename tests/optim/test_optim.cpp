// SGD and learning-rate schedules against values printed by PyTorch 1.13 for the same inputs
// (torch.optim.SGD, OneCycleLR(cycle_momentum=False), CosineAnnealingLR).
#include <doctest.h>

#include "optim/schedule.h"
#include "optim/sgd.h"

using namespace qnn;

namespace {
std::vector<float> run_sgd(SGDOptions options) {
  Variable w(Tensor::from_vector({1.0f, -2.0f, 0.5f}, {3}), true);
  FlatParameters flat({w});
  SGD sgd(flat, options);
  for (auto g : {std::vector<float>{0.5f, 0.25f, -1.0f}, {0.1f, -0.3f, 0.2f}, {1.0f, 1.0f, 1.0f}}) {
    flat.grads().copy_from(Tensor::from_vector(g, {3}));
    sgd.step();
  }
  return w.value().to_vector();
}
}  // namespace

TEST_CASE("sgd: nesterov momentum with weight decay matches PyTorch") {
  auto w = run_sgd({0.1f, 0.9f, 0.0f, 0.01f, true});
  std::vector<float> torch = {0.6034655570983887f, -2.1784558296203613f, 0.5947255492210388f};
  for (int i = 0; i < 3; ++i) CHECK(w[i] == doctest::Approx(torch[i]).epsilon(1e-6));
}

TEST_CASE("sgd: momentum with dampening matches PyTorch") {
  auto w = run_sgd({0.05f, 0.8f, 0.3f, 0.1f, false});
  std::vector<float> torch = {0.876102089881897f, -2.0026297569274902f, 0.5628327131271362f};
  for (int i = 0; i < 3; ++i) CHECK(w[i] == doctest::Approx(torch[i]).epsilon(1e-6));
}

TEST_CASE("sgd: plain step and bad options") {
  auto w = run_sgd({0.5f, 0.0f, 0.0f, 0.0f, false});
  CHECK(w[0] == doctest::Approx(1.0f - 0.5f * 1.6f));
  Variable v(Tensor::zeros({2}), true);
  FlatParameters flat({v});
  CHECK_THROWS_WITH_AS(SGD(flat, {0.1f, 0.0f, 0.0f, 0.0f, true}), doctest::Contains("nesterov needs momentum"), Error);
  CHECK_THROWS_WITH_AS(SGD(flat, {-1.0f}), doctest::Contains("learning rate must be >= 0"), Error);
}

TEST_CASE("sgd: set_lr updates the learning-rate tensor the step reads; state lives with the parameters") {
  Variable w(Tensor::from_vector({1.0f, -2.0f}, {2}), true);
  FlatParameters flat({w});
  SGD sgd(flat, {0.5f, 0.9f, 0.0f, 0.0f, false});
  CHECK(sgd.lr_tensor().to_vector() == std::vector<float>{0.5f});
  CHECK(sgd.momentum_buffer().device() == flat.values().device());
  CHECK(sgd.lr_tensor().device() == flat.values().device());
  sgd.set_lr(0.25f);
  CHECK(sgd.lr() == 0.25f);
  CHECK(sgd.lr_tensor().to_vector() == std::vector<float>{0.25f});
  flat.grads().copy_from(Tensor::from_vector({1.0f, 2.0f}, {2}));
  sgd.step();  // first step: b = g, p -= lr * b
  CHECK(w.value().to_vector() == std::vector<float>{0.75f, -2.5f});
  CHECK(sgd.momentum_buffer().to_vector() == std::vector<float>{1.0f, 2.0f});
}

TEST_CASE("sgd_update: mismatched buffers are refused") {
  Tensor p = Tensor::zeros({4}), g = Tensor::zeros({3}), b, lr = Tensor::full({1}, 0.1f);
  SGDCoefficients c;
  CHECK_THROWS_WITH_AS(sgd_update(p, g, b, lr, c), doctest::Contains("expected equal sizes"), Error);
  Tensor g4 = Tensor::zeros({4});
  c.momentum = 0.9f;
  CHECK_THROWS_WITH_AS(sgd_update(p, g4, b, lr, c), doctest::Contains("momentum buffer (none)"), Error);
}

TEST_CASE("schedule: onecycle matches PyTorch's OneCycleLR step by step") {
  const std::vector<double> torch = {0.004, 0.007653782, 0.018058875, 0.033631195, 0.052, 0.070368805,
      0.085941125, 0.096346218, 0.1, 0.099441544, 0.097778649, 0.095048463, 0.091311973, 0.086652647,
      0.081174565, 0.0750001, 0.068267178, 0.061126202, 0.05373669, 0.04626371, 0.038874198, 0.031733222,
      0.0250003, 0.018825835, 0.013347753, 0.008688427, 0.004951937, 0.002221751, 0.000558856, 4e-07};
  LRSchedule s;
  s.kind = "onecycle";
  s.base_lr = 0.1f;
  s.epochs = 3;
  s.steps_per_epoch = 10;
  validate(s);
  for (int t = 0; t < 30; ++t) CHECK(s.lr_at(t / 10, t % 10) == doctest::Approx(torch[t]).epsilon(1e-5));
}

TEST_CASE("schedule: cosine and multistep") {
  LRSchedule cosine;
  cosine.kind = "cosine";
  cosine.epochs = 5;
  const double torch[] = {0.1, 0.09045084971874738, 0.06545084971874737, 0.03454915028125263, 0.009549150281252633};
  for (int e = 0; e < 5; ++e) CHECK(cosine.lr_at(e, 0) == doctest::Approx(torch[e]).epsilon(1e-6));
  LRSchedule steps;
  steps.milestones = {81, 122, 164};
  CHECK(steps.lr_at(80, 0) == doctest::Approx(0.1));
  CHECK(steps.lr_at(81, 0) == doctest::Approx(0.01));
  CHECK(steps.lr_at(199, 0) == doctest::Approx(0.0001));
  LRSchedule bad;
  bad.kind = "linear";
  CHECK_THROWS_WITH_AS(validate(bad), doctest::Contains("valid: multistep, cosine, onecycle"), Error);
  bad.kind = "multistep";
  bad.milestones = {5, 3};
  CHECK_THROWS_WITH_AS(validate(bad), doctest::Contains("milestones must increase"), Error);
}
