// Benchmark: ResNet training steps (forward, backward, SGD with momentum) on synthetic CIFAR-size
// inputs, the same work as bench/train_step_torch.py does with PyTorch. Prints images/s after
// warm-up. Run both through bench/cpu.sh, which adds peak memory and the ratio.
//   build/bench/train_step [--arch resnet20] [--batch-size 128] [--steps 20] [--warmup 3]
#include <omp.h>

#include <chrono>
#include <cstdio>

#include "apps/flags.h"
#include "nn/init.h"
#include "nn/resnet.h"
#include "optim/sgd.h"

using namespace qnn;

int main(int argc, char** argv) {
  Flags flags("train_step", "Time ResNet training steps on synthetic 32x32 images.");
  auto& arch = flags.add_string("--arch", "resnet20", "resnet20|resnet32|resnet44|resnet56|resnet110");
  auto& batch = flags.add_int("--batch-size", 128, "images per step");
  auto& steps = flags.add_int("--steps", 20, "timed steps");
  auto& warmup = flags.add_int("--warmup", 3, "untimed steps first");
  flags.parse(argc, argv);

  manual_seed(0);
  CifarResNet model(cifar_resnet_depth(arch));
  SGD sgd(model.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, false});
  Variable x(Tensor::normal({batch, 3, 32, 32}, 0, 1, 1));
  std::vector<int32_t> labels(batch);
  for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % 10);

  auto step = [&] {
    Variable loss = cross_entropy(model(x), labels);
    sgd.zero_grad();
    loss.backward();
    sgd.step();
    return loss.value().item();
  };
  for (int64_t i = 0; i < warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  float last = 0;
  for (int64_t i = 0; i < steps; ++i) last = step();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("qnn %s batch %lld threads %d: %.1f images/s (%.1f ms/step, last loss %.4f)\n", arch.c_str(),
              (long long)batch, omp_get_max_threads(), batch * steps / seconds, 1000 * seconds / steps, last);
  return 0;
}
