// The C API of capi/qnn.h over the C++ library: a qnn_model handle holds the model built from
// a checkpoint's metadata (as ./apps/cifar and ./apps/imagenet build it), its input
// normalisation and, once it trains, its SGD optimizer. Every entry point runs its body inside
// guarded(), which turns each C++ exception into a qnn_status and a per-thread message, so no
// exception crosses the C boundary.
#include "capi/qnn.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "data/augment.h"
#include "data/image_transforms.h"
#include "nn/qat_resnet.h"
#include "nn/resnet.h"
#include "nn/resnet_imagenet.h"
#include "optim/sgd.h"
#include "train/checkpoint.h"
#include "train/qat_setup.h"
#include "train/run_settings.h"

using namespace qnn;

struct qnn_model {
  std::shared_ptr<Module> module;
  std::string arch;
  std::map<std::string, std::string> metadata;  // the loaded file's, written back by qnn_model_save
  int num_classes = 0;
  int image_size = 0;
  Normalization normalization{{0, 0, 0}, {1, 1, 1}};
  std::unique_ptr<SGD> sgd;  // made by the first training step
};

namespace {

thread_local std::string last_error;

// An error with the status it maps to (the other exceptions get the entry point's default).
struct StatusError : Error {
  StatusError(qnn_status s, const std::string& message) : Error(message), status(s) {}
  qnn_status status;
};

void require(bool condition, qnn_status status, const std::string& message) {
  if (!condition) throw StatusError(status, message);
}

// Runs `body`, mapping exceptions to statuses: StatusError its own, qnn::Error `error_status`
// (what a failed check of the library means for this call), std::bad_alloc out of memory, the
// rest internal. The message is kept for qnn_last_error(), prefixed with the entry point's name.
template <class Body>
qnn_status guarded(const char* function, qnn_status error_status, Body&& body) {
  qnn_status status = QNN_OK;
  std::string message;
  try {
    body();
    return QNN_OK;
  } catch (const StatusError& e) {
    status = e.status, message = e.what();
  } catch (const Error& e) {
    status = error_status, message = e.what();
  } catch (const std::bad_alloc&) {
    status = QNN_ERROR_OUT_OF_MEMORY, message = "out of memory";
  } catch (const std::exception& e) {
    status = QNN_ERROR_INTERNAL, message = e.what();
  } catch (...) {
    status = QNN_ERROR_INTERNAL, message = "unknown exception";
  }
  try {
    last_error = std::string(function) + ": " + message;
  } catch (...) {
    last_error.clear();
  }
  return status;
}

// The shortcut and the QAT layers a CIFAR checkpoint records, read with ./apps/cifar's own flags
// and checks (train/run_settings.h, train/qat_setup.h): a setting means here what it means there,
// a missing one takes the app's default, and one the app would refuse is refused, named.
struct CifarSettings {
  Shortcut shortcut = Shortcut::A;
  QatSpec qat;
};

CifarSettings cifar_settings(const SafetensorsFile& file) {
  Flags flags("qnn_model_load", "the model settings a checkpoint records");
  const std::string& shortcut = flags.add_string("--shortcut", "A", "ResNet shortcut option: A or B");
  const QatFlags qat = add_qat_flags(flags);
  std::vector<std::string> recorded = kQatModelSettings;
  recorded.push_back("--shortcut");
  CifarSettings settings;
  try {
    adopt_settings(flags, recorded, file);
    settings.qat = qat_spec(qat);
  } catch (const FlagError& e) {
    throw StatusError(QNN_ERROR_UNSUPPORTED_MODEL, file.path + ": recorded settings: " + e.what());
  } catch (const Error& e) {
    throw StatusError(QNN_ERROR_UNSUPPORTED_MODEL, e.what());
  }
  require(shortcut == "A" || shortcut == "B", QNN_ERROR_UNSUPPORTED_MODEL,
          file.path + ": recorded setting --shortcut is '" + shortcut + "'; valid: A, B");
  settings.shortcut = shortcut == "A" ? Shortcut::A : Shortcut::B;
  return settings;
}

// The model the checkpoint's metadata describes, with num_classes outputs.
std::shared_ptr<Module> build_model(const SafetensorsFile& file, const std::string& arch, int num_classes,
                                    qnn_model& out) {
  if (arch == "resnet18" || arch == "resnet34" || arch == "resnet50") {
    out.image_size = 224;
    out.normalization = imagenet_normalization();
    return make_imagenet_resnet(arch, num_classes);
  }
  int depth = 0;
  try {
    depth = cifar_resnet_depth(arch);
  } catch (const Error&) {
    throw StatusError(QNN_ERROR_UNSUPPORTED_MODEL, file.path + ": metadata 'arch' is '" + arch +
                                                       "'; this library builds resnet20, resnet32, resnet44, "
                                                       "resnet56, resnet110 (CIFAR) and resnet18, resnet34, resnet50");
  }
  const CifarSettings settings = cifar_settings(file);
  out.image_size = 32;
  out.normalization = cifar10_normalization();
  if (settings.qat.method == QatMethod::None)
    return std::make_shared<CifarResNet>(depth, num_classes, settings.shortcut);
  return std::make_shared<QatCifarResNet>(depth, settings.qat, num_classes, settings.shortcut);
}

// Checks an image batch's arguments and returns its element count.
int64_t batch_numel(const void* images, int64_t n, int height, int width) {
  require(images != nullptr, QNN_ERROR_INVALID_ARGUMENT, "images is NULL");
  require(n >= 1, QNN_ERROR_INVALID_ARGUMENT, "n must be >= 1, got " + std::to_string(n));
  require(height >= 1 && width >= 1, QNN_ERROR_INVALID_ARGUMENT,
          "height and width must be >= 1, got " + std::to_string(height) + " x " + std::to_string(width));
  const double elements = double(n) * 3.0 * double(height) * double(width);
  require(elements < double(int64_t(1) << 40), QNN_ERROR_INVALID_ARGUMENT,
          "a batch of " + std::to_string(n) + " images of " + std::to_string(height) + " x " +
              std::to_string(width) + " is too large");
  return n * 3 * int64_t(height) * width;
}

// HWC RGB bytes -> normalised NCHW floats, (x / 255 - mean[c]) / std[c] (data/augment.h's table).
Tensor from_u8(const qnn_model& model, const uint8_t* images, int64_t n, int height, int width) {
  batch_numel(images, n, height, width);
  Tensor x({n, 3, height, width});
  const int64_t plane = int64_t(height) * width;
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) {
      const float* table = model.normalization.table(c);
      const uint8_t* in = images + i * plane * 3 + c;
      float* out = x.data() + (i * 3 + c) * plane;
      for (int64_t p = 0; p < plane; ++p) out[p] = table[in[3 * p]];
    }
  return x;
}

Tensor from_f32(const float* images, int64_t n, int height, int width) {
  const int64_t numel = batch_numel(images, n, height, width);
  Tensor x({n, 3, height, width});
  std::memcpy(x.data(), images, size_t(numel) * sizeof(float));
  return x;
}

void check_model(const qnn_model* model) { require(model != nullptr, QNN_ERROR_INVALID_ARGUMENT, "model is NULL"); }

void infer(qnn_model* model, const Tensor& x, float* logits) {
  require(logits != nullptr, QNN_ERROR_INVALID_ARGUMENT, "logits is NULL");
  NoGradGuard no_grad;
  model->module->eval();
  const Tensor out = model->module->forward(Variable(x)).value();
  std::memcpy(logits, out.data(), size_t(out.numel()) * sizeof(float));
}

// The k largest logits of each row, best first (ties: the lower class), with softmax probabilities.
void top_k(qnn_model* model, const Tensor& x, int k, int32_t* classes, float* probabilities) {
  const int c = model->num_classes;
  require(k >= 1 && k <= c, QNN_ERROR_INVALID_ARGUMENT,
          "k must be in 1.." + std::to_string(c) + " (the model's classes), got " + std::to_string(k));
  require(classes != nullptr, QNN_ERROR_INVALID_ARGUMENT, "classes is NULL");
  const int64_t n = x.size(0);
  std::vector<float> logits(size_t(n) * c);
  infer(model, x, logits.data());
  std::vector<int32_t> order(c);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits.data() + i * c;
    for (int j = 0; j < c; ++j) order[j] = j;
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    const float top = row[order[0]];
    double total = 0;
    for (int j = 0; j < c; ++j) total += std::exp(double(row[j]) - top);
    for (int j = 0; j < k; ++j) {
      classes[i * k + j] = order[j];
      if (probabilities) probabilities[i * k + j] = float(std::exp(double(row[order[j]]) - top) / total);
    }
  }
}

void train_step(qnn_model* model, const Tensor& x, const int32_t* labels, const qnn_sgd_options* options,
                float* loss_out) {
  require(labels != nullptr && options != nullptr, QNN_ERROR_INVALID_ARGUMENT, "labels or options is NULL");
  const int64_t n = x.size(0);
  require(n >= 2, QNN_ERROR_INVALID_ARGUMENT,
          "a training batch needs n >= 2 images (batch norm normalises over the batch), got " + std::to_string(n));
  for (int64_t i = 0; i < n; ++i)
    require(labels[i] >= 0 && labels[i] < model->num_classes, QNN_ERROR_INVALID_ARGUMENT,
            "labels[" + std::to_string(i) + "] is " + std::to_string(labels[i]) + "; valid: 0.." +
                std::to_string(model->num_classes - 1));
  const qnn_sgd_options& o = *options;
  require(std::isfinite(o.lr) && o.lr >= 0 && std::isfinite(o.momentum) && o.momentum >= 0 &&
              std::isfinite(o.weight_decay) && o.weight_decay >= 0 && (o.nesterov == 0 || o.nesterov == 1),
          QNN_ERROR_INVALID_ARGUMENT, "SGD options must be finite and >= 0 and nesterov 0 or 1");
  require(!o.nesterov || o.momentum > 0, QNN_ERROR_INVALID_ARGUMENT, "nesterov needs momentum > 0");
  if (!model->sgd) {
    SGDOptions sgd_options;
    sgd_options.lr = o.lr;
    sgd_options.momentum = o.momentum;
    sgd_options.weight_decay = o.weight_decay;
    sgd_options.nesterov = o.nesterov != 0;
    model->sgd = std::make_unique<SGD>(model->module->flatten(), sgd_options);
  }
  const SGDOptions& fixed = model->sgd->options();
  require(fixed.momentum == o.momentum && fixed.weight_decay == o.weight_decay && fixed.nesterov == (o.nesterov != 0),
          QNN_ERROR_INVALID_ARGUMENT,
          "momentum, weight_decay and nesterov must stay as the first training step set them (" +
              std::to_string(fixed.momentum) + ", " + std::to_string(fixed.weight_decay) + ", " +
              std::to_string(int(fixed.nesterov)) + ")");
  model->sgd->set_lr(o.lr);
  model->module->train();
  const Variable logits = model->module->forward(Variable(x));
  const Variable loss = cross_entropy(logits, std::vector<int32_t>(labels, labels + n));
  const float value = loss.value().item();
  require(std::isfinite(value), QNN_ERROR_INTERNAL,
          "the loss is " + std::to_string(value) + "; no SGD update was made (learning rate too high?)");
  model->sgd->zero_grad();
  loss.backward();
  model->sgd->step();
  if (loss_out) *loss_out = value;
}

}  // namespace

extern "C" {

const char* qnn_version(void) { return QNN_VERSION_STRING; }
int qnn_api_version(void) { return QNN_API_VERSION; }
const char* qnn_last_error(void) { return last_error.c_str(); }

const char* qnn_status_name(qnn_status status) {
  switch (status) {
    case QNN_OK: return "QNN_OK";
    case QNN_ERROR_INVALID_ARGUMENT: return "QNN_ERROR_INVALID_ARGUMENT";
    case QNN_ERROR_FILE: return "QNN_ERROR_FILE";
    case QNN_ERROR_BAD_CHECKPOINT: return "QNN_ERROR_BAD_CHECKPOINT";
    case QNN_ERROR_UNSUPPORTED_MODEL: return "QNN_ERROR_UNSUPPORTED_MODEL";
    case QNN_ERROR_OUT_OF_MEMORY: return "QNN_ERROR_OUT_OF_MEMORY";
    case QNN_ERROR_INTERNAL: return "QNN_ERROR_INTERNAL";
  }
  return "unknown status";
}

qnn_status qnn_model_load(const char* path, qnn_model** model) {
  if (model) *model = nullptr;
  return guarded("qnn_model_load", QNN_ERROR_BAD_CHECKPOINT, [&] {
    require(path != nullptr && model != nullptr, QNN_ERROR_INVALID_ARGUMENT, "path or model is NULL");
    if (std::FILE* f = std::fopen(path, "rb")) {
      std::fclose(f);
    } else {
      throw StatusError(QNN_ERROR_FILE, std::string(path) + ": cannot open (" + std::strerror(errno) + ")");
    }
    const SafetensorsFile file = read_checkpoint(path);
    require(file.metadata.count("arch") != 0, QNN_ERROR_BAD_CHECKPOINT,
            std::string(path) + ": metadata 'arch' is missing (the architecture to build)");
    require(file.has("fc.weight") && file.get("fc.weight").dim() == 2, QNN_ERROR_BAD_CHECKPOINT,
            std::string(path) + ": no classifier 'fc.weight' of 2 dimensions (the class count comes from it)");
    const int64_t classes = file.get("fc.weight").size(0);
    require(classes >= 1 && classes <= (1 << 20), QNN_ERROR_BAD_CHECKPOINT,
            std::string(path) + ": 'fc.weight' has " + std::to_string(classes) + " rows; expected 1..2^20 classes");
    auto handle = std::make_unique<qnn_model>();
    handle->arch = file.metadata.at("arch");
    handle->metadata = file.metadata;
    handle->num_classes = int(classes);
    handle->module = build_model(file, handle->arch, handle->num_classes, *handle);
    load_model_weights(*handle->module, file, {kMomentumPrefix, kQuantizationPrefix});
    if (auto* qat = dynamic_cast<QatCifarResNet*>(handle->module.get())) qat->after_load();
    handle->module->flatten();
    handle->module->eval();
    *model = handle.release();
  });
}

void qnn_model_free(qnn_model* model) { delete model; }

const char* qnn_model_arch(const qnn_model* model) { return model ? model->arch.c_str() : ""; }
int qnn_model_num_classes(const qnn_model* model) { return model ? model->num_classes : 0; }
int qnn_model_image_size(const qnn_model* model) { return model ? model->image_size : 0; }
int64_t qnn_model_num_parameters(const qnn_model* model) { return model ? model->module->num_parameters() : 0; }

qnn_status qnn_model_mean_std(const qnn_model* model, float mean[3], float stddev[3]) {
  return guarded("qnn_model_mean_std", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    require(mean != nullptr && stddev != nullptr, QNN_ERROR_INVALID_ARGUMENT, "mean or stddev is NULL");
    for (int c = 0; c < 3; ++c) mean[c] = model->normalization.mean[c], stddev[c] = model->normalization.stddev[c];
  });
}

qnn_status qnn_infer_u8(qnn_model* model, const uint8_t* images, int64_t n, int height, int width, float* logits) {
  return guarded("qnn_infer_u8", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    infer(model, from_u8(*model, images, n, height, width), logits);
  });
}

qnn_status qnn_infer_f32(qnn_model* model, const float* images, int64_t n, int height, int width, float* logits) {
  return guarded("qnn_infer_f32", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    infer(model, from_f32(images, n, height, width), logits);
  });
}

qnn_status qnn_classify_u8(qnn_model* model, const uint8_t* images, int64_t n, int height, int width, int k,
                           int32_t* classes, float* probabilities) {
  return guarded("qnn_classify_u8", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    top_k(model, from_u8(*model, images, n, height, width), k, classes, probabilities);
  });
}

qnn_status qnn_classify_f32(qnn_model* model, const float* images, int64_t n, int height, int width, int k,
                            int32_t* classes, float* probabilities) {
  return guarded("qnn_classify_f32", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    top_k(model, from_f32(images, n, height, width), k, classes, probabilities);
  });
}

qnn_status qnn_train_step_u8(qnn_model* model, const uint8_t* images, const int32_t* labels, int64_t n, int height,
                             int width, const qnn_sgd_options* options, float* loss) {
  return guarded("qnn_train_step_u8", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    train_step(model, from_u8(*model, images, n, height, width), labels, options, loss);
  });
}

qnn_status qnn_train_step_f32(qnn_model* model, const float* images, const int32_t* labels, int64_t n, int height,
                              int width, const qnn_sgd_options* options, float* loss) {
  return guarded("qnn_train_step_f32", QNN_ERROR_INVALID_ARGUMENT, [&] {
    check_model(model);
    train_step(model, from_f32(images, n, height, width), labels, options, loss);
  });
}

qnn_status qnn_model_save(qnn_model* model, const char* path) {
  return guarded("qnn_model_save", QNN_ERROR_FILE, [&] {
    check_model(model);
    require(path != nullptr, QNN_ERROR_INVALID_ARGUMENT, "path is NULL");
    // Without a training step there is no optimizer: a plain SGD whose step count is the file's.
    SGD none(model->module->flatten(), SGDOptions{});
    std::map<std::string, std::string> metadata = model->metadata;
    if (!model->sgd) {
      int64_t steps = 0;
      auto it = metadata.find("optimizer_steps");
      if (it != metadata.end() && parse_int64(it->second, steps) && steps >= 0) none.set_steps(steps);
    }
    save_checkpoint(path, *model->module, model->sgd ? *model->sgd : none, metadata);
  });
}

}  // extern "C"
