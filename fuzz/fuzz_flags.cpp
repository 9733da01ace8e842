// libFuzzer target for the command-line parser (train/flags.h): Flags::parse_args must either
// accept the arguments, stop at --help, or throw FlagError; and every value it accepts must lie
// in its flag's declared range (floats finite).
//
// The input is split at NUL bytes into arguments, as a shell would pass them. The flags are
// those ./apps/cifar declares (strings, integers, floats, switches), plus integer and float
// flags with ranges so that the range checks run too.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "train/flags.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args;
  std::string arg;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += static_cast<char>(data[i]);
    }
  }
  if (size > 0) args.push_back(arg);

  qnn::Flags flags("fuzz", "Every kind of flag ./apps/cifar declares.");
  auto& arch = flags.add_string("--arch", "resnet20", "architecture");
  flags.add_string("--milestones", "81,122,164", "multistep milestones");
  flags.add_string("--data", "data/cifar-10-batches-bin", "CIFAR-10 folder");
  auto& epochs = flags.add_int("--epochs", 200, "number of epochs");
  auto& batch_size = flags.add_int("--batch-size", 128, "training batch size", 1, 65536);
  auto& seed = flags.add_int("--seed", 0, "seed", 0);
  auto& limit = flags.add_int("--limit-train", 0, "images", std::numeric_limits<int64_t>::min(), 0);
  auto& lr = flags.add_float("--lr", 0.1, "base learning rate");
  auto& momentum = flags.add_float("--momentum", 0.9, "SGD momentum", 0.0, 1.0);
  auto& sample = flags.add_float("--quant-sample", 0.05, "fraction", 1e-300, 1.0);
  auto& wd = flags.add_float("--wd", -1e-4, "negated weight decay", -1e308, 0.0);
  auto& nesterov = flags.add_bool("--nesterov", "Nesterov momentum");
  flags.add_bool("--evaluate", "only evaluate");

  bool run = false;
  try {
    run = flags.parse_args(args);
  } catch (const qnn::FlagError&) {
    return 0;
  }
  if (!run) return 0;  // --help
  (void)arch;
  (void)epochs;
  require(batch_size >= 1 && batch_size <= 65536);
  require(seed >= 0);
  require(limit <= 0);
  require(std::isfinite(lr));
  require(std::isfinite(momentum) && momentum >= 0.0 && momentum <= 1.0);
  require(std::isfinite(sample) && sample >= 1e-300 && sample <= 1.0);
  require(std::isfinite(wd) && wd >= -1e308 && wd <= 0.0);
  require(flags.was_set("--nesterov") || !nesterov);
  return 0;
}
