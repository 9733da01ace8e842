// The shared flags of a training run (train/run.h), in the groups --help lists them: the
// optimizer and its schedule, the device, the files read and written, gradient quantization,
// data-parallel training under mpirun, the variance measurement, and quantization-aware training
// (train/qat_setup.h). Each group is a struct of references into the parsed Flags, so that after
// --resume has filled in the checkpoint's settings (train/run_settings.h) every value read through
// it is final. Then the checks on those final values (train/run_flags.cpp): against each other,
// the task and the checkpoint, and the device they choose.
//
// The setting lists name the flags a checkpoint records: a model setting shapes the model (the
// task's and kQatModelSettings) and --resume cannot change it; a schedule setting changes the
// learning rate from the resumed epoch on; a quantizer setting restarts the gradient quantizer.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dist/exchange.h"
#include "quant/quantizer.h"
#include "tensor/safetensors.h"
#include "train/flags.h"
#include "train/precision.h"
#include "train/qat_setup.h"
#include "train/run.h"
#include "train/run_settings.h"

namespace qnn {

const std::vector<std::string> kScheduleSettings = {"--epochs", "--schedule", "--milestones", "--lr",
                                                    "--batch-size", "--workers", "--limit-train"};
const std::vector<std::string> kQuantSettings = {"--quant", "--bucket-size", "--quant-levels", "--quant-bits",
                                                 "--quant-sample", "--quant-per-layer"};
const std::vector<std::string> kOtherSettings = {"--momentum", "--wd", "--nesterov", "--seed", "--limit-test",
                                                 "--checkpoint", "--log", "--precision"};

struct ScheduleFlags {
  int64_t &epochs, &batch_size;
  double &lr, &momentum, &wd;
  bool& nesterov;
  std::string &kind, &milestones;
  int64_t& seed;
};

struct DeviceFlags {
  std::string& device;
  int64_t& loader_threads;
  std::string& precision;
  bool &no_graph, &no_cudnn, &channels_last, &deterministic;
};

struct FileFlags {
  std::string& checkpoint_dir;
  std::string& resume;
  bool& evaluate_only;
  std::string& log_path;
  int64_t &limit_train, &limit_test;
};

struct QuantFlags {
  std::string& scheme;
  int64_t &bucket_size, &levels, &bits;
  double& sample;
  bool& per_layer;
  int64_t& workers;
};

struct DistributedFlags {
  std::string &exchange, &transport;
  bool& check_replicas;
};

struct VarianceFlags {
  int64_t& steps;
  std::string &schemes, &out;
};

struct RunFlags {
  ScheduleFlags schedule;
  DeviceFlags device;
  FileFlags files;
  QuantFlags quant;
  DistributedFlags distributed;
  VarianceFlags variance;
  QatFlags qat;
};

inline std::string valid_quantizer_schemes() {
  std::string valid;
  for (const std::string& n : quantizer_names()) valid += (valid.empty() ? "" : ", ") + n;
  return valid;
}

// Declares the shared flags on `flags` (after the task's own). A braced list runs its
// initialisers in order, so --help lists the groups as they stand here.
inline RunFlags add_run_flags(Flags& flags, const RunDefaults& defaults) {
  return RunFlags{
      ScheduleFlags{
          flags.add_int("--epochs", defaults.epochs, "number of epochs", 1, 1000000),
          flags.add_int("--batch-size", defaults.batch_size, "training batch size", 1, 65536),
          flags.add_float("--lr", defaults.lr, "base learning rate", 0),
          flags.add_float("--momentum", 0.9, "SGD momentum", 0),
          flags.add_float("--wd", 1e-4, "weight decay", 0),
          flags.add_bool("--nesterov", "Nesterov momentum"),
          flags.add_string("--schedule", "multistep", "multistep|cosine|onecycle"),
          flags.add_string("--milestones", defaults.milestones, "multistep: epochs where lr is multiplied by 0.1"),
          flags.add_int("--seed", 0, "seed for initialisation, shuffling and augmentation", 0),
      },
      DeviceFlags{
          flags.add_string("--device", "auto", "auto (the GPU when one is usable, else the CPU)|cpu|cuda"),
          flags.add_int("--loader-threads", defaults.loader_threads, "threads preparing the next batches on the CPU", 1, 256),
          add_precision_flag(flags),
          flags.add_bool("--no-graph", "GPU: run every step eagerly instead of replaying a captured CUDA graph"),
          flags.add_bool("--no-cudnn", "GPU: convolution through qnn's im2col + cuBLAS kernels instead of cuDNN"),
          flags.add_bool("--channels-last", "GPU: activations stored channels-last (NHWC), the layout cuDNN's fastest convolutions use; same results to rounding"),
          flags.add_bool("--deterministic", "GPU: deterministic cuDNN algorithms chosen by heuristics, not timing, so a resumed run repeats the results bit for bit on the same GPU model and cuDNN version (the CPU always does)"),
      },
      FileFlags{
          flags.add_string("--checkpoint", "", "folder for last.safetensors and best.safetensors"),
          flags.add_string("--resume", "", "checkpoint file to continue from; the run's settings come from it unless given again"),
          flags.add_bool("--evaluate", "only evaluate the --resume checkpoint on the test set"),
          flags.add_string("--log", "", "per-epoch CSV file"),
          flags.add_int("--limit-train", 0, "use only the first N training images (0: all)", 0),
          flags.add_int("--limit-test", 0, "use only the first N test images (0: all)", 0),
      },
      QuantFlags{
          flags.add_string("--quant", "none", "gradient quantizer: " + valid_quantizer_schemes()),
          flags.add_int("--bucket-size", 512, "quantization bucket size (coordinates)", 1, kMaxBucketSize),
          flags.add_int("--quant-levels", 16, "quantization levels", 2, kMaxLevels),
          flags.add_int("--quant-bits", 0, "qsgd/qinf/nuq/alq/amq: 2^B levels, sign included (0: from --quant-levels)", 0, kMaxBits),
          flags.add_float("--quant-sample", 0.05, "smart: fraction of a bucket sampled as level candidates", 0, 1),
          flags.add_bool("--quant-per-layer", "quantize each parameter on its own, not in network-wide buckets"),
          flags.add_int("--workers", 1, "emulated data-parallel workers: K batches per step, each gradient quantized on its own, then averaged", 1, 1024),
      },
      DistributedFlags{
          flags.add_string("--exchange", "automatic", "under mpirun: how ranks exchange gradients: automatic|fp32|allgather|scatter-reduce (docs/distributed.md)"),
          flags.add_string("--transport", "mpi", "under mpirun: mpi, or nccl (GPU collectives; one GPU per rank)"),
          flags.add_bool("--check-replicas", "under mpirun: compare a hash of every rank's model after every step"),
      },
      VarianceFlags{
          flags.add_int("--variance-steps", 0, "measure: N steps of unquantized SGD recording each scheme's variance, then exit", 0, 100000000),
          flags.add_string("--variance-schemes", "standard,exponential,hadamard,smart", "schemes measured by --variance-steps"),
          flags.add_string("--variance-out", "variance", "--variance-steps writes PREFIX.csv and PREFIX.png"),
      },
      add_qat_flags(flags),
  };
}

// Whether `name` is one of `names` (a setting list).
inline bool is_one_of(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Every setting a checkpoint records: the task's, then the shared ones.
std::vector<std::string> recorded_settings(const TrainingTask& task);

// What --resume brings: the checkpoint, read before the flags are final so that its settings fill
// those not given again, and the settings given again with another value.
struct ResumePoint {
  SafetensorsFile checkpoint;
  std::vector<SettingChange> changes;
  int64_t epochs_done = 0;
  double best = 0;  // best test accuracy so far
};

// The final settings, checked, in the forms the run uses. A bad value ends the program through
// flags.fail (exit status 2), a checkpoint that does not fit with an Error.
struct CheckedSettings {
  QuantizerOptions quant_options;
  std::unique_ptr<GradientQuantizer> quantizer;  // null for --quant none
  std::vector<std::string> measured;              // --variance-schemes
  ExchangeAlgorithm exchange = ExchangeAlgorithm::automatic;
  std::vector<int64_t> milestones;
  QatSpec qat;
};

// --resume PATH (nothing when empty): reads the checkpoint, takes its settings into the flags not
// given again and refuses a change of a model setting.
ResumePoint read_resume_point(Flags& flags, const std::string& path, const std::vector<std::string>& recorded,
                              const TrainingTask& task);

// Checks the final settings against each other, the task and the checkpoint. Under mpirun with
// `ranks` ranks, the ranks are the workers: --workers is set to their number.
CheckedSettings check_settings(const Flags& flags, RunFlags& f, TrainingTask& task, const ResumePoint& from, int ranks);

// The device the run trains on, with the backend's options set from the flags (backend_options())
// and a line saying what runs where; --device cuda without a usable GPU is an Error.
Device choose_device(const std::string& app, const Flags& flags, const DeviceFlags& d, const QatSpec& qat);

}  // namespace qnn
