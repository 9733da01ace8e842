// Benchmark: ResNet training steps (forward, backward, SGD with momentum) on synthetic CIFAR-size
// inputs resident on the device, the same work bench/train_step_torch.py does with PyTorch. The
// step is the app's own (apps/training.h: Trainer), so on the GPU it is the captured CUDA graph
// unless --no-graph. Prints images/s after warm-up, the time of a 50,000-image epoch and, on
// the GPU, the peak memory of qnn's allocator over the run: live tensors at the worst moment of
// an eager step (like PyTorch's max_memory_allocated) and all memory held (like
// max_memory_reserved; with a graph this includes the graph's private pool). bench/cpu.sh and bench/gpu.sh
// run it beside PyTorch.
//   build/bench/train_step [--device cpu|cuda] [--arch resnet20] [--batch-size 128] [--steps 20]
//                          [--warmup 3] [--no-graph] [--no-cudnn]
#include <omp.h>

#include <chrono>
#include <cstdio>

#include "apps/flags.h"
#include "apps/training.h"
#include "nn/init.h"
#include "nn/resnet.h"
#include "tensor/allocator.h"
#include "tensor/device.h"

using namespace qnn;


int main(int argc, char** argv) {
  Flags flags("train_step", "Time ResNet training steps on synthetic 32x32 images.");
  auto& device = flags.add_string("--device", "cpu", "cpu|cuda");
  auto& arch = flags.add_string("--arch", "resnet20", "resnet20|resnet32|resnet44|resnet56|resnet110");
  auto& batch = flags.add_int("--batch-size", 128, "images per step");
  auto& steps = flags.add_int("--steps", 20, "timed steps");
  auto& warmup = flags.add_int("--warmup", 3, "untimed steps first (the GPU captures its graph in these)");
  auto& no_graph = flags.add_bool("--no-graph", "GPU: run each step eagerly");
  auto& no_cudnn = flags.add_bool("--no-cudnn", "GPU: convolution through im2col + cuBLAS");
  flags.parse(argc, argv);
  if (device != "cpu" && device != "cuda") flags.fail("bad --device '" + device + "'; valid: cpu, cuda");
  const Device dev = device == "cuda" ? Device::CUDA : Device::CPU;
  if (dev == Device::CUDA && !cuda_status().usable) {
    std::printf("train_step: skipped --device cuda: %s\n", describe_cuda(cuda_status()).c_str());
    return 0;
  }
  backend_options().cudnn = !no_cudnn;

  try {
    manual_seed(0);
    CifarResNet model(cifar_resnet_depth(arch));
    model.to(dev);
    SGD sgd(model.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, false});
    LRSchedule constant;  // multistep without milestones: lr 0.1 throughout
    Trainer trainer(model, sgd, constant, nullptr, 1, !no_graph);
    std::vector<int32_t> labels(batch);
    for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % 10);
    FixedSource source(Tensor::normal({batch, 3, 32, 32}, 0, 1, 1).to(dev), label_tensor(labels, dev));
    trainer.train_epoch(source, 0, 1, warmup);  // ends by reading the metrics: the GPU is idle after
    const auto start = std::chrono::steady_clock::now();
    const EpochResult r = trainer.train_epoch(source, 0, 1, steps);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = batch * steps / seconds;
    std::printf("qnn %s %s batch %lld %s: %.1f images/s (%.3f ms/step, %.2f s per 50k-image epoch, mean loss %.4f",
                arch.c_str(), device.c_str(), (long long)batch,
                dev == Device::CUDA ? (no_graph ? "eager" : "graph") : ("threads " + std::to_string(omp_get_max_threads())).c_str(),
                rate, 1000 * seconds / steps, 50000 / rate, r.loss);
    if (dev == Device::CUDA) {
      const AllocatorStats m = cuda_allocator_stats();
      std::printf(", peak GPU memory %.1f MiB allocated, %.1f MiB reserved, %lld of %lld steps from the graph",
                  m.peak_live_bytes / 1048576.0, m.reserved_bytes / 1048576.0, (long long)r.captured_steps,
                  (long long)r.steps);
    }
    std::printf(")\n");
  } catch (const Error& e) {
    std::fprintf(stderr, "train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
