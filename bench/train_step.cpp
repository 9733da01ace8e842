// Benchmark: ResNet training steps (forward, backward, SGD with momentum) on synthetic CIFAR-size
// inputs resident on the device, the same work bench/train_step_torch.py does with PyTorch. The
// step is the app's own (train/trainer.h: Trainer), so on the GPU it is the captured CUDA graph
// unless --no-graph. Prints images/s after warm-up, the time of a 50,000-image epoch and, on
// the GPU, the memory of qnn's allocator: the most its live tensors held during the timed steps
// (like PyTorch's max_memory_allocated after reset_peak_memory_stats; the warm-up, with cuDNN's
// algorithm search, is not counted) and all memory it holds at the end (like max_memory_reserved;
// with a graph this includes the graph's private pool). A replayed graph allocates nothing: its
// temporaries live in memory the allocator keeps for it (tensor/allocator.h: graph_cached_bytes),
// which neither qnn's "allocated" nor PyTorch's counts, so with a graph the line adds it; the
// eager runs, or the reserved figures, compare like with like. bench/cpu.sh and bench/gpu.sh run
// it beside PyTorch.
//
// --quant A,B,...: what the gradient quantization hook costs inside the training step. Each
// round times the unquantized step, then the step with each scheme's hook on the flat gradient,
// configured as ./apps/cifar configures it (network-wide buckets, variance recorded); the rounds
// alternate so that the machine's drift reaches every configuration alike. Per scheme it prints
// the best (and median) over the rounds of: on the CPU, the time spent in the hook per step
// (a clock around its apply() inside the step) and its share of the step without it; on the GPU,
// where apply() only enqueues work (and a graph replays it), the step's time less the
// unquantized step's. Both also print the quantized step's time; on the CPU the difference of
// two steps is within the machine's noise (several ms), hence the clock.
//
// --qat METHOD [--weight-bits 4] [--act-bits 4]: the quantization-aware training step instead
// (the QAT ResNet of nn/qat_resnet.h, run eagerly as ./apps/cifar runs it); compare its images/s
// with a run without --qat for the cost of fake quantization.
//   build/bench/train_step [--device cpu|cuda] [--arch resnet20] [--batch-size 128] [--steps 20]
//                          [--warmup 3] [--no-graph] [--no-cudnn] [--channels-last [--kcrs-filters]]
//                          [--qat lsq --weight-bits 4 --act-bits 4 [--fold-bn]]
//                          [--quant LIST [--bucket-size 512] [--quant-levels 16] [--rounds 3]]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "train/flags.h"
#include "train/precision.h"
#include "train/trainer.h"
#include "nn/init.h"
#include "nn/qat_resnet.h"
#include "nn/resnet.h"
#include "quant/hook.h"
#include "quant/quantizer.h"
#include "tensor/allocator.h"
#include "tensor/device.h"

using namespace qnn;

namespace {

struct Timing {
  double ms_per_step = 0;
  double hook_ms_per_step = 0;  // CPU: time inside the hook's apply()
  size_t graph_nodes = 0;       // GPU: nodes in the captured step's graph
  int64_t peak_live_bytes = 0;  // GPU: the most the allocator's live tensors held in the timed steps
  int64_t graph_cached_bytes = 0;  // GPU: kept for the replays' temporaries
  EpochResult result;
};

// `warmup` untimed steps (the GPU captures its graph there), then `steps` timed ones. `hook_ms`
// is what the hook's clock adds up (reset here after the warm-up).
Timing time_steps(Module& model, SGD& sgd, GradientQuantizationHook* hook, double& hook_ms, BatchSource& source,
                  bool graph, int64_t warmup, int64_t steps) {
  LRSchedule constant;  // multistep without milestones: lr 0.1 throughout
  Trainer trainer(model, sgd, constant, hook, 1, graph);
  trainer.train_epoch(source, 0, 1, warmup);  // ends by reading the metrics: the GPU is idle after
  hook_ms = 0;
  const bool gpu = model.device() == Device::CUDA;
  if (gpu) cuda_reset_peak();  // the step's memory, not the warm-up's (cuDNN's algorithm search)
  const auto start = std::chrono::steady_clock::now();
  Timing t;
  profiler_start();  // a profiler run with --profile-from-start off sees the timed steps alone
  t.result = trainer.train_epoch(source, 0, 1, steps);
  profiler_stop();
  t.ms_per_step = 1000 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / steps;
  t.hook_ms_per_step = hook_ms / steps;
  t.graph_nodes = trainer.graph_nodes();
  if (gpu) {
    const AllocatorStats m = cuda_allocator_stats();
    t.peak_live_bytes = m.peak_live_bytes;
    t.graph_cached_bytes = m.graph_cached_bytes;
  }
  return t;
}

// The best and the median over the rounds of one figure of a Timing.
double best_of(const std::vector<Timing>& runs, double Timing::*figure) {
  double best = 1e300;
  for (const Timing& t : runs) best = std::min(best, t.*figure);
  return best;
}

double median_of(const std::vector<Timing>& runs, double Timing::*figure) {
  std::vector<double> v;
  for (const Timing& t : runs) v.push_back(t.*figure);
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags("train_step", "Time ResNet training steps on synthetic 32x32 images.");
  auto& device = flags.add_string("--device", "cpu", "cpu|cuda");
  auto& arch = flags.add_string("--arch", "resnet20", "resnet20|resnet32|resnet44|resnet56|resnet110");
  auto& batch = flags.add_int("--batch-size", 128, "images per step");
  auto& steps = flags.add_int("--steps", 20, "timed steps");
  auto& warmup = flags.add_int("--warmup", 3, "untimed steps first (the GPU captures its graph in these)");
  auto& no_graph = flags.add_bool("--no-graph", "GPU: run each step eagerly");
  auto& no_cudnn = flags.add_bool("--no-cudnn", "GPU: convolution through im2col + cuBLAS");
  auto& channels_last = flags.add_bool("--channels-last", "GPU: activations stored channels-last (NHWC)");
  auto& kcrs_filters = flags.add_bool("--kcrs-filters", "--channels-last: cuDNN takes the [O, C, KH, KW] weights as they are, not a KRSC copy");
  auto& precision = add_precision_flag(flags);
  auto& quant = flags.add_string("--quant", "", "comma-separated schemes whose hook is timed inside the step, e.g. standard,smart");
  auto& bucket_size = flags.add_int("--bucket-size", 512, "--quant: bucket size (coordinates)");
  auto& quant_levels = flags.add_int("--quant-levels", 16, "--quant: levels");
  auto& rounds = flags.add_int("--rounds", 3, "--quant: rounds over all configurations (best and median reported)");
  auto& qat = flags.add_string("--qat", "none", "time the QAT step: none|linear|lsq|pact|dorefa|wrpn");
  auto& weight_bits = flags.add_int("--weight-bits", 4, "--qat: weight bits", 2, 8);
  auto& act_bits = flags.add_int("--act-bits", 4, "--qat: activation bits", 2, 8);
  auto& fold_bn = flags.add_bool("--fold-bn", "--qat linear|lsq: batch norms folded into the convolutions");
  flags.parse(argc, argv);
  QatSpec spec;
  try {
    spec.method = parse_qat_method(qat);
  } catch (const Error&) {
    flags.fail("bad --qat '" + qat + "'; valid: none, linear, lsq, pact, dorefa, wrpn");
  }
  spec.weight_bits = int(weight_bits);
  spec.act_bits = int(act_bits);
  spec.fold_bn = fold_bn;
  if (fold_bn && spec.method != QatMethod::Linear && spec.method != QatMethod::Lsq)
    flags.fail("--fold-bn folds batch norms into --qat linear or lsq convolutions; --qat is " + qat);
  if (steps < 1) flags.fail("--steps must be at least 1, got " + std::to_string(steps));
  if (rounds < 1) flags.fail("--rounds must be at least 1, got " + std::to_string(rounds));
  const std::vector<std::string> schemes = split_commas(quant);
  QuantizerOptions quant_options;
  quant_options.bucket_size = bucket_size;
  try {
    quant_options.levels = checked_int_option("--quant-levels", quant_levels, 2, kMaxLevels);
  } catch (const Error& e) {
    flags.fail(e.what());
  }
  for (const std::string& name : schemes) {
    std::unique_ptr<GradientQuantizer> probe;
    try {
      probe = make_quantizer(name, quant_options);
    } catch (const Error& e) {
      const std::string what = e.what();  // "[make_quantizer] unknown quantizer ..."
      flags.fail("--quant: " + what.substr(what.find("] ") == std::string::npos ? 0 : what.find("] ") + 2));
    }
    if (!probe) flags.fail("--quant: the unquantized step is always timed; list schemes only, got 'none'");
  }
  if (device != "cpu" && device != "cuda") flags.fail("bad --device '" + device + "'; valid: cpu, cuda");
  const Device dev = device == "cuda" ? Device::CUDA : Device::CPU;
  if (dev == Device::CUDA && !cuda_status().usable) {
    std::printf("train_step: skipped --device cuda: %s\n", describe_cuda(cuda_status()).c_str());
    return 0;
  }
  apply_precision_flag(flags, precision);
  if (precision == "bf16" && dev == Device::CUDA && spec.method != QatMethod::None)
    flags.fail("--precision bf16 on the GPU takes the float ResNets; --qat needs --precision fp32 there");
  if (channels_last && dev != Device::CUDA) flags.fail("--channels-last is a layout of GPU activations; add --device cuda");
  backend_options().cudnn = !no_cudnn;
  backend_options().channels_last = channels_last;
  if (kcrs_filters && !channels_last) flags.fail("--kcrs-filters is a filter layout beside --channels-last images; add --channels-last");
  backend_options().krsc_filters = !kcrs_filters;

  try {
    manual_seed(0);
    std::unique_ptr<Module> built;
    if (spec.method == QatMethod::None) built = std::make_unique<CifarResNet>(cifar_resnet_depth(arch));
    else built = std::make_unique<QatCifarResNet>(cifar_resnet_depth(arch), spec);
    Module& model = *built;
    model.to(dev);
    SGD sgd(model.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, false});
    std::vector<int32_t> labels(batch);
    for (int64_t i = 0; i < batch; ++i) labels[i] = static_cast<int32_t>(i % 10);
    // Channels-last images come as ./apps/cifar's batch gather writes them, NHWC (the NCHW
    // original is not kept, as PyTorch's peer does not keep it).
    Tensor images = Tensor::normal({batch, 3, 32, 32}, 0, 1, 1).to(dev);
    if (channels_last) images = images.channels_last();
    FixedSource source(images, label_tensor(labels, dev));

    // Round by round: the unquantized step (configuration 0), then each scheme's.
    const size_t configurations = 1 + schemes.size();
    const int64_t repeats = schemes.empty() ? 1 : rounds;
    std::vector<std::vector<Timing>> runs(configurations);
    FlatParameters& flat = model.flatten();
    double hook_ms = 0;
    for (int64_t round = 0; round < repeats; ++round) {
      for (size_t c = 0; c < configurations; ++c) {
        std::unique_ptr<GradientQuantizationHook> hook;
        if (c > 0) {
          HookOptions options;
          options.record_variance = true;  // as ./apps/cifar does
          hook = std::make_unique<GradientQuantizationHook>(make_quantizer(schemes[c - 1], quant_options), options);
          if (dev == Device::CUDA) {
            hook->install(flat);
          } else {  // what install() does, with a clock around apply()
            std::vector<int64_t> sizes;
            for (const Variable& p : flat.leaves()) sizes.push_back(p.numel());
            hook->set_layer_sizes(sizes);
            GradientQuantizationHook* h = hook.get();
            flat.add_grad_hook([h, &hook_ms](Tensor& grad) {
              const auto start = std::chrono::steady_clock::now();
              h->apply(grad);
              hook_ms += 1000 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            });
          }
        }
        const bool graph = !no_graph && spec.method == QatMethod::None;  // QAT steps run eagerly
        runs[c].push_back(time_steps(model, sgd, hook.get(), hook_ms, source, graph, warmup, steps));
        flat.clear_grad_hooks();
      }
    }
    const auto step_ms = &Timing::ms_per_step, in_hook_ms = &Timing::hook_ms_per_step;

    // The step without the hook. On the CPU every run measures it (its step less the time in its
    // hook), so the best of all of them is taken: the unquantized runs alone are too few against
    // the machine's drift. On the GPU only the unquantized runs do.
    double base_ms = best_of(runs[0], step_ms);
    if (dev == Device::CPU)
      for (const std::vector<Timing>& config : runs)
        for (const Timing& t : config) base_ms = std::min(base_ms, t.ms_per_step - t.hook_ms_per_step);
    const double rate = batch * 1000.0 / base_ms;
    const EpochResult& base = runs[0].back().result;
    if (spec.method != QatMethod::None) std::printf("qat %s: ", spec.describe().c_str());
    std::printf("qnn %s %s%s batch %lld %s: %.1f images/s (%.3f ms/step, %.2f s per 50k-image epoch, mean loss %.4f",
                arch.c_str(), device.c_str(), precision == "bf16" ? " bf16" : "", (long long)batch,
                dev == Device::CUDA ? (std::string(no_graph ? "eager" : "graph") + (channels_last ? " channels-last" : "") +
                                     (kcrs_filters ? " kcrs-filters" : "")).c_str()
                                    : ("threads " + std::to_string(omp_get_max_threads())).c_str(),
                rate, base_ms, 50000 / rate, base.loss);
    if (dev == Device::CUDA) {
      const AllocatorStats m = cuda_allocator_stats();
      const Timing& last = runs[0].back();
      std::printf(", peak GPU memory %.1f MiB allocated", last.peak_live_bytes / 1048576.0);
      if (base.captured_steps > 0) std::printf(" + %.1f MiB the graph's temporaries", last.graph_cached_bytes / 1048576.0);
      std::printf(", %.1f MiB reserved, %lld of %lld steps from the graph", m.reserved_bytes / 1048576.0,
                  (long long)base.captured_steps, (long long)base.steps);
      if (base.captured_steps > 0) std::printf(" of %zu nodes", runs[0].back().graph_nodes);
    }
    std::printf(")\n");
    if (!schemes.empty())
      std::printf("the hooks, best of %lld rounds [median]; the step without a hook %.3f ms (%s)\n", (long long)repeats,
                  base_ms,
                  dev == Device::CUDA ? "the best unquantized step; a hook's cost is its step's time less that one"
                                      : "the best step less its hook time over all runs; a hook's cost is the time inside its apply()");
    for (size_t c = 1; c < configurations; ++c) {
      const EpochResult& r = runs[c].back().result;
      const double ms = best_of(runs[c], step_ms);
      const double cost = dev == Device::CUDA ? ms - base_ms : best_of(runs[c], in_hook_ms);
      std::printf("hook %-11s bucket %lld levels %lld: %.3f ms", schemes[c - 1].c_str(), (long long)bucket_size,
                  (long long)quant_levels, cost);
      if (dev == Device::CPU) std::printf(" [%.3f]", median_of(runs[c], in_hook_ms));
      std::printf(" = %.1f%% of the step without it (%.2f GB/s of gradient); step %.3f ms [%.3f]; %.3f bits/coordinate, "
                  "variance %.4g, %lld of %lld steps from the graph\n",
                  100 * cost / base_ms, 4e-6 * double(flat.numel()) / cost, ms, median_of(runs[c], step_ms),
                  r.bits_per_coordinate, r.mean_variance, (long long)r.captured_steps, (long long)r.steps);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "train_step: %s\n", e.what());
    return 1;
  }
  return 0;
}
