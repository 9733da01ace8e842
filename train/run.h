// The command-line training run that ./apps/cifar and ./apps/imagenet share: the flags, --resume
// and the settings a checkpoint records, the device, the optimizer and learning-rate schedule,
// gradient quantization (--quant), quantization-aware training (--qat), the epoch loop
// (train/trainer.h) with its progress line, CSV log and checkpoints, --evaluate, --export-qat and
// the variance measurement (train/run_modes.h). An app supplies only what differs, as a
// TrainingTask: its own flags (the data folder, the architecture), its datasets and batch
// sources, and its model.
//
// Each epoch: train over shuffled, augmented batches (learning rate from the schedule at every
// step), evaluate on the test set, append a CSV row, write checkpoints (to a temporary file,
// then renamed). Resuming from a checkpoint continues bit-identically: data order and
// augmentation are functions of (seed, epoch), the model, optimizer, quantizer state and step
// counts are restored, and the run's settings come from the checkpoint unless given again
// (train/run_settings.h). Bad input ends with a message and exit status 2 (flags) or 1 (files,
// data, a diverged run), never an abort.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/qat_resnet.h"
#include "train/batch_source.h"
#include "tensor/safetensors.h"
#include "train/flags.h"

namespace qnn {

// The shared flags' defaults that differ between apps (the standard recipes).
struct RunDefaults {
  int64_t epochs = 200;
  int64_t batch_size = 128;
  double lr = 0.1;
  // When positive, lr is the rate per this many images: without --lr, a batch of B images
  // trains at lr * B / lr_reference_batch (Goyal et al. 2017's linear scaling rule).
  int64_t lr_reference_batch = 0;
  std::string milestones = "81,122,164";
  int64_t loader_threads = 1;
};

// What a batch source is asked for (train/batch_source.h).
struct SourceRequest {
  bool training = true;     // shuffled and augmented; otherwise in order, the evaluation transform
  int64_t batch_size = 128;
  uint64_t seed = 0;
  int loader_threads = 1;   // CPU loader threads
  Device device = Device::CPU;
};

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  // The app's own flags (--data, --arch, ...), added before the shared ones.
  virtual void add_flags(Flags& flags) = 0;
  // Whether the app has QAT models (--qat and its flags; train/qat_setup.h): without them those
  // flags are withheld from its command line and --help.
  virtual bool has_qat_models() const = 0;
  // The app's flags that shape the model: recorded in checkpoints, and --resume cannot change them.
  virtual std::vector<std::string> model_settings() const = 0;
  // The app's other flags that a checkpoint records and --resume takes back (the data's shape).
  virtual std::vector<std::string> data_settings() const { return {}; }
  // Checks the app's flags once they are final (after --resume took the checkpoint's); reports a
  // bad value with flags.fail.
  virtual void check_flags(const Flags& flags, const QatSpec& qat) = 0;
  // The architecture's name, recorded in checkpoints ("resnet20").
  virtual std::string arch() const = 0;
  // Reads (or fetches) the datasets, keeping the first `limit_*` images when positive, and prints
  // a "data: ..." line.
  virtual void load_data(int64_t limit_train, int64_t limit_test) = 0;
  virtual std::unique_ptr<BatchSource> make_source(const SourceRequest& request) = 0;
  // The model (on the CPU; the run moves it), built with the default generator already seeded.
  virtual std::shared_ptr<Module> build_model(const QatSpec& qat) = 0;
  // After "model: ": the architecture and its options ("resnet20 (shortcut A)").
  virtual std::string describe_model() const = 0;
  // Metadata of a --export-qat file beyond the architecture.
  virtual std::map<std::string, std::string> export_metadata() const { return {}; }
  // --evaluate --resume EXPORT, where EXPORT is a QAT export (docs/qat-export.md): a model that
  // runs it with integer arithmetic (docs/integer-inference.md), on the CPU, and a line saying
  // what it is; null when the app has no integer engine.
  virtual std::shared_ptr<Module> build_integer_model(const SafetensorsFile& export_file, std::string& description) {
    (void)export_file;
    (void)description;
    return nullptr;
  }
  // Whether the epoch line and the CSV report top-5 accuracy (many classes).
  virtual bool reports_top5() const { return false; }
};

// Parses the flags (the task's, then the shared ones) and runs; returns the exit status.
int run_training(const std::string& app, const std::string& description, TrainingTask& task,
                 const RunDefaults& defaults, int argc, char** argv);

// An app's main(): runs `body`, turning every exception into one "app: message" line on stderr
// and exit status 1.
int guarded_main(const std::string& app, const std::function<int()>& body);

}  // namespace qnn
