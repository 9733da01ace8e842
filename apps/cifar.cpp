// ./apps/cifar: train and evaluate a ResNet on CIFAR-10.
//
// Thin by design: flags -> data, model, optimizer, schedule -> the epoch loop. Everything it
// uses lives in the library (data/, nn/, optim/); this file only wires it up and reports.
// Each epoch: train over shuffled, augmented batches (learning rate from the schedule at every
// step), evaluate on the test set, append a CSV row, write checkpoints. Resuming from a
// checkpoint continues bit-identically: data order and augmentation are functions of
// (seed, epoch), and the model, optimizer and step count are restored.
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "apps/checkpoint.h"
#include "apps/flags.h"
#include "apps/progress.h"
#include "data/cifar.h"
#include "data/loader.h"
#include "nn/init.h"
#include "nn/resnet.h"
#include "optim/schedule.h"

using namespace qnn;

namespace {

struct EpochResult {
  double loss = 0, accuracy = 0, seconds = 0;
  int64_t images = 0;
};

int64_t count_correct(const Tensor& logits, const std::vector<int32_t>& labels) {
  const int64_t classes = logits.size(1);
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* row = logits.data() + i * classes;
    correct += (std::max_element(row, row + classes) - row) == labels[i];
  }
  return correct;
}

// One pass over the loader; trains when `sgd` is given, otherwise evaluates without a graph.
EpochResult run_epoch(Module& model, Loader& loader, int64_t epoch, int64_t epochs, SGD* sgd,
                      const LRSchedule* schedule) {
  model.train(sgd != nullptr);
  std::unique_ptr<NoGradGuard> no_grad(sgd ? nullptr : new NoGradGuard);
  loader.start_epoch(epoch);
  Progress progress(epoch, epochs, loader.batches_per_epoch());
  EpochResult r;
  double loss_sum = 0;
  int64_t correct = 0, step = 0;
  Batch batch;
  while (loader.next(batch)) {
    const int64_t n = static_cast<int64_t>(batch.labels.size());
    Variable logits = model(Variable(batch.images));
    Variable loss = cross_entropy(logits, batch.labels);
    if (sgd) {
      sgd->set_lr(schedule->lr_at(epoch, step));
      sgd->zero_grad();
      loss.backward();
      sgd->step();
    }
    loss_sum += static_cast<double>(loss.value().item()) * n;
    correct += count_correct(logits.value(), batch.labels);
    r.images += n;
    if (sgd) progress.update(step, loss_sum / r.images, double(correct) / r.images, r.images);
    ++step;
  }
  progress.finish_line();
  r.seconds = progress.seconds();
  r.loss = loss_sum / std::max<int64_t>(r.images, 1);
  r.accuracy = double(correct) / std::max<int64_t>(r.images, 1);
  return r;
}

std::vector<int64_t> parse_milestones(const std::string& text, const Flags& flags) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    const size_t comma = text.find(',', start);
    const std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0) flags.fail("bad --milestones '" + text + "' (expected e.g. 81,122,164)");
    out.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags("cifar", "Train a ResNet on CIFAR-10 (He et al. 2016) and evaluate it after every epoch.");
  const char* env_data = std::getenv("CIFAR10_DIR");
  auto& arch = flags.add_string("--arch", "resnet20", "resnet20|resnet32|resnet44|resnet56|resnet110");
  auto& shortcut = flags.add_string("--shortcut", "A", "ResNet shortcut option: A (zero-pad) or B (1x1 conv)");
  auto& epochs = flags.add_int("--epochs", 200, "number of epochs");
  auto& batch_size = flags.add_int("--batch-size", 128, "training batch size");
  auto& lr = flags.add_float("--lr", 0.1, "base learning rate");
  auto& momentum = flags.add_float("--momentum", 0.9, "SGD momentum");
  auto& wd = flags.add_float("--wd", 1e-4, "weight decay");
  auto& nesterov = flags.add_bool("--nesterov", "Nesterov momentum");
  auto& schedule_kind = flags.add_string("--schedule", "multistep", "multistep|cosine|onecycle");
  auto& milestones = flags.add_string("--milestones", "81,122,164", "multistep: epochs where lr is multiplied by 0.1");
  auto& seed = flags.add_int("--seed", 0, "seed for initialisation, shuffling and augmentation");
  auto& data_dir = flags.add_string("--data", env_data ? env_data : "data/cifar-10-batches-bin",
                                    "CIFAR-10 binary folder (default: $CIFAR10_DIR if set)");
  auto& device = flags.add_string("--device", "auto", "auto|cpu|cuda");
  auto& workers = flags.add_int("--workers", 1, "threads preparing the next batches");
  auto& checkpoint_dir = flags.add_string("--checkpoint", "", "folder for last.safetensors and best.safetensors");
  auto& resume = flags.add_string("--resume", "", "checkpoint file to continue from");
  auto& evaluate_only = flags.add_bool("--evaluate", "only evaluate (the --resume checkpoint) on the test set");
  auto& log_path = flags.add_string("--log", "", "per-epoch CSV file");
  auto& limit_train = flags.add_int("--limit-train", 0, "use only the first N training images (0: all)");
  auto& limit_test = flags.add_int("--limit-test", 0, "use only the first N test images (0: all)");
  auto& quant = flags.add_string("--quant", "none", "gradient quantizer: none");
  flags.parse(argc, argv);

  if (quant != "none") flags.fail("unknown --quant '" + quant + "'; valid: none");
  if (device != "auto" && device != "cpu" && device != "cuda")
    flags.fail("bad --device '" + device + "'; valid: auto, cpu, cuda");
  if (shortcut != "A" && shortcut != "B") flags.fail("bad --shortcut '" + shortcut + "'; valid: A, B");
  if (epochs < 1 || batch_size < 1 || workers < 1) flags.fail("--epochs, --batch-size and --workers must be >= 1");
  if (limit_train < 0 || limit_test < 0) flags.fail("--limit-train and --limit-test must be >= 0");
  if (lr < 0 || momentum < 0 || wd < 0) flags.fail("--lr, --momentum and --wd must be >= 0");
  int depth = 0;
  try {
    depth = cifar_resnet_depth(arch);
  } catch (const Error&) {
    flags.fail("unknown --arch '" + arch + "'; valid: resnet20, resnet32, resnet44, resnet56, resnet110");
  }
  if (schedule_kind != "multistep" && schedule_kind != "cosine" && schedule_kind != "onecycle")
    flags.fail("bad --schedule '" + schedule_kind + "'; valid: multistep, cosine, onecycle");
  const std::vector<int64_t> milestone_list = parse_milestones(milestones, flags);

  if (device == "cuda") {
    std::fprintf(stderr, "cifar: --device cuda: this build has no CUDA backend (built CPU-only); use --device cpu\n");
    return 1;
  }
  std::printf("qnn cifar: build cpu-only, device cpu, threads %d\n", omp_get_max_threads());
  if (device == "auto") std::printf("note: built without CUDA, training on the CPU\n");

  try {
    ImageDataset train_set = load_cifar10(data_dir, true), test_set = load_cifar10(data_dir, false);
    if (limit_train > 0) keep_first(train_set, limit_train);
    if (limit_test > 0) keep_first(test_set, limit_test);
    std::printf("data: %s, %lld training and %lld test images\n", data_dir.c_str(), (long long)train_set.count,
                (long long)test_set.count);

    manual_seed(static_cast<uint64_t>(seed));
    CifarResNet model(depth, 10, shortcut == "A" ? Shortcut::A : Shortcut::B);
    FlatParameters& flat = model.flatten();
    SGD sgd(flat, {float(lr), float(momentum), 0.0f, float(wd), nesterov});

    LoaderConfig train_config;
    train_config.batch_size = batch_size;
    train_config.shuffle = true;
    train_config.augment = true;
    train_config.drop_last = false;
    train_config.seed = static_cast<uint64_t>(seed);
    train_config.workers = static_cast<int>(workers);
    LoaderConfig test_config = train_config;
    test_config.batch_size = 500;
    test_config.shuffle = test_config.augment = false;
    Loader train_loader(train_set, train_config), test_loader(test_set, test_config);

    LRSchedule schedule;
    schedule.kind = schedule_kind;
    schedule.base_lr = float(lr);
    schedule.milestones = milestone_list;
    schedule.epochs = epochs;
    schedule.steps_per_epoch = train_loader.batches_per_epoch();
    validate(schedule);

    int64_t start_epoch = 0;
    double best = 0;
    if (!resume.empty()) {
      auto meta = load_checkpoint(resume, model, sgd);
      start_epoch = std::stoll(meta["epoch"]);
      best = std::stod(meta["best_accuracy"]);
      QNN_CHECK(meta["arch"] == arch, resume, ": checkpoint is for ", meta["arch"], ", --arch is ", arch);
      std::printf("resumed %s: %lld epochs done, best test accuracy %.2f%%\n", resume.c_str(),
                  (long long)start_epoch, 100 * best);
    }
    std::printf("model: %s (shortcut %s), %lld parameters\n", arch.c_str(), shortcut.c_str(),
                (long long)model.num_parameters());

    if (evaluate_only) {
      EpochResult test = run_epoch(model, test_loader, start_epoch, epochs, nullptr, nullptr);
      std::printf("test: loss %.4f accuracy %.2f%% (%lld images, %.1fs)\n", test.loss, 100 * test.accuracy,
                  (long long)test.images, test.seconds);
      return 0;
    }

    CsvLog log(log_path, "epoch,lr,train_loss,train_acc,test_loss,test_acc,epoch_seconds,images_per_second");
    if (!resume.empty() && log.enabled()) log.keep_rows_of(log_path, start_epoch);
    if (!checkpoint_dir.empty()) std::filesystem::create_directories(checkpoint_dir);
    for (int64_t epoch = start_epoch; epoch < epochs; ++epoch) {
      const float epoch_lr = schedule.lr_at(epoch, 0);
      EpochResult train = run_epoch(model, train_loader, epoch, epochs, &sgd, &schedule);
      EpochResult test = run_epoch(model, test_loader, epoch, epochs, nullptr, nullptr);
      const double rate = train.images / std::max(train.seconds, 1e-9);
      std::printf("epoch %lld/%lld lr %.5f train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1fs %.0f img/s\n",
                  (long long)epoch + 1, (long long)epochs, epoch_lr, train.loss, 100 * train.accuracy, test.loss,
                  100 * test.accuracy, train.seconds, rate);
      std::fflush(stdout);
      log.append(str(epoch + 1, ",", epoch_lr, ",", train.loss, ",", train.accuracy, ",", test.loss, ",",
                     test.accuracy, ",", train.seconds, ",", rate));
      const bool improved = test.accuracy > best;
      best = std::max(best, test.accuracy);
      if (!checkpoint_dir.empty()) {
        std::map<std::string, std::string> meta = {{"arch", arch}, {"epoch", std::to_string(epoch + 1)},
                                                   {"best_accuracy", str(best)}, {"seed", std::to_string(seed)}};
        save_checkpoint(checkpoint_dir + "/last.safetensors", model, sgd, meta);
        if (improved) save_checkpoint(checkpoint_dir + "/best.safetensors", model, sgd, meta);
      }
    }
    std::printf("best test accuracy %.2f%%\n", 100 * best);
  } catch (const Error& e) {
    std::fprintf(stderr, "cifar: %s\n", e.what());
    return 1;
  }
  return 0;
}
