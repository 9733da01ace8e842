// The epoch loop of ./apps/cifar: one pass of training or evaluation over a loader.
//
// A training step: learning rate from the schedule, gradient, optional quantization, SGD step.
// With one worker, the gradient quantizer is a hook on the flat gradient (installed by the
// caller), so backward() leaves the quantized gradient for the optimizer. With K emulated
// data-parallel workers (learning-to-quantize's simulated all-reduce), each step takes K
// batches, computes K gradients, quantizes each on its own and averages them
// (GradientQuantizationHook::quantize_and_average), then steps once. Nothing here depends on
// the scheme: quantization is a hook.
#pragma once
#include <algorithm>
#include <memory>
#include <vector>

#include "apps/progress.h"
#include "autograd/functions.h"
#include "data/loader.h"
#include "nn/module.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "quant/hook.h"

namespace qnn {

struct EpochResult {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t images = 0, steps = 0;
  double bits_per_coordinate = 32;  // mean over the epoch's steps (32: unquantized)
  double mean_variance = 0;         // mean quantization variance per step (hook with record_variance)
};

inline int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels) {
  const int64_t classes = logits.size(1);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data() + i * classes;
    correct += (std::max_element(row, row + classes) - row) == labels[i];
  }
  return correct;
}

// Evaluation: no graph, batch-norm running statistics.
inline EpochResult evaluate(Module& model, Loader& loader, int64_t epoch) {
  model.eval();
  NoGradGuard no_grad;
  loader.start_epoch(epoch);
  EpochResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  Progress timer(epoch, 1, 1);
  Batch batch;
  while (loader.next(batch)) {
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    Variable logits = model(Variable(batch.images));
    loss_sum += double(cross_entropy(logits, batch.labels).value().item()) * n;
    correct += count_correct(logits.value(), batch.labels);
    r.images += n;
  }
  r.seconds = timer.seconds();
  r.loss = loss_sum / std::max<int64_t>(r.images, 1);
  r.accuracy = double(correct) / std::max<int64_t>(r.images, 1);
  return r;
}

class Trainer {
 public:
  // `hook` may be null (no quantization); with workers == 1 it must already be installed on
  // the model's flat parameters, with workers > 1 it must not be.
  Trainer(Module& model, SGD& sgd, const LRSchedule& schedule, GradientQuantizationHook* hook, int workers)
      : model_(model), sgd_(sgd), schedule_(schedule), hook_(hook), workers_(workers) {}

  // Optimizer steps per epoch for a loader: ceil(batches / workers).
  static int64_t steps_per_epoch(const Loader& loader, int workers) {
    return (loader.batches_per_epoch() + workers - 1) / workers;
  }

  // Trains one epoch (or until `max_steps` steps when >= 0).
  EpochResult train_epoch(Loader& loader, int64_t epoch, int64_t epochs, int64_t max_steps = -1) {
    model_.train();
    loader.start_epoch(epoch);
    FlatParameters& flat = model_.flatten();
    Progress progress(epoch, epochs, steps_per_epoch(loader, workers_));
    EpochResult r;
    double loss_sum = 0, bits_sum = 0, variance_sum = 0;
    int64_t correct = 0;
    Batch batch;
    bool more = true;
    while (more && (max_steps < 0 || r.steps < max_steps)) {
      int got = 0;
      for (; got < workers_; ++got) {
        if (!loader.next(batch)) {
          more = false;
          break;
        }
        const int64_t n = static_cast<int64_t>(batch.labels.size());
        Variable logits = model_(Variable(batch.images));
        Variable loss = cross_entropy(logits, batch.labels);
        sgd_.zero_grad();
        loss.backward();
        if (workers_ > 1) keep_worker_gradient(flat, got);
        loss_sum += double(loss.value().item()) * n;
        correct += count_correct(logits.value(), batch.labels);
        r.images += n;
      }
      if (got == 0) break;
      if (workers_ > 1) average_worker_gradients(flat, got);
      if (hook_) bits_sum += hook_->last_bits_per_coordinate(), variance_sum += hook_->last_variance();
      sgd_.set_lr(schedule_.lr_at(epoch, r.steps));
      sgd_.step();
      ++r.steps;
      progress.update(r.steps - 1, loss_sum / r.images, double(correct) / r.images, r.images);
    }
    progress.finish_line();
    r.seconds = progress.seconds();
    r.loss = loss_sum / std::max<int64_t>(r.images, 1);
    r.accuracy = double(correct) / std::max<int64_t>(r.images, 1);
    if (hook_ && r.steps > 0) r.bits_per_coordinate = bits_sum / r.steps, r.mean_variance = variance_sum / r.steps;
    return r;
  }

 private:
  void keep_worker_gradient(FlatParameters& flat, int worker) {
    if (int(worker_grads_.size()) <= worker) worker_grads_.resize(worker + 1);
    worker_grads_[worker].assign(flat.grads().data(), flat.grads().data() + flat.numel());
  }
  // The mean of the first `count` workers' (quantized) gradients into the flat gradient.
  void average_worker_gradients(FlatParameters& flat, int count) {
    std::vector<const float*> grads;
    for (int w = 0; w < count; ++w) grads.push_back(worker_grads_[w].data());
    float* out = flat.grads().data();
    if (hook_) {
      hook_->quantize_and_average(grads, flat.numel(), out);
      return;
    }
    for (int64_t i = 0; i < flat.numel(); ++i) {
      float sum = 0;
      for (int w = 0; w < count; ++w) sum += grads[w][i];
      out[i] = sum / float(count);
    }
  }

  Module& model_;
  SGD& sgd_;
  const LRSchedule& schedule_;
  GradientQuantizationHook* hook_;
  int workers_;
  std::vector<std::vector<float>> worker_grads_;
};

}  // namespace qnn
