// ./apps/imagenet: train and evaluate torchvision's ResNet-18, 34 or 50 (nn/resnet_imagenet.h)
// on a folder in the ImageNet layout, DIR/train/<class>/<images> and DIR/val/<class>/<images>
// (torchvision's ImageFolder semantics, data/image_folder.h).
//
// Thin by design, like ./apps/cifar: the training run (flags, resume, --quant, the epoch loop,
// top-1 and top-5 accuracy, logs and checkpoints) is the library's (train/run.h). This file adds
// the data: files decoded and transformed on loader threads (data/image_folder_source.h:
// RandomResizedCrop(224) and a flip for training, Resize(256) + CenterCrop(224) for
// evaluation, ImageNet's mean and deviation), and the model. The defaults are the standard
// recipe (He et al. 2016; torchvision's reference script): SGD momentum 0.9, lr 0.1 per 256
// images, weight decay 1e-4, 90 epochs with lr x 0.1 at epochs 30 and 60, batch 256.
#include <cstdio>
#include <memory>
#include <thread>

#include "data/image_folder_source.h"
#include "nn/resnet_imagenet.h"
#include "train/run.h"

using namespace qnn;

namespace {

class ImageNetTask : public TrainingTask {
 public:
  void add_flags(Flags& flags) override {
    data_dir_ = &flags.add_string("--data", "", "folder holding train/ and val/, one subfolder per class (required)");
    arch_ = &flags.add_string("--arch", "resnet18", "resnet18|resnet34|resnet50");
    zero_init_ = &flags.add_bool("--zero-init-residual", "start each block's last batch-norm weight at zero");
    image_size_ = &flags.add_int("--image-size", 224, "side of the training crop and the evaluation centre crop", 32, 4096);
    skip_bad_ = &flags.add_bool("--skip-bad-images", "skip files that cannot be decoded (counted), instead of stopping");
  }
  bool has_qat_models() const override { return false; }
  std::vector<std::string> model_settings() const override { return {"--arch", "--zero-init-residual"}; }
  std::vector<std::string> data_settings() const override { return {"--image-size", "--skip-bad-images"}; }
  void check_flags(const Flags& flags, const QatSpec&) override {
    if (data_dir_->empty()) flags.fail("--data DIR is required: a folder holding train/ and val/ in the ImageNet layout");
    if (*arch_ != "resnet18" && *arch_ != "resnet34" && *arch_ != "resnet50")
      flags.fail("unknown --arch '" + *arch_ + "'; valid: resnet18, resnet34, resnet50");
  }
  std::string arch() const override { return *arch_; }
  void load_data(int64_t limit_train, int64_t limit_test) override {
    train_folder_ = scan_image_folder(*data_dir_ + "/train");
    val_folder_ = scan_image_folder(*data_dir_ + "/val");
    QNN_CHECK(val_folder_.classes == train_folder_.classes, *data_dir_, "/val has the classes ",
              names(val_folder_.classes), ", train/ has ", names(train_folder_.classes), ": they must be the same");
    if (limit_train > 0 && limit_train < train_folder_.count()) train_folder_.samples.resize(limit_train);
    if (limit_test > 0 && limit_test < val_folder_.count()) val_folder_.samples.resize(limit_test);
    std::printf("data: %s, %lld training and %lld validation images, %lld classes\n", data_dir_->c_str(),
                (long long)train_folder_.count(), (long long)val_folder_.count(),
                (long long)train_folder_.classes.size());
  }
  std::unique_ptr<BatchSource> make_source(const SourceRequest& request) override {
    ImageFolderOptions options;
    options.train = request.training;
    options.size = static_cast<int>(*image_size_);
    options.resize = static_cast<int>(*image_size_ * 256 / 224);
    options.skip_undecodable = *skip_bad_;
    sources_.push_back(std::make_unique<ImageFolderSource>(request.training ? train_folder_ : val_folder_, options));
    LoaderConfig config;
    config.batch_size = request.batch_size;
    config.shuffle = request.training;
    // Training drops a last partial batch (a batch of one cannot be batch-normalised), unless
    // the folder holds less than one batch.
    config.drop_last = request.training && sources_.back()->count() >= request.batch_size;
    config.seed = request.seed;
    config.workers = request.loader_threads;
    return std::make_unique<LoaderSource>(*sources_.back(), config, request.device);
  }
  std::shared_ptr<Module> build_model(const QatSpec&) override {
    return make_imagenet_resnet(*arch_, static_cast<int64_t>(train_folder_.classes.size()), *zero_init_);
  }
  std::string describe_model() const override {
    return *arch_ + " (" + std::to_string(train_folder_.classes.size()) + " classes" +
           (*zero_init_ ? ", zero-initialised residual batch norms" : "") + ")";
  }
  bool reports_top5() const override { return true; }
  // After the run: the files skipped as undecodable, if any, each with its error (which names it).
  void report_skipped() const {
    for (const auto& source : sources_)
      if (source->undecodable_count() > 0) {
        std::printf("skipped %lld undecodable file(s) in %s:\n", (long long)source->undecodable_count(),
                    source->folder().root.c_str());
        for (const auto& [file, error] : source->undecodable_files()) std::printf("  %s\n", error.c_str());
      }
  }

 private:
  static std::string names(const std::vector<std::string>& classes) {
    std::string s;
    for (size_t i = 0; i < classes.size() && i < 5; ++i) s += (i ? ", " : "") + classes[i];
    return "[" + s + (classes.size() > 5 ? ", ...]" : "]");
  }

  std::string *data_dir_ = nullptr, *arch_ = nullptr;
  bool *zero_init_ = nullptr, *skip_bad_ = nullptr;
  int64_t* image_size_ = nullptr;
  ImageFolder train_folder_, val_folder_;
  std::vector<std::unique_ptr<ImageFolderSource>> sources_;
};

}  // namespace

int main(int argc, char** argv) {
  return guarded_main("imagenet", [&] {
    ImageNetTask task;
    RunDefaults defaults;
    defaults.epochs = 90;
    defaults.batch_size = 256;
    defaults.lr = 0.1;
    defaults.lr_reference_batch = 256;
    defaults.milestones = "30,60";
    defaults.loader_threads = std::max(1u, std::thread::hardware_concurrency());
    const int status = run_training("imagenet",
                                    "Train a ResNet (He et al. 2016, torchvision's) on an ImageNet-layout folder "
                                    "and evaluate top-1 and top-5 accuracy after every epoch.",
                                    task, defaults, argc, argv);
    task.report_skipped();
    return status;
  });
}
