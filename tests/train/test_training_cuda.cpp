// The training step on the GPU against the CPU: three full steps of a small ResNet (forward,
// backward, SGD with momentum and weight decay) from the same initial weights and batch give
// matching losses and parameters; and the captured CUDA-graph step gives exactly the losses of
// the eager step; a batch gather captured once keeps giving the resident source's batches in
// later epochs. The same with channels-last activations on the GPU (docs/channels-last.md), and
// with bf16 activations (docs/bf16.md), which follow the CPU's float steps to bf16's precision.
// Also runs on the CPU-only path: Module::to and the device-agnostic trainer.
#include <doctest.h>

#include <vector>

#include "train/trainer.h"
#include "nn/init.h"
#include "nn/resnet.h"
#include "quant/device_quantizer.h"
#include "tensor/cuda_graph.h"
#include "tests/data/synthetic_cifar.h"
#include "tensor/allocator.h"
#include "tests/gpu.h"
#include "tests/graph_values.h"

using namespace qnn;

namespace {

struct Run {
  std::vector<float> losses;
  std::vector<float> parameters;
  double variance = 0;      // the hook's variance total over the run (with a scheme)
  int64_t late_allocations = 0;  // cudaMalloc calls during the last half of the steps
  int64_t quant_step = 0;   // the hook's host step and, on the GPU, its device step
  int64_t device_step = 0;
};

// `steps` training steps of ResNet-8 on a fixed batch of 16 images, one epoch of `steps` steps
// per call of train_epoch so that each step's loss can be read; with `scheme`, the gradient is
// quantized by an installed hook (recording the variance).
Run train(Device device, int steps, bool graph, const char* scheme = nullptr) {
  manual_seed(3);
  CifarResNet model(8);
  model.to(device);
  SGD sgd(model.flatten(), {0.05f, 0.9f, 0.0f, 5e-4f, false});
  LRSchedule constant;
  constant.base_lr = 0.05f;
  std::unique_ptr<GradientQuantizationHook> hook;
  if (scheme) {
    HookOptions options;
    options.seed = 9;
    options.record_variance = true;
    hook = std::make_unique<GradientQuantizationHook>(make_quantizer(scheme, QuantizerOptions{}), options);
    hook->install(model.flatten());
  }
  Trainer trainer(model, sgd, constant, hook.get(), 1, graph);
  std::vector<int32_t> labels(16);
  for (int i = 0; i < 16; ++i) labels[i] = (i * 7) % 10;
  FixedSource source(Tensor::normal({16, 3, 16, 16}, 0, 1, 42).to(device), label_tensor(labels, device));
  Run run;
  int64_t allocations_at_half = 0;
  for (int s = 0; s < steps; ++s) {
    if (s == steps / 2) allocations_at_half = cuda_allocator_stats().system_allocations;
    const EpochResult r = trainer.train_epoch(source, 0, 1, 1);
    run.losses.push_back(float(r.loss));
    run.variance += r.mean_variance;
  }
  run.late_allocations = cuda_allocator_stats().system_allocations - allocations_at_half;
  run.parameters = model.flatten().values().to_vector();
  if (hook) {
    run.quant_step = hook->step();
    run.device_step = hook->device_step() ? hook->device_step()->read() : hook->step();
    model.flatten().clear_grad_hooks();
  }
  return run;
}

}  // namespace

TEST_CASE("training step: the device-agnostic trainer learns a fixed batch on the CPU") {
  const Run cpu = train(Device::CPU, 6, true);  // `graph` is ignored on the CPU
  CHECK(cpu.losses.back() < cpu.losses.front());
  const Run quantized = train(Device::CPU, 2, true, "standard");
  CHECK(quantized.quant_step == 2);
  CHECK(quantized.variance > 0);
}

// Sums in other orders (cuDNN, cuBLAS, reductions) differ by float rounding, which three steps
// of SGD amplify a little: 1e-3 relative on the losses, 1e-3 absolute on parameters of order 0.1-1.
void check_close(const Run& gpu, const Run& cpu) {
  for (int s = 0; s < 3; ++s) CHECK(gpu.losses[s] == doctest::Approx(cpu.losses[s]).epsilon(1e-3));
  double worst = 0;
  for (size_t i = 0; i < cpu.parameters.size(); ++i)
    worst = std::max(worst, double(std::fabs(cpu.parameters[i] - gpu.parameters[i])));
  CHECK(worst < 1e-3);
}

GPU_TEST_CASE("training step: three ResNet-8 steps on the GPU match the CPU") {
  testing::NoTF32 no_tf32;
  check_close(train(Device::CUDA, 3, false), train(Device::CPU, 3, false));
}

GPU_TEST_CASE("training step: three channels-last ResNet-8 steps on the GPU match the CPU") {
  testing::NoTF32 no_tf32;
  const Run cpu = train(Device::CPU, 3, false);
  testing::ChannelsLast channels_last;
  check_close(train(Device::CUDA, 3, false), cpu);
  check_close(train(Device::CUDA, 3, true), cpu);
}

GPU_TEST_CASE("training step: replaying the captured CUDA graph gives the eager losses exactly") {
  struct Deterministic {
    Deterministic() { backend_options().deterministic = true; }
    ~Deterministic() { backend_options().deterministic = false; }
  } deterministic;
  const Run eager = train(Device::CUDA, 6, false), graph = train(Device::CUDA, 6, true);
  CHECK(graph.losses == eager.losses);
  CHECK(graph.parameters == eager.parameters);
  testing::ChannelsLast channels_last;
  const Run eager_cl = train(Device::CUDA, 6, false), graph_cl = train(Device::CUDA, 6, true);
  CHECK(graph_cl.losses == eager_cl.losses);
  CHECK(graph_cl.parameters == eager_cl.parameters);
}

GPU_TEST_CASE("training step: a captured batch gather follows the resident source into later epochs") {
  // The gather is captured in epoch 0 and replayed in epochs 0..2: every replay must give the
  // batch the CPU source (the Loader's batches, bit for bit) gives for that epoch and number,
  // so each epoch's shuffled order must reach the address the graph read at capture.
  const ImageDataset dataset = testing::synthetic_dataset(40);
  LoaderConfig config;
  config.batch_size = 16;
  config.shuffle = config.augment = true;
  config.seed = 5;
  ResidentSource gpu(dataset, config, Device::CUDA), cpu(dataset, config, Device::CPU);
  Tensor images({16, 3, 32, 32}, Device::CUDA), labels({16}, Device::CUDA);
  CudaGraph graph;
  gpu.start_epoch(0);
  gpu.prepare(0);
  graph.capture([&] {
    Tensor batch_images, batch_labels;
    gpu.produce(batch_images, batch_labels);
    images.copy_from(batch_images);
    labels.copy_from(batch_labels);
  });
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    gpu.start_epoch(epoch);
    cpu.start_epoch(epoch);
    for (int64_t number = 0; number < 2; ++number) {  // the two full batches of 40 images
      CAPTURE(epoch);
      CAPTURE(number);
      gpu.prepare(number);
      graph.replay();
      cpu.prepare(number);
      Tensor expected_images, expected_labels;
      cpu.produce(expected_images, expected_labels);
      CHECK(images.to_vector() == expected_images.to_vector());
      CHECK(labels.to_vector() == expected_labels.to_vector());
    }
  }
}

GPU_TEST_CASE("training step: a captured step with a quantization hook replays the eager run exactly") {
  // The hook's step lives in device memory and advances inside the graph; the variance total
  // accumulates there too. Replays must draw each step's own randomness, as the eager run does.
  struct Deterministic {
    Deterministic() { backend_options().deterministic = true; }
    ~Deterministic() { backend_options().deterministic = false; }
  } deterministic;
  const Run eager = train(Device::CUDA, 6, false, "standard"), graph = train(Device::CUDA, 6, true, "standard");
  CHECK(graph.losses == eager.losses);
  CHECK(graph.parameters == eager.parameters);
  CHECK(graph.variance == eager.variance);
  CHECK(graph.quant_step == 6);
  CHECK(graph.device_step == 6);
  CHECK(eager.device_step == 6);
}

GPU_TEST_CASE("training step: the steady state asks the GPU for no memory, eager or captured") {
  // After the first steps every tensor of a step comes from the caching allocator's cache (and
  // a captured graph allocates nothing at all): no cudaMalloc, so addresses stay put.
  CHECK(train(Device::CUDA, 8, false).late_allocations == 0);
  CHECK(train(Device::CUDA, 8, true).late_allocations == 0);
  testing::ChannelsLast channels_last;
  CHECK(train(Device::CUDA, 8, false).late_allocations == 0);
  CHECK(train(Device::CUDA, 8, true).late_allocations == 0);
}

namespace {

// The element types of the 4-D values of the autograd graph that ends at `out` (leaves excepted).
struct TypeCount {
  int bf16 = 0, f32 = 0;
};
TypeCount count_types(const Variable& out) {
  TypeCount count;
  testing::for_each_activation(out, [&](const Tensor& v) { ++(v.is_bf16() ? count.bf16 : count.f32); });
  return count;
}

// bf16 activations round every conv and batch-norm output to 8 significant bits (2^-9 relative
// on average), which three steps carry into the loss and the parameters: 2% of the loss and 1e-2
// on parameters of order 0.1-1 hold them, while a wrong kernel is off by far more.
void check_bf16_close(const Run& gpu, const Run& cpu) {
  for (int s = 0; s < 3; ++s) CHECK(gpu.losses[s] == doctest::Approx(cpu.losses[s]).epsilon(2e-2));
  double worst = 0;
  for (size_t i = 0; i < cpu.parameters.size(); ++i)
    worst = std::max(worst, double(std::fabs(cpu.parameters[i] - gpu.parameters[i])));
  CHECK(worst < 1e-2);
  MESSAGE("bf16 steps against the CPU's float steps: losses ", gpu.losses[2], " and ", cpu.losses[2],
          ", largest parameter difference ", worst);
}

}  // namespace

GPU_TEST_CASE("training step: bf16 activations from the first convolution to the pooling") {
  manual_seed(3);
  CifarResNet model(8);
  model.to(Device::CUDA);
  const Variable x(Tensor::normal({2, 3, 8, 8}, 0, 1, 5).to(Device::CUDA));
  testing::Bf16 bf16;
  const Variable logits = model.forward(x);
  CHECK(!logits.value().is_bf16());
  const TypeCount types = count_types(logits);
  // Every conv (7), batch norm (7) and option-A shortcut (2) of ResNet-8; the input's conversion
  // sends no gradient (the images need none), so the graph keeps it as a leaf.
  CHECK(types.bf16 == 16);
  CHECK(types.f32 == 0);
}

GPU_TEST_CASE("training step: three bf16 ResNet-8 steps on the GPU follow the CPU's float steps") {
  const Run cpu = train(Device::CPU, 3, false);  // before the switch, which also affects CPU convolutions
  const Run fp32 = train(Device::CUDA, 3, false);
  testing::Bf16 bf16;
  const Run eager = train(Device::CUDA, 3, false);
  check_bf16_close(eager, cpu);
  CHECK(eager.parameters != fp32.parameters);  // the activations were rounded
  check_bf16_close(train(Device::CUDA, 3, true), cpu);
  testing::ChannelsLast channels_last;
  check_bf16_close(train(Device::CUDA, 3, false), cpu);
  check_bf16_close(train(Device::CUDA, 3, true), cpu);
}

GPU_TEST_CASE("training step: a captured bf16 step replays the eager one exactly, allocating nothing") {
  struct Deterministic {
    Deterministic() { backend_options().deterministic = true; }
    ~Deterministic() { backend_options().deterministic = false; }
  } deterministic;
  testing::Bf16 bf16;
  for (bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    const bool saved = backend_options().channels_last;
    backend_options().channels_last = channels_last;
    const Run eager = train(Device::CUDA, 8, false), graph = train(Device::CUDA, 8, true);
    CHECK(graph.losses == eager.losses);
    CHECK(graph.parameters == eager.parameters);
    CHECK(eager.late_allocations == 0);
    CHECK(graph.late_allocations == 0);
    backend_options().channels_last = saved;
  }
}

namespace {

// train()'s steps without the trainer: a plain loop, whose convolutions convert their weights and
// add their weight gradients one by one (no ConvWeightForms scope).
Run train_by_hand(int steps) {
  manual_seed(3);
  CifarResNet model(8);
  model.to(Device::CUDA);
  model.train();
  SGD sgd(model.flatten(), {0.05f, 0.9f, 0.0f, 5e-4f, false});
  std::vector<int32_t> labels(16);
  for (int i = 0; i < 16; ++i) labels[i] = (i * 7) % 10;
  const Tensor images = Tensor::normal({16, 3, 16, 16}, 0, 1, 42).to(Device::CUDA);
  const Tensor label_values = label_tensor(labels, Device::CUDA);
  Run run;
  for (int s = 0; s < steps; ++s) {
    sgd.zero_grad();
    Variable loss = cross_entropy(model(Variable(images)), label_values);
    loss.backward();
    sgd.step();
    run.losses.push_back(loss.value().item());
  }
  run.parameters = model.flatten().values().to_vector();
  return run;
}

}  // namespace

GPU_TEST_CASE("training step: the trainer's one refresh and one fold of the weights' forms give the by-hand steps") {
  // The trainer's step keeps the convolution weights' forms (bf16, KRSC) in one buffer refreshed
  // at its start, and folds their gradients back in one kernel (autograd/conv_weight_forms.h); a
  // plain loop converts and adds per convolution. Same roundings, same order: the same steps.
  struct Deterministic {
    Deterministic() { backend_options().deterministic = true; }
    ~Deterministic() { backend_options().deterministic = false; }
  } deterministic;
  for (int mode = 0; mode < 3; ++mode) {
    const bool bf16 = mode > 0, channels_last = mode != 1;
    CAPTURE(bf16);
    CAPTURE(channels_last);
    const BackendOptions saved = backend_options();
    backend_options().bf16 = bf16;
    backend_options().channels_last = channels_last;
    const Run by_hand = train_by_hand(3);
    for (bool graph : {false, true}) {
      CAPTURE(graph);
      const Run trained = train(Device::CUDA, 3, graph);
      double worst = 0;
      for (size_t i = 0; i < by_hand.parameters.size(); ++i)
        worst = std::max(worst, double(std::fabs(by_hand.parameters[i] - trained.parameters[i])));
      CHECK(worst <= 1e-6);
      for (int s = 0; s < 3; ++s) CHECK(trained.losses[s] == doctest::Approx(by_hand.losses[s]).epsilon(1e-6));
    }
    backend_options() = saved;
  }
}
