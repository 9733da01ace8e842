// Emulated data-parallel workers without a quantizer (`./apps/cifar --workers K`, train/trainer.h):
// each step takes K consecutive batches, computes each one's gradient from the same weights, and
// makes one SGD step with their mean; the epoch's last step takes the batches that are left.
// Checked against the same arithmetic written out here, the mean taken in double.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "nn/init.h"
#include "nn/resnet.h"
#include "train/trainer.h"

using namespace qnn;

namespace {

// Batches by number, as a loader gives them.
class ListSource : public BatchSource {
 public:
  explicit ListSource(std::vector<std::pair<Tensor, Tensor>> batches) : batches_(std::move(batches)) {}
  int64_t batches_per_epoch() const override { return int64_t(batches_.size()); }
  int64_t batch_size() const override { return batches_[0].first.size(0); }
  int64_t rows(int64_t number) const override { return batches_[size_t(number)].first.size(0); }
  void start_epoch(int64_t) override {}
  void prepare(int64_t number) override { current_ = size_t(number); }
  void produce(Tensor& images, Tensor& labels) override {
    images = batches_[current_].first;
    labels = batches_[current_].second;
  }

 private:
  std::vector<std::pair<Tensor, Tensor>> batches_;
  size_t current_ = 0;
};

std::vector<std::pair<Tensor, Tensor>> make_batches(int count) {
  std::vector<std::pair<Tensor, Tensor>> batches;
  for (int b = 0; b < count; ++b)
    batches.emplace_back(Tensor::normal({4, 3, 8, 8}, 0, 1, 100 + b), label_tensor({b % 10, 3, 7, (b * 3) % 10}));
  return batches;
}

}  // namespace

TEST_CASE("trainer: K workers without a quantizer step with the mean of their batches' gradients") {
  const float lr = 0.1f, momentum = 0.9f, weight_decay = 1e-4f;
  const std::vector<std::pair<Tensor, Tensor>> batches = make_batches(3);
  manual_seed(5);
  CifarResNet trained(8);
  manual_seed(5);
  CifarResNet by_hand(8);
  REQUIRE(trained.flatten().values().to_vector() == by_hand.flatten().values().to_vector());

  // Two workers over three batches: step 1 averages batches 0 and 1, step 2 takes batch 2 alone.
  SGD sgd(trained.flatten(), {lr, momentum, 0.0f, weight_decay, false});
  LRSchedule constant;  // lr 0.1 throughout
  Trainer trainer(trained, sgd, constant, nullptr, 2, false);
  ListSource source(batches);
  trained.train();
  const EpochResult r = trainer.train_epoch(source, 0, 1);
  CHECK(r.steps == 2);
  CHECK(r.images == 12);

  // The same by hand: each batch's gradient from the step's weights, their mean in double.
  FlatParameters& flat = by_hand.flatten();
  SGD hand_sgd(flat, {lr, momentum, 0.0f, weight_decay, false});
  by_hand.train();
  for (const std::vector<int>& step : {std::vector<int>{0, 1}, std::vector<int>{2}}) {
    std::vector<double> mean(size_t(flat.grads().numel()), 0.0);
    for (int b : step) {
      hand_sgd.zero_grad();
      cross_entropy(by_hand(Variable(batches[size_t(b)].first)), batches[size_t(b)].second).backward();
      const std::vector<float> g = flat.grads().to_vector();
      for (size_t i = 0; i < g.size(); ++i) mean[i] += double(g[i]) / double(step.size());
    }
    std::vector<float> rounded(mean.begin(), mean.end());
    flat.grads().copy_from(Tensor::from_vector(rounded, flat.grads().shape()));
    hand_sgd.step();
  }
  const std::vector<float> got = trained.flatten().values().to_vector(), want = flat.values().to_vector();
  REQUIRE(got.size() == want.size());
  int64_t off = 0;
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double error = std::abs(double(got[i]) - double(want[i]));
    worst = std::max(worst, error);
    off += error > 1e-6 * (1 + std::abs(double(want[i])));
  }
  INFO("largest difference ", worst);
  CHECK(off == 0);
}
