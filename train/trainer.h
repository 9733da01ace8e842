// The epoch loop every app's training run shares (train/run.h): one pass of training or
// evaluation, the same code on the CPU and on the GPU.
//
// A training step: the batch from a BatchSource (train/batch_source.h), forward, loss, loss and
// accuracy added into a metrics tensor on the device, backward (which runs the gradient hooks:
// quantization), the SGD step. Nothing in it reads device memory on the host: the host only
// enqueues work, and reads the metrics once per progress redraw and at the end of the epoch.
// Per-step values reach the step through device memory written before it: the learning rate
// (SGD::set_lr), the batch number and epoch (BatchSource::prepare).
//
// On the GPU that lets the whole step be one CUDA graph (tensor/cuda_graph.h): the first steps
// run eagerly (cuDNN picks its algorithms, SGD initialises its momentum), the next full batch
// is captured, and every later full batch replays the graph with one launch. A partial last
// batch (50,000 = 390 x 128 + 80) has other shapes: it runs eagerly, uncaptured.
//
// A loss that is not finite stops training with TrainingDiverged, naming the epoch and step: on
// the CPU every step's loss is checked (it is in host memory); on the GPU, where reading it would
// stall the stream, the running loss is checked whenever the metrics are read (progress redraws
// and the end of the epoch), and the error names the steps since the last read. Nothing is
// written after the error, so the last checkpoint (of a healthy epoch) is kept.
//
// With K emulated data-parallel workers (learning-to-quantize's simulated all-reduce), each step
// takes K batches, computes K gradients, quantizes each on its own and averages them
// (GradientQuantizationHook::quantize_and_average), then steps once; those steps run eagerly.
//
// Distributed over K ranks (mpirun; set_exchange), a step is the same K batches, rank r taking
// batch step * K + r (its source builds only those: BatchSource::share_batches): each rank
// computes its gradient, the GradientExchange (dist/exchange.h)
// averages the ranks' (quantized) gradients, every rank steps, and rank 0's buffers are broadcast
// (dist/replicas.h). A rank without a batch in the last, partial step contributes zeros, and the
// sum is divided by the ranks that had one, as the emulated workers do. Each rank's metrics are
// summed over the ranks at the end of the epoch.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "train/batch_source.h"
#include "train/progress.h"
#include "autograd/conv_weight_forms.h"
#include "autograd/functions.h"
#include "dist/exchange.h"
#include "dist/replicas.h"
#include "data/device_data.h"
#include "nn/module.h"
#include "optim/schedule.h"
#include "optim/sgd.h"
#include "quant/hook.h"
#include "tensor/cuda_graph.h"
#include "tensor/elementwise.h"

namespace qnn {

struct EpochResult {
  double loss = 0, accuracy = 0, top5 = 0, seconds = 0;
  int64_t images = 0, steps = 0;
  int64_t captured_steps = 0;       // steps replayed from the CUDA graph
  double bits_per_coordinate = 32;  // mean over the epoch's steps (32: unquantized)
  double mean_variance = 0;         // mean quantization variance per step (hook with record_variance)
  int64_t bytes_sent = 0;           // distributed: the gradient bytes this rank sent (dist/communicator.h)
};

// Metrics accumulate in a [4] tensor on the device (data/device_data.h): loss * rows, correct
// rows, rows, rows whose label is in the top 5.
struct Metrics {
  explicit Metrics(Device device) : sums(Tensor::zeros({4}, device)) {}
  void reset() { sums.zero(); }
  void read(EpochResult& r) const {  // waits for the device
    const std::vector<float> v = sums.to_vector();
    r.images = static_cast<int64_t>(v[2]);
    r.loss = v[0] / std::max(v[2], 1.0f);
    r.accuracy = v[1] / std::max(v[2], 1.0f);
    r.top5 = v[3] / std::max(v[2], 1.0f);
  }
  Tensor sums;
};

// Evaluation: no graph, batch-norm running statistics.
inline EpochResult evaluate(Module& model, BatchSource& source, int64_t epoch) {
  model.eval();
  NoGradGuard no_grad;
  source.start_epoch(epoch);
  Metrics metrics(model.device());
  Progress timer(epoch, 1, 1);
  Tensor images, labels;
  for (int64_t b = 0; b < source.batches_per_epoch(); ++b) {
    source.prepare(b);
    source.produce(images, labels);
    Variable logits = model(Variable(images));
    accumulate_metrics(logits.value(), labels, cross_entropy(logits, labels).value(), metrics.sums);
  }
  EpochResult r;
  metrics.read(r);
  r.seconds = timer.seconds();
  return r;
}

// Training produced a non-finite loss: the weights can no longer be trusted.
struct TrainingDiverged : Error {
  using Error::Error;
};

// Throws TrainingDiverged unless `loss` is finite; `where` names the epoch and step(s).
inline void check_finite_loss(double loss, const std::string& where, float lr) {
  if (std::isfinite(loss)) return;
  throw TrainingDiverged(str("training stopped: the loss is ", std::isnan(loss) ? "NaN" : loss > 0 ? "+inf" : "-inf", " at ", where, " (learning rate ", lr,
                             "); the weights are no longer usable. Try a lower --lr or --wd."));
}

class Trainer {
 public:
  // `hook` may be null (no quantization); with workers == 1 it must already be installed on the
  // model's flat parameters, with workers > 1 it must not be. `graph`: capture the step as a
  // CUDA graph (only used on the GPU with one worker).
  Trainer(Module& model, SGD& sgd, const LRSchedule& schedule, GradientQuantizationHook* hook, int workers,
          bool graph)
      : model_(model), sgd_(sgd), schedule_(schedule), hook_(hook), workers_(workers),
        graph_wanted_(graph && workers == 1 && model.device() == Device::CUDA), metrics_(model.device()) {}

  // Distributed training over the exchange's ranks (workers must equal their number; the hook,
  // if any, must not be installed). `check_replicas`: compare a hash of every rank's model after
  // every step (dist/replicas.h).
  void set_exchange(GradientExchange* exchange, bool check_replicas) {
    QNN_CHECK(!exchange || exchange->communicator().size() == workers_, "the trainer has ", workers_,
              " workers but the exchange ", exchange ? exchange->communicator().size() : 0, " ranks");
    exchange_ = exchange;
    check_replicas_ = check_replicas;
  }

  // Nodes in the captured step's CUDA graph (0 when no step has been captured).
  size_t graph_nodes() const { return graph_.node_count(); }

  // Optimizer steps per epoch: ceil(batches / workers).
  static int64_t steps_per_epoch(int64_t batches, int workers) { return (batches + workers - 1) / workers; }

  // Trains one epoch (or until `max_steps` steps when >= 0).
  EpochResult train_epoch(BatchSource& source, int64_t epoch, int64_t epochs, int64_t max_steps = -1) {
    model_.train();
    if (exchange_) source.share_batches(exchange_->communicator().rank(), workers_);
    source.start_epoch(epoch);
    metrics_.reset();
    const int64_t batches = source.batches_per_epoch();
    const int64_t steps = std::min(steps_per_epoch(batches, workers_), max_steps < 0 ? INT64_MAX : max_steps);
    Progress progress(epoch, epochs, steps);
    EpochResult r;
    if (hook_) hook_->reset_variance_total();
    const bool on_host = model_.device() == Device::CPU;
    int64_t last_checked = -1;  // the GPU's loss is known finite up to this step
    auto since_last_check = [&](int64_t step) {  // "epoch 3, step 17" or "epoch 3, steps 5-17"
      const int64_t first = last_checked + 2, last = step + 1;
      return first >= last ? str("epoch ", epoch + 1, ", step ", last) : str("epoch ", epoch + 1, ", steps ", first, "-", last);
    };
    for (int64_t step = 0; step < steps; ++step) {
      const float lr = schedule_.lr_at(epoch, step);
      sgd_.set_lr(lr);
      if (exchange_) {
        distributed_step(source, step, batches, r);
        if (check_replicas_) check_replicas(model_, &sgd_, exchange_->communicator(), str("epoch ", epoch + 1, ", step ", step + 1));
      } else if (workers_ == 1) {
        source.prepare(step);
        run_step(source, source.rows(step) == source.batch_size(), r);
      } else {
        worker_step(source, step, batches);
      }
      if (on_host) check_finite_loss(last_loss_, str("epoch ", epoch + 1, ", step ", step + 1), lr);
      ++r.steps;
      if (progress.due(step)) {
        EpochResult now;
        metrics_.read(now);
        check_finite_loss(now.loss, since_last_check(step), lr);
        last_checked = step;
        progress.update(step, now.loss, now.accuracy, now.images);
      }
    }
    if (exchange_) sum_metrics_over_ranks();
    metrics_.read(r);
    if (steps > 0) check_finite_loss(r.loss, since_last_check(steps - 1), schedule_.lr_at(epoch, steps - 1));
    progress.finish_line();
    r.seconds = progress.seconds();
    // Bits per coordinate depend only on sizes and level counts: the last step's hold for all.
    if (hook_ && r.steps > 0)
      r.bits_per_coordinate = hook_->last_bits_per_coordinate(), r.mean_variance = hook_->variance_total() / r.steps;
    return r;
  }

 private:
  // The step itself: everything after prepare(). Captured once, replayed after that. On the GPU
  // its convolutions take their weights' forms from one buffer refreshed at its start, and their
  // gradients are folded back at the end of backward (autograd/conv_weight_forms.h).
  void step_work(BatchSource& source) {
    ConvWeightForms::Scope forms(conv_weight_forms());
    Tensor images, labels;
    source.produce(images, labels);
    Variable logits = model_(Variable(images));
    Variable loss = cross_entropy(logits, labels);
    accumulate_metrics(logits.value(), labels, loss.value(), metrics_.sums);
    if (model_.device() == Device::CPU) last_loss_ = loss.value().data()[0];
    sgd_.zero_grad();
    loss.backward();  // runs the gradient hooks (quantization) on the flat gradient
    sgd_.step();
  }

  // The model's convolution weights in the form the GPU's convolutions of this run's activations
  // take (made on the first step, which is eager); null on the CPU.
  ConvWeightForms* conv_weight_forms() {
    if (model_.device() != Device::CUDA) return nullptr;
    if (!forms_) {
      const BackendOptions& o = backend_options();
      forms_ = std::make_unique<ConvWeightForms>(model_.flatten(), o.bf16 ? DType::bf16 : DType::f32,
                                                 o.channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous);
    }
    return forms_.get();
  }

  void run_step(BatchSource& source, bool full_batch, EpochResult& r) {
    constexpr int64_t kWarmupSteps = 2;  // SGD's first step differs; cuDNN searches algorithms
    const bool hook_capturable = !hook_ || hook_->device_capturable(hook_->step());
    const bool graph_step = graph_wanted_ && source.capturable() && full_batch;
    const bool use_graph = graph_step && eager_steps_ >= kWarmupSteps && hook_capturable;
    // A step the hook must run on the host (an adaptive refit) may change what the kernels
    // read: capture afresh after it.
    if (!hook_capturable) graph_.reset();
    if (use_graph && (!graph_.captured() || captured_source_ != &source)) {
      // Capture records the step without running it, but its host code still counts a step:
      // put the optimizer's and the quantizer's counters back.
      const int64_t sgd_steps = sgd_.steps(), quant_step = hook_ ? hook_->step() : 0;
      graph_.capture([&] { step_work(source); });
      sgd_.set_steps(sgd_steps);
      if (hook_) hook_->set_step(quant_step);
      captured_source_ = &source;
    }
    if (use_graph) {
      graph_.replay();
      sgd_.set_steps(sgd_.steps() + 1);  // the host-side counts of what the graph just did
      if (hook_) hook_->note_replayed_step();
      ++r.captured_steps;
    } else {
      // The last eager step before the capture is its rehearsal: its allocations lay out the
      // graph's (one arena the size of the step's peak).
      const auto work = [&] { step_work(source); };
      if (graph_step && eager_steps_ == kWarmupSteps - 1) graph_.rehearse(work);
      else work();
      ++eager_steps_;
    }
  }

  // K workers: K batches, K gradients, each quantized on its own, averaged, one SGD step.
  void worker_step(BatchSource& source, int64_t step, int64_t batches) {
    FlatParameters& flat = model_.flatten();
    const int count = static_cast<int>(std::min<int64_t>(workers_, batches - step * workers_));
    if (int(worker_grads_.size()) < count) worker_grads_.resize(count);
    Tensor images, labels;
    for (int w = 0; w < count; ++w) {
      source.prepare(step * workers_ + w);
      source.produce(images, labels);
      Variable logits = model_(Variable(images));
      Variable loss = cross_entropy(logits, labels);
      accumulate_metrics(logits.value(), labels, loss.value(), metrics_.sums);
      if (model_.device() == Device::CPU && std::isfinite(last_loss_)) last_loss_ = loss.value().data()[0];
      sgd_.zero_grad();
      loss.backward();
      if (!worker_grads_[w].defined()) worker_grads_[w] = Tensor(flat.grads().shape(), flat.grads().device());
      worker_grads_[w].copy_from(flat.grads());  // the same buffers every step
    }
    average_worker_gradients(flat, count);
    sgd_.step();
  }

  // This rank's batch of the step's K, the exchange, the step, rank 0's buffers.
  void distributed_step(BatchSource& source, int64_t step, int64_t batches, EpochResult& r) {
    FlatParameters& flat = model_.flatten();
    const int rank = exchange_->communicator().rank();
    const int count = static_cast<int>(std::min<int64_t>(workers_, batches - step * workers_));
    sgd_.zero_grad();
    if (rank < count) {  // the source delivers this rank's share only (train_epoch)
      Tensor images, labels;
      source.prepare(step * workers_ + rank);
      source.produce(images, labels);
      Variable logits = model_(Variable(images));
      Variable loss = cross_entropy(logits, labels);
      accumulate_metrics(logits.value(), labels, loss.value(), metrics_.sums);
      if (model_.device() == Device::CPU) last_loss_ = loss.value().data()[0];
      loss.backward();
    }
    Tensor& grads = flat.grads();
    if (grads.is_cuda()) {  // the exchange encodes on the host
      std::vector<float> host = grads.to_vector();
      exchange_->average(host.data(), int64_t(host.size()), count);
      grads.copy_from(Tensor::from_vector(host, grads.shape()));
    } else {
      exchange_->average(grads.data(), grads.numel(), count);
    }
    r.bytes_sent += exchange_->last_bytes_sent();
    sgd_.step();
    broadcast_buffers(model_, exchange_->communicator());
  }

  // Loss, correct, rows and top-5 summed over the ranks (in double: exact for counts < 2^53).
  void sum_metrics_over_ranks() {
    const std::vector<float> mine = metrics_.sums.to_vector();
    std::vector<double> all(mine.begin(), mine.end());
    exchange_->communicator().allreduce_sum(all.data(), int64_t(all.size()));
    const std::vector<float> summed(all.begin(), all.end());
    metrics_.sums.copy_from(Tensor::from_vector(summed, metrics_.sums.shape()));
  }

  // The mean of the first `count` workers' (quantized) gradients into the flat gradient.
  void average_worker_gradients(FlatParameters& flat, int count) {
    if (hook_) {
      std::vector<Tensor> grads(worker_grads_.begin(), worker_grads_.begin() + count);
      hook_->quantize_and_average(grads, flat.grads());
      return;
    }
    Tensor& mean = flat.grads();
    mean.copy_from(worker_grads_[0]);
    for (int w = 1; w < count; ++w) add_into(mean, worker_grads_[w]);
    if (count > 1) mean.copy_from(scale(mean, 1.0f / float(count)));
  }

  Module& model_;
  SGD& sgd_;
  const LRSchedule& schedule_;
  GradientQuantizationHook* hook_;
  int workers_;
  bool graph_wanted_;
  Metrics metrics_;
  std::unique_ptr<ConvWeightForms> forms_;  // declared before graph_, so destroyed after it
  CudaGraph graph_;
  const BatchSource* captured_source_ = nullptr;
  int64_t eager_steps_ = 0;
  float last_loss_ = 0;  // CPU: the last step's loss (with workers, the first non-finite one)
  std::vector<Tensor> worker_grads_;
  GradientExchange* exchange_ = nullptr;
  bool check_replicas_ = false;
};

}  // namespace qnn
