// Benchmark: one training or inference step of torchvision's ImageNet ResNets (nn/resnet_imagenet.h:
// ResNet-18, -34 or -50, 1000 classes) on a synthetic batch of 224x224 images and labels held in
// memory, the same work bench/imagenet_step_torch.py does with PyTorch; bench/imagenet_cpu.sh
// runs the two alternately.
//   --mode train: forward, cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-4
//     at the learning rate 0.1 x batch / 256 (the linear scaling rule of Goyal et al., 2017;
//     --lr sets another: at 0.1 a batch of 16 drives ResNet-50's loss far above ln(1000)),
//     through the apps' own step (train/trainer.h: Trainer over a FixedSource); eager on the
//     CPU, the captured CUDA graph on the GPU unless --no-graph.
//   --mode infer: eval mode (batch-norm running statistics), no autograd graph, forward only.
// Each timed step is clocked on its own (after `--warmup` untimed ones); the line printed gives
// the mean images/s and ms/step, the fastest step, the threads (omp_get_max_threads) and the
// peak of qnn's allocator over the timed steps: live tensors at the worst moment, weights,
// momentum and the batch included.
//   build/bench/imagenet_step [--arch resnet18|resnet34|resnet50] [--mode train|infer]
//                             [--batch-size 32] [--image-size 224] [--steps 10] [--warmup 3]
//                             [--lr X] [--device cpu|cuda] [--no-graph]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "nn/init.h"
#include "nn/resnet_imagenet.h"
#include "tensor/allocator.h"
#include "tensor/device.h"
#include "train/flags.h"
#include "train/precision.h"
#include "train/trainer.h"

using namespace qnn;

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return 1000 * std::chrono::duration<double>(Clock::now() - start).count();
}

// The milliseconds of each of `steps` timed steps of `step` after `warmup` untimed ones; the
// allocator's peak is reset between the two. `step` leaves the device idle when it returns.
template <class Step>
std::vector<double> time_steps(Device device, int64_t warmup, int64_t steps, Step step) {
  for (int64_t i = 0; i < warmup; ++i) step();
  if (device == Device::CUDA) cuda_reset_peak();
  else cpu_reset_peak();
  std::vector<double> ms;
  for (int64_t i = 0; i < steps; ++i) {
    const auto start = Clock::now();
    step();
    ms.push_back(ms_since(start));
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags("imagenet_step", "Time ImageNet ResNet training or inference steps on a synthetic batch.");
  auto& device = flags.add_string("--device", "cpu", "cpu|cuda");
  auto& arch = flags.add_string("--arch", "resnet18", "resnet18|resnet34|resnet50");
  auto& mode = flags.add_string("--mode", "train", "train (forward, loss, backward, SGD) | infer (eval mode, forward only)");
  auto& batch = flags.add_int("--batch-size", 32, "images per step", 1);
  auto& image_size = flags.add_int("--image-size", 224, "image height and width", 32);
  auto& steps = flags.add_int("--steps", 10, "timed steps", 1);
  auto& warmup = flags.add_int("--warmup", 3, "untimed steps first (the GPU captures its graph in the third)", 0);
  auto& lr = flags.add_float("--lr", 0, "train: learning rate; 0: 0.1 * batch / 256", 0);
  auto& no_graph = flags.add_bool("--no-graph", "GPU, train: run each step eagerly");
  auto& precision = add_precision_flag(flags);
  flags.parse(argc, argv);
  if (device != "cpu" && device != "cuda") flags.fail("bad --device '" + device + "'; valid: cpu, cuda");
  if (mode != "train" && mode != "infer") flags.fail("bad --mode '" + mode + "'; valid: train, infer");
  apply_precision_flag(flags, precision);
  const Device dev = device == "cuda" ? Device::CUDA : Device::CPU;
  if (dev == Device::CUDA && !cuda_status().usable) {
    std::printf("imagenet_step: skipped --device cuda: %s\n", describe_cuda(cuda_status()).c_str());
    return 0;
  }

  try {
    manual_seed(0);
    std::shared_ptr<ImageNetResNet> model;
    try {
      model = make_imagenet_resnet(arch, 1000);
    } catch (const Error& e) {
      flags.fail(e.what());
    }
    model->to(dev);
    std::vector<int32_t> labels(batch);
    for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % 1000);
    FixedSource source(Tensor::normal({batch, 3, image_size, image_size}, 0, 1, 1).to(dev), label_tensor(labels, dev));

    std::vector<double> ms;
    double loss = 0;
    if (mode == "train") {
      const float rate = lr > 0 ? float(lr) : 0.1f * float(batch) / 256;
      SGD sgd(model->flatten(), {rate, 0.9f, 0.0f, 1e-4f, false});
      LRSchedule constant;  // multistep without milestones: the same rate throughout
      constant.base_lr = rate;
      Trainer trainer(*model, sgd, constant, nullptr, 1, !no_graph);
      // One step per train_epoch call: it ends by reading the metrics, so the device is idle.
      ms = time_steps(dev, warmup, steps, [&] { loss = trainer.train_epoch(source, 0, 1, 1).loss; });
    } else {
      model->eval();
      NoGradGuard no_grad;
      Tensor images, targets;
      source.produce(images, targets);
      ms = time_steps(dev, warmup, steps, [&] {
        Variable logits = (*model)(Variable(images));
        synchronize(dev);
      });
    }

    double total = 0;
    for (double m : ms) total += m;
    const double mean_ms = total / double(ms.size());
    const double best_ms = *std::min_element(ms.begin(), ms.end());
    const AllocatorStats memory = dev == Device::CUDA ? cuda_allocator_stats() : cpu_allocator_stats();
    std::printf("qnn %s %s%s %s batch %lld image %lld %s: %.2f images/s (%.1f ms/step, fastest %.1f ms, "
                "peak %s memory %.1f MiB allocated",
                arch.c_str(), device.c_str(), precision == "bf16" ? " bf16" : "", mode.c_str(), (long long)batch, (long long)image_size,
                dev == Device::CUDA ? (no_graph || mode == "infer" ? "eager" : "graph")
                                    : ("threads " + std::to_string(omp_get_max_threads())).c_str(),
                batch * 1000.0 / mean_ms, mean_ms, best_ms, dev == Device::CUDA ? "GPU" : "CPU",
                memory.peak_live_bytes / 1048576.0);
    if (mode == "train") std::printf(", last loss %.4f", loss);
    std::printf(")\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "imagenet_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
