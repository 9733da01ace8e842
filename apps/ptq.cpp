// ./apps/ptq: post-training quantization of a trained float CIFAR ResNet (a checkpoint of
// ./apps/cifar): calibrate the quantized model's ranges on N training images (ptq/calibrate.h),
// measure its test accuracy by fake quantization against the float model's, and write it in the
// low-bit export layout (docs/qat-export.md). --table runs a list of configurations and prints
// them all in one table. The methods and their formulas: docs/ptq.md.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "data/cifar.h"
#include "nn/qat_export.h"
#include "nn/resnet.h"
#include "ptq/calibrate.h"
#include "train/batch_source.h"
#include "train/checkpoint.h"
#include "train/flags.h"
#include "train/run.h"
#include "train/trainer.h"

using namespace qnn;

namespace {

struct Config {
  RangeMethod method = RangeMethod::MinMax;
  int weight_bits = 8, act_bits = 8;
  bool per_channel = false, bias_correction = false, bit_allocation = false;
};

struct Shared {  // what every configuration of a run shares
  int depth = 20;
  Shortcut shortcut = Shortcut::A;
  bool fold_bn = false, symmetric = false, clip_last = false;
  int first_last_bits = 8;
  double percentile = 99.99;
  std::string checkpoint;
};

std::string describe(const Config& c, const Shared& s) {
  std::string d = c.per_channel || c.bit_allocation ? "per-channel" : "per-tensor";
  if (c.bias_correction) d += " +bias-corr";
  if (c.bit_allocation) d += " +bit-alloc";
  if (s.fold_bn) d += " +fold-bn";
  if (s.symmetric) d += " sym-act";
  if (s.clip_last) d += " clip-last";
  if (s.first_last_bits != 8) d += " first-last " + std::to_string(s.first_last_bits) + "-bit";
  return d;
}

// The first n training images with the evaluation transform, as one [n, 3, 32, 32] tensor.
Tensor calibration_images(const ImageDataset& train, int64_t n) {
  const Normalization norm = cifar10_normalization();
  Tensor images = Tensor::zeros({n, train.channels, train.height, train.width});
  for (int64_t i = 0; i < n; ++i)
    normalize_image(train.image(i), train.channels, train.height, train.width, norm,
                    images.data() + i * train.image_bytes());
  return images;
}

EpochResult evaluate_on(Module& model, const ImageDataset& test) {
  LoaderConfig config;
  config.batch_size = 500;
  config.shuffle = config.augment = false;
  config.workers = 1;
  std::unique_ptr<BatchSource> source = make_batch_source(test, config, Device::CPU);
  return evaluate(model, *source, 0);
}

std::unique_ptr<QatCifarResNet> quantized_model(const Config& c, const Shared& s, const SafetensorsFile& file,
                                                const Tensor& images, PtqResult& result) {
  QatSpec spec;
  spec.method = QatMethod::Linear;
  spec.weight_bits = c.bit_allocation ? 8 : c.weight_bits;  // bit allocation: 8-bit containers
  spec.act_bits = c.act_bits;
  spec.first_last_bits = s.first_last_bits;
  spec.fold_bn = s.fold_bn;
  spec.symmetric_activations = s.symmetric;
  auto model = std::make_unique<QatCifarResNet>(s.depth, spec, 10, s.shortcut);
  load_model_weights(*model, file, {kMomentumPrefix, kQuantizationPrefix});
  PtqOptions options;
  options.range.method = c.method;
  options.range.percentile = s.percentile;
  options.per_channel = c.per_channel;
  options.bias_correction = c.bias_correction;
  options.bit_allocation = c.bit_allocation;
  options.budget_bits = c.weight_bits;
  options.clip_last = s.clip_last;
  result = calibrate_ptq(*model, images, options);
  return model;
}

void print_header() {
  std::printf("\n| method | W/A bits | options | accuracy | vs fp32 | test loss |\n|---|---|---|---|---|---|\n");
}

void print_row(const std::string& method, const std::string& bits, const std::string& options, const EpochResult& r,
               double fp32) {
  std::printf("| %s | %s | %s | %.2f%% | %+.2f | %.4f |\n", method.c_str(), bits.c_str(), options.c_str(),
              100.0 * r.accuracy, 100.0 * (r.accuracy - fp32), r.loss);
  std::fflush(stdout);
}

// The --table configurations: W8A8 (min-max per tensor, per channel, ACIQ, + bias correction),
// then W4A8 and W4A4 with every method (per channel) and the combinations.
std::vector<Config> table_configs() {
  std::vector<Config> out;
  auto add = [&](RangeMethod m, int w, int a, bool pc, bool bc = false, bool ba = false) {
    Config c;
    c.method = m, c.weight_bits = w, c.act_bits = a, c.per_channel = pc, c.bias_correction = bc, c.bit_allocation = ba;
    out.push_back(c);
  };
  add(RangeMethod::MinMax, 8, 8, false);
  add(RangeMethod::MinMax, 8, 8, true);
  add(RangeMethod::AciqLaplace, 8, 8, true);
  add(RangeMethod::AciqLaplace, 8, 8, true, true);
  add(RangeMethod::Kl, 8, 8, true);
  for (int a : {8, 4}) {
    add(RangeMethod::MinMax, 4, a, false);
    for (RangeMethod m : {RangeMethod::MinMax, RangeMethod::Percentile, RangeMethod::Mse, RangeMethod::AciqLaplace,
                          RangeMethod::AciqGauss, RangeMethod::Kl})
      add(m, 4, a, true);
    add(RangeMethod::MinMax, 4, a, true, true);
    add(RangeMethod::Mse, 4, a, true, true);
    add(RangeMethod::AciqLaplace, 4, a, true, true);
    add(RangeMethod::AciqLaplace, 4, a, true, true, true);
  }
  return out;
}

int run(int argc, char** argv) {
  Flags flags("ptq", "Post-training quantization of a float CIFAR ResNet checkpoint (./apps/cifar): calibrate the "
              "quantized model's ranges on training images, print its test accuracy against the float model's, "
              "write its low-bit export. Methods and formulas: docs/ptq.md.");
  const char* env_data = std::getenv("CIFAR10_DIR");
  auto& data = flags.add_string("--data", env_data ? env_data : "data/cifar-10-batches-bin",
                                "CIFAR-10 binary folder ($CIFAR10_DIR, when set, is the default)");
  auto& resume = flags.add_string("--resume", "", "the float checkpoint to quantize (required)");
  auto& weight_bits = flags.add_int("--weight-bits", 8, "bits of the inner convolutions' weights (first conv and "
                                    "classifier: 8)", 2, 8);
  auto& act_bits = flags.add_int("--act-bits", 8, "bits of the activations (the classifier's input: 8)", 2, 8);
  auto& method = flags.add_string("--method", "minmax", "range method of weights and activations: minmax|percentile|"
                                  "mse|aciq-laplace|aciq-gauss|kl (kl: weights take their max)");
  auto& percentile = flags.add_float("--percentile", 99.99, "--method percentile: the percentile kept unclipped", 50, 100);
  auto& per_channel = flags.add_bool("--per-channel", "weights: one range per output channel (off: one per tensor)");
  auto& symmetric = flags.add_bool("--symmetric", "activations on a zero-centred grid (off: affine, [0, alpha])");
  auto& fold_bn = flags.add_bool("--fold-bn", "fold every batch norm into its convolution before quantizing");
  auto& bias_correction = flags.add_bool("--bias-correction", "remove each layer's mean output shift (calibration images)");
  auto& bit_alloc = flags.add_bool("--bit-alloc", "inner convolutions: bits per output channel averaging "
                                   "--weight-bits (<= 4), in 8-bit containers");
  auto& first_last_bits = flags.add_int("--first-last-bits", 8, "bits of the first conv, the classifier and its "
                                        "input", 2, 8);
  auto& clip_last = flags.add_bool("--clip-last", "clip the classifier and its input by --method too (off: min-max)");
  auto& calibration = flags.add_int("--calibration-images", 512, "calibrate on the first N training images", 1, 50000);
  auto& out = flags.add_string("--out", "", "write the quantized model's low-bit export here (safetensors)");
  auto& table = flags.add_bool("--table", "run the standard list of configurations (W8A8, W4A8, W4A4) and print one table");
  auto& limit_test = flags.add_int("--limit-test", 0, "evaluate on the first N test images only (0: all)", 0);
  flags.parse(argc, argv);

  if (resume.empty()) flags.fail("--resume is required: the float checkpoint to quantize");
  Config config;
  try {
    config.method = parse_range_method(method);
  } catch (const Error&) {
    flags.fail("bad --method '" + method + "'; valid: minmax, percentile, mse, aciq-laplace, aciq-gauss, kl");
  }
  config.weight_bits = int(weight_bits);
  config.act_bits = int(act_bits);
  config.per_channel = per_channel;
  config.bias_correction = bias_correction;
  config.bit_allocation = bit_alloc;
  if (bit_alloc && weight_bits > 4)
    flags.fail("--bit-alloc allocates an average of --weight-bits 2 to 4 bits per channel; --weight-bits is " +
               std::to_string(weight_bits));
  if (table && !out.empty()) flags.fail("--out writes one model; --table runs many (give one or the other)");
  if (table && (flags.was_set("--method") || flags.was_set("--weight-bits") || flags.was_set("--act-bits") ||
                per_channel || bias_correction || bit_alloc))
    flags.fail("--table runs its own methods and bit widths; give --method, --weight-bits, --act-bits, "
               "--per-channel, --bias-correction and --bit-alloc without it");

  const SafetensorsFile file = read_checkpoint(resume);
  Shared shared;
  shared.checkpoint = resume;
  shared.first_last_bits = int(first_last_bits);
  shared.fold_bn = fold_bn, shared.symmetric = symmetric, shared.clip_last = clip_last, shared.percentile = percentile;
  auto setting = [&](const std::string& key, const std::string& fallback) {
    auto it = file.metadata.find("setting." + key);
    return it == file.metadata.end() ? fallback : it->second;
  };
  QNN_CHECK(setting("qat", "none") == "none", resume, ": a QAT checkpoint (--qat ", setting("qat", ""),
            "); post-training quantization starts from a float model (--qat none)");
  const std::string arch = setting("arch", "resnet20"), shortcut = setting("shortcut", "A");
  shared.depth = cifar_resnet_depth(arch);
  QNN_CHECK(shortcut == "A" || shortcut == "B", resume, ": setting 'shortcut' should be A or B, found '", shortcut, "'");
  shared.shortcut = shortcut == "A" ? Shortcut::A : Shortcut::B;

  ImageDataset train_set = load_cifar10(data, true), test_set = load_cifar10(data, false);
  QNN_CHECK(calibration <= train_set.count, "--calibration-images ", calibration, " is more than the ",
            train_set.count, " training images in ", data);
  if (limit_test > 0) keep_first(test_set, limit_test);
  const Tensor images = calibration_images(train_set, calibration);
  std::printf("model: %s (shortcut %s) from %s; calibration: the first %lld training images; test: %lld images\n",
              arch.c_str(), shortcut.c_str(), resume.c_str(), (long long)calibration, (long long)test_set.count);

  CifarResNet float_model(shared.depth, 10, shared.shortcut);
  load_model_weights(float_model, file, {kMomentumPrefix, kQuantizationPrefix});
  const EpochResult fp32 = evaluate_on(float_model, test_set);
  print_header();
  print_row("fp32", "32/32", "", fp32, fp32.accuracy);
  const std::vector<Config> configs = table ? table_configs() : std::vector<Config>{config};
  for (const Config& c : configs) {
    PtqResult result;
    std::unique_ptr<QatCifarResNet> model = quantized_model(c, shared, file, images, result);
    const EpochResult r = evaluate_on(*model, test_set);
    std::string bits = std::to_string(c.weight_bits) + "/" + std::to_string(c.act_bits);
    if (c.bit_allocation) bits += " (avg " + str(result.inner_weight_bits).substr(0, 4) + ")";
    print_row(range_method_name(c.method), bits, describe(c, shared), r, fp32.accuracy);
    if (!out.empty()) {
      std::map<std::string, std::string> metadata = result.metadata;
      metadata["arch"] = arch;
      metadata["shortcut"] = shortcut;
      metadata["ptq"] = std::string(range_method_name(c.method)) + " W" + std::to_string(c.weight_bits) + "A" +
                        std::to_string(c.act_bits) + " " + describe(c, shared);
      metadata["ptq.calibration_images"] = std::to_string(calibration);
      // The float image the first convolution reads: (byte / 255 - mean[c]) / std[c].
      const Normalization norm = cifar10_normalization();
      for (const char* key : {"input_mean", "input_stddev"}) {
        std::string text;
        for (float v : std::string(key) == "input_mean" ? norm.mean : norm.stddev)
          text += (text.empty() ? "" : ",") + str(v);
        metadata[key] = text;
      }
      export_qat_model(*model, out, metadata);
      std::printf("\nwrote %s (%s)\n", out.c_str(), model->spec().describe().c_str());
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return guarded_main("ptq", [&] { return run(argc, argv); }); }
