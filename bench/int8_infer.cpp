// Benchmark: ResNet-20 inference on the CPU, qnn's integer engine (qinfer/int_resnet.h, u8 x s8
// with AVX-512 VNNI) against qnn's float model (nn/resnet.h, evaluation mode, no gradients) in
// one process, at each batch size, the two alternating round by round so that the machine's
// drift reaches both alike; prints the best round's images/s and the ratio. Both take the same
// normalised float images [N, 3, 32, 32] (the int8 time includes mapping them back to pixels).
// bench/int8_infer_torch.py is the PyTorch peer (int8 FX graph mode PTQ, onednn; fp32) and
// bench/int8_cpu.sh runs both.
//
// The model: --model EXPORT (a QAT export, docs/qat-export.md), else a ResNet-20 with random
// weights quantized to linear W8A8, or LSQ with --weight-bits B < 8 and 8-bit activations
// (calibrated on random images, exported to a temporary file); --weights s8 unpacks 4-bit
// weights at load instead of keeping them two per byte;
// the float model has random weights (speed does not depend on the values).
//   build/bench/int8_infer [--model EXPORT] [--batch-sizes 1,128] [--seconds 2] [--rounds 3]
//                          [--path auto|scalar|vnni] [--conv auto|gemm] [--int8-only]
//                          [--weight-bits 8] [--weights packed|s8]
#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "data/augment.h"
#include "nn/init.h"
#include "nn/qat_export.h"
#include "nn/resnet.h"
#include "qinfer/int_resnet.h"
#include "train/flags.h"

using namespace qnn;

namespace {

// Images/s of `step` (one batch of `batch` images) over `seconds`, after one untimed call.
double images_per_second(const std::function<void()>& step, int64_t batch, double seconds) {
  step();
  int64_t calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  do {
    step();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < seconds);
  return double(calls * batch) / elapsed;
}

std::string random_export(int weight_bits) {
  QatSpec spec;
  spec.method = weight_bits == 8 ? QatMethod::Linear : QatMethod::Lsq;
  spec.weight_bits = weight_bits;
  spec.act_bits = 8;
  manual_seed(1);
  QatCifarResNet net(20, spec);
  for (int i = 0; i < 4; ++i) {
    NoGradGuard no_grad;
    net(Variable(Tensor::normal({32, 3, 32, 32}, 0, 1, 10 + i)));
  }
  const std::string path =
      (std::filesystem::temp_directory_path() / ("qnn_int8_infer_" + std::to_string(::getpid()) + ".safetensors")).string();
  export_qat_model(net, path, {{"arch", "resnet20"}, {"shortcut", "A"}});
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags("int8_infer", "ResNet-20 inference images/s: qnn int8 (integer engine) against qnn fp32.");
  auto& model_path = flags.add_string("--model", "", "a QAT export to run (default: random linear W8A8 weights)");
  auto& batch_list = flags.add_string("--batch-sizes", "1,128", "comma-separated batch sizes");
  auto& seconds = flags.add_float("--seconds", 2.0, "seconds per timed round", 0.01, 600);
  auto& rounds = flags.add_int("--rounds", 3, "rounds per configuration (alternating)", 1, 1000);
  auto& path_name = flags.add_string("--path", "auto", "integer GEMM path: auto|scalar|vnni");
  auto& conv_name = flags.add_string("--conv", "auto", "integer convolution: auto (direct where it fits) | gemm (im2col GEMM only)");
  auto& weight_bits = flags.add_int("--weight-bits", 8, "bits of the random model's weights (8: linear W8A8, else LSQ)", 2, 8);
  auto& weights_name = flags.add_string("--weights", "packed", "4-bit weights: packed (two per byte) | s8 (unpacked at load)");
  auto& int8_only = flags.add_bool("--int8-only", "time the integer engine alone (for a profiler)");
  flags.parse(argc, argv);
  if (path_name == "scalar") qinfer::set_gemm_path(qinfer::GemmPath::Scalar);
  else if (path_name == "vnni") qinfer::set_gemm_path(qinfer::GemmPath::Vnni);
  else if (path_name != "auto") flags.fail("bad --path '" + path_name + "'; valid: auto, scalar, vnni");
  if (weights_name != "packed" && weights_name != "s8") flags.fail("bad --weights '" + weights_name + "'; valid: packed, s8");
  if (conv_name == "gemm") qinfer::set_conv_algorithm(qinfer::ConvAlgorithm::Gemm);
  else if (conv_name != "auto") flags.fail("bad --conv '" + conv_name + "'; valid: auto, gemm");
  std::vector<int64_t> batches;
  for (size_t start = 0; start < batch_list.size();) {
    size_t end = batch_list.find(',', start);
    if (end == std::string::npos) end = batch_list.size();
    const long long b = std::atoll(batch_list.substr(start, end - start).c_str());
    if (b < 1) flags.fail("bad --batch-sizes '" + batch_list + "': positive whole numbers, comma-separated");
    batches.push_back(b);
    start = end + 1;
  }

  const bool temporary = model_path.empty();
  const std::string path = temporary ? random_export(int(weight_bits)) : model_path;
  const SafetensorsFile file = load_safetensors(path);
  if (temporary) std::remove(path.c_str());
  const Normalization norm = cifar10_normalization();
  const qinfer::IntResNet engine(file, {norm.mean, norm.stddev}, weights_name == "packed");
  manual_seed(2);
  CifarResNet fp32(20);
  fp32.eval();
  std::printf("model: %s%s; integer path %s, convolutions %s, weights %lld bytes; %d threads\n",
              engine.description().c_str(), temporary ? " (random weights)" : "",
              qinfer::gemm_path_name(qinfer::GemmPath::Auto), conv_name.c_str(), (long long)engine.weight_bytes(),
              omp_get_max_threads());

  for (int64_t batch : batches) {
    // Images normalised from random bytes, as the data loader makes them.
    std::vector<uint8_t> bytes(batch * 3 * 32 * 32);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t((i * 2654435761u) >> 13);
    std::vector<float> x(bytes.size());
    for (int64_t i = 0; i < batch; ++i) normalize_image(bytes.data() + i * 3072, 3, 32, 32, norm, x.data() + i * 3072);
    const Tensor images = Tensor::from_vector(x, {batch, 3, 32, 32});
    double best_int8 = 0, best_fp32 = 0;
    for (int64_t r = 0; r < rounds; ++r) {
      best_int8 = std::max(best_int8, images_per_second([&] { engine.forward(images); }, batch, seconds));
      if (!int8_only) best_fp32 = std::max(best_fp32, images_per_second([&] {
        NoGradGuard no_grad;
        fp32(Variable(images));
      }, batch, seconds));
    }
    std::printf("qnn int8 batch %lld: %.0f images/s\n", (long long)batch, best_int8);
    if (int8_only) continue;
    std::printf("qnn fp32 batch %lld: %.0f images/s\n", (long long)batch, best_fp32);
    std::printf("qnn int8 / fp32 batch %lld: %.2fx\n", (long long)batch, best_int8 / best_fp32);
  }
  return 0;
}
