// ./apps/cifar: train and evaluate a CIFAR ResNet (He et al. 2016) on CIFAR-10.
//
// Thin by design: the training run (flags, resume, quantization, the epoch loop, logs and
// checkpoints) is the library's (train/run.h); this file adds what is CIFAR's: the data folder
// (fetched on first use, data/cifar_download.h), the ResNet-20..110 architectures with option A
// or B shortcuts and their QAT versions, and the batch sources: the threaded loader on the CPU,
// the dataset resident on the GPU (train/batch_source.h).
#include <cstdlib>
#include <memory>

#include "data/cifar.h"
#include "data/cifar_download.h"
#include "data/augment.h"
#include "nn/resnet.h"
#include "qinfer/int_module.h"
#include "train/run.h"

using namespace qnn;

namespace {

class CifarTask : public TrainingTask {
 public:
  void add_flags(Flags& flags) override {
    const char* env_data = std::getenv("CIFAR10_DIR");
    data_dir_ = &flags.add_string("--data", env_data ? env_data : "data/cifar-10-batches-bin",
                                  "CIFAR-10 binary folder ($CIFAR10_DIR, when set, is the default)");
    arch_ = &flags.add_string("--arch", "resnet20", "resnet20|resnet32|resnet44|resnet56|resnet110");
    shortcut_ = &flags.add_string("--shortcut", "A", "ResNet shortcut option: A (zero-pad) or B (1x1 conv)");
  }
  bool has_qat_models() const override { return true; }
  std::vector<std::string> model_settings() const override { return {"--arch", "--shortcut"}; }
  void check_flags(const Flags& flags, const QatSpec&) override {
    if (*shortcut_ != "A" && *shortcut_ != "B") flags.fail("bad --shortcut '" + *shortcut_ + "'; valid: A, B");
    try {
      depth_ = cifar_resnet_depth(*arch_);
    } catch (const Error&) {
      flags.fail("unknown --arch '" + *arch_ + "'; valid: resnet20, resnet32, resnet44, resnet56, resnet110");
    }
  }
  std::string arch() const override { return *arch_; }
  void load_data(int64_t limit_train, int64_t limit_test) override {
    ensure_cifar10(*data_dir_);  // first run: downloads CIFAR-10 when the folder holds none of it
    train_set_ = load_cifar10(*data_dir_, true);
    test_set_ = load_cifar10(*data_dir_, false);
    if (limit_train > 0) keep_first(train_set_, limit_train);
    if (limit_test > 0) keep_first(test_set_, limit_test);
    std::printf("data: %s, %lld training and %lld test images\n", data_dir_->c_str(), (long long)train_set_.count,
                (long long)test_set_.count);
  }
  std::unique_ptr<BatchSource> make_source(const SourceRequest& request) override {
    LoaderConfig config;
    config.batch_size = request.training ? request.batch_size : 500;
    config.shuffle = config.augment = request.training;
    config.drop_last = false;
    config.seed = request.seed;
    config.workers = request.loader_threads;
    return make_batch_source(request.training ? train_set_ : test_set_, config, request.device);
  }
  std::shared_ptr<Module> build_model(const QatSpec& qat) override {
    const Shortcut shortcut = *shortcut_ == "A" ? Shortcut::A : Shortcut::B;
    if (qat.method == QatMethod::None) return std::make_unique<CifarResNet>(depth_, 10, shortcut);
    return std::make_unique<QatCifarResNet>(depth_, qat, 10, shortcut);
  }
  std::string describe_model() const override { return *arch_ + " (shortcut " + *shortcut_ + ")"; }
  std::map<std::string, std::string> export_metadata() const override {
    const Normalization n = cifar10_normalization();
    auto join = [](const std::vector<float>& v) {
      std::string s;
      for (float x : v) s += (s.empty() ? "" : ",") + str(x);
      return s;
    };
    return {{"shortcut", *shortcut_}, {"input_mean", join(n.mean)}, {"input_stddev", join(n.stddev)}};
  }
  std::shared_ptr<Module> build_integer_model(const SafetensorsFile& file, std::string& description) override {
    const Normalization n = cifar10_normalization();
    auto engine = std::make_shared<const qinfer::IntResNet>(file, qinfer::InputNormalization{n.mean, n.stddev});
    description = engine->description() + ", integer arithmetic (" + qinfer::gemm_path_name(qinfer::GemmPath::Auto) + ")";
    return std::make_shared<qinfer::IntResNetModule>(engine);
  }

 private:
  std::string *data_dir_ = nullptr, *arch_ = nullptr, *shortcut_ = nullptr;
  int depth_ = 20;
  ImageDataset train_set_, test_set_;
};

}  // namespace

int main(int argc, char** argv) {
  return guarded_main("cifar", [&] {
    CifarTask task;
    return run_training("cifar", "Train a ResNet on CIFAR-10 (He et al. 2016) and evaluate it after every epoch.",
                        task, RunDefaults{}, argc, argv);
  });
}
