// The C API (capi/qnn.h) against the C++ library it wraps: a checkpoint made here loads with the
// architecture of its metadata; logits from float and byte images equal the C++ model's bit for
// bit; top-k and its probabilities follow the logits; a training step equals the C++ SGD step
// (compared through qnn_model_save) and repeated steps lower the loss on a fixed batch; every
// bad input returns its status and a message naming what was wrong, never an exception.
#include <doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/functions.h"
#include "capi/qnn.h"
#include "data/augment.h"
#include "nn/init.h"
#include "nn/qat_resnet.h"
#include "nn/resnet.h"
#include "nn/resnet_imagenet.h"
#include "train/checkpoint.h"

using namespace qnn;

namespace {

struct TempDir {
  TempDir() {
    char pattern[] = "/tmp/qnn_capi_XXXXXX";
    path = mkdtemp(pattern);
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
  std::string path;
};

// A ResNet-20 whose batch norms have non-trivial running statistics (one training step), saved
// as ./apps/cifar saves it: model, momentum, and the metadata the C API builds from.
std::string make_checkpoint(const std::string& dir, CifarResNet& model, const std::string& arch = "resnet20",
                            const std::string& shortcut = "A") {
  SGD sgd(model.flatten(), {0.05f, 0.9f, 0.0f, 1e-4f, false});
  model.train();
  Variable loss = cross_entropy(model(Variable(Tensor::normal({4, 3, 32, 32}, 0, 1, 5))), {1, 2, 3, 4});
  sgd.zero_grad();
  loss.backward();
  sgd.step();
  const std::string path = dir + "/" + arch + shortcut + ".safetensors";
  save_checkpoint(path, model, sgd, {{"arch", arch}, {"setting.shortcut", shortcut}, {"epoch", "1"}});
  return path;
}

std::vector<float> cpp_logits(Module& model, const Tensor& x) {
  NoGradGuard no_grad;
  model.eval();
  return model(Variable(x)).value().to_vector();
}

qnn_model* load(const std::string& path) {
  qnn_model* model = nullptr;
  const qnn_status status = qnn_model_load(path.c_str(), &model);
  INFO(qnn_last_error());
  REQUIRE(status == QNN_OK);
  return model;
}

}  // namespace

TEST_CASE("capi: a checkpoint loads with its metadata's architecture and infers as the C++ model") {
  TempDir dir;
  manual_seed(11);
  CifarResNet reference(20);
  const std::string path = make_checkpoint(dir.path, reference);
  qnn_model* model = load(path);
  CHECK(std::string(qnn_model_arch(model)) == "resnet20");
  CHECK(qnn_model_num_classes(model) == 10);
  CHECK(qnn_model_image_size(model) == 32);
  CHECK(qnn_model_num_parameters(model) == 269722);
  CHECK(std::string(qnn_version()) == QNN_VERSION_STRING);
  CHECK(qnn_api_version() == QNN_API_VERSION);

  // Float NCHW images: the same logits as the C++ model, bit for bit.
  const Tensor x = Tensor::normal({3, 3, 32, 32}, 0, 1, 21);
  std::vector<float> logits(3 * 10);
  REQUIRE(qnn_infer_f32(model, x.data(), 3, 32, 32, logits.data()) == QNN_OK);
  CHECK(logits == cpp_logits(reference, x));

  // Byte HWC RGB images: normalised with CIFAR-10's mean and std, then the same model.
  std::vector<uint8_t> bytes(2 * 32 * 32 * 3);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t((i * 37 + i / 7) % 256);
  const Normalization norm = cifar10_normalization();
  Tensor normalised({2, 3, 32, 32});
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p)
        normalised.data()[(n * 3 + c) * 1024 + p] = (bytes[(n * 1024 + p) * 3 + c] / 255.0f - norm.mean[c]) / norm.stddev[c];
  std::vector<float> byte_logits(2 * 10);
  REQUIRE(qnn_infer_u8(model, bytes.data(), 2, 32, 32, byte_logits.data()) == QNN_OK);
  const std::vector<float> expected = cpp_logits(reference, normalised);
  for (size_t i = 0; i < expected.size(); ++i) CHECK(byte_logits[i] == doctest::Approx(expected[i]).epsilon(1e-5));
  float mean[3], stddev[3];
  REQUIRE(qnn_model_mean_std(model, mean, stddev) == QNN_OK);
  CHECK(mean[0] == doctest::Approx(0.4914f));
  CHECK(stddev[2] == doctest::Approx(0.2010f));

  // Top-k: the largest logits, best first, with their softmax probabilities.
  int32_t classes[2 * 4];
  float probabilities[2 * 4];
  REQUIRE(qnn_classify_u8(model, bytes.data(), 2, 32, 32, 4, classes, probabilities) == QNN_OK);
  for (int n = 0; n < 2; ++n) {
    const float* row = byte_logits.data() + n * 10;
    double total = 0;
    for (int j = 0; j < 10; ++j) total += std::exp(double(row[j]));
    for (int j = 0; j < 4; ++j) {
      const int32_t c = classes[n * 4 + j];
      CHECK(probabilities[n * 4 + j] == doctest::Approx(std::exp(double(row[c])) / total).epsilon(1e-5));
      int larger = 0;  // classes with a larger logit: exactly the j ahead of it
      for (int other = 0; other < 10; ++other) larger += row[other] > row[c];
      CHECK(larger == j);
    }
  }

  // Saved untrained, the model keeps the file's weights and its optimizer step count.
  const std::string resaved = dir.path + "/resaved.safetensors";
  REQUIRE(qnn_model_save(model, resaved.c_str()) == QNN_OK);
  CifarResNet reloaded(20);
  SGD plain(reloaded.flatten(), SGDOptions{});
  load_checkpoint(resaved, reloaded, plain);
  CHECK(plain.steps() == 1);
  CHECK(reloaded.flatten().values().to_vector() == reference.flatten().values().to_vector());
  qnn_model_free(model);
  qnn_model_free(nullptr);
}

TEST_CASE("capi: option B shortcuts, a QAT model and an ImageNet ResNet are built from the metadata") {
  TempDir dir;
  manual_seed(12);
  CifarResNet b_model(20, 10, Shortcut::B);
  const std::string b_path = make_checkpoint(dir.path, b_model, "resnet20", "B");
  qnn_model* model = load(b_path);
  const Tensor x = Tensor::normal({2, 3, 32, 32}, 0, 1, 22);
  std::vector<float> logits(2 * 10);
  REQUIRE(qnn_infer_f32(model, x.data(), 2, 32, 32, logits.data()) == QNN_OK);
  CHECK(logits == cpp_logits(b_model, x));
  qnn_model_free(model);

  // An LSQ W4A4 network: its quantizers' steps initialise on a training batch, then it is saved.
  QatSpec spec;
  spec.method = QatMethod::Lsq;
  QatCifarResNet qat(20, spec);
  SGD sgd(qat.flatten(), {0.01f});
  qat.train();
  cross_entropy(qat(Variable(Tensor::normal({4, 3, 32, 32}, 0, 1, 6))), {0, 1, 2, 3});
  const std::string qat_path = dir.path + "/qat.safetensors";
  save_checkpoint(qat_path, qat, sgd,
                  {{"arch", "resnet20"}, {"setting.shortcut", "A"}, {"setting.qat", "lsq"},
                   {"setting.weight-bits", "4"}, {"setting.act-bits", "4"}, {"setting.qat-first-last-bits", "8"}});
  model = load(qat_path);
  REQUIRE(qnn_infer_f32(model, x.data(), 2, 32, 32, logits.data()) == QNN_OK);
  CHECK(logits == cpp_logits(qat, x));
  qnn_model_free(model);

  // torchvision's ResNet-18 with 5 classes (the count from fc.weight), ImageNet's normalisation;
  // small 64 x 64 images keep the test fast.
  std::shared_ptr<ImageNetResNet> imagenet = make_imagenet_resnet("resnet18", 5);
  SGD imagenet_sgd(imagenet->flatten(), {0.01f});
  const std::string imagenet_path = dir.path + "/resnet18.safetensors";
  save_checkpoint(imagenet_path, *imagenet, imagenet_sgd, {{"arch", "resnet18"}});
  model = load(imagenet_path);
  CHECK(qnn_model_num_classes(model) == 5);
  CHECK(qnn_model_image_size(model) == 224);
  float mean[3], stddev[3];
  REQUIRE(qnn_model_mean_std(model, mean, stddev) == QNN_OK);
  CHECK(mean[0] == doctest::Approx(0.485f));
  const Tensor big = Tensor::normal({1, 3, 64, 64}, 0, 1, 24);
  std::vector<float> imagenet_logits(5);
  REQUIRE(qnn_infer_f32(model, big.data(), 1, 64, 64, imagenet_logits.data()) == QNN_OK);
  CHECK(imagenet_logits == cpp_logits(*imagenet, big));
  qnn_model_free(model);
}

TEST_CASE("capi: a training step is the C++ SGD step, and steps lower the loss on a fixed batch") {
  TempDir dir;
  manual_seed(13);
  CifarResNet reference(20);
  const std::string path = make_checkpoint(dir.path, reference);
  qnn_model* model = load(path);

  const Tensor x = Tensor::normal({8, 3, 32, 32}, 0, 1, 23);
  const std::vector<int32_t> labels = {0, 1, 2, 3, 4, 5, 6, 7};
  const qnn_sgd_options options = {0.05f, 0.9f, 5e-4f, 0};
  float first = 0;
  REQUIRE(qnn_train_step_f32(model, x.data(), labels.data(), 8, 32, 32, &options, &first) == QNN_OK);

  // The same step in C++ (a fresh optimizer: the C API's starts with the first step too).
  SGD sgd(reference.flatten(), {0.05f, 0.9f, 0.0f, 5e-4f, false});
  reference.train();
  Variable loss = cross_entropy(reference(Variable(x)), labels);
  CHECK(loss.value().item() == first);
  sgd.zero_grad();
  loss.backward();
  sgd.step();
  const std::string saved = dir.path + "/stepped.safetensors";
  REQUIRE(qnn_model_save(model, saved.c_str()) == QNN_OK);
  CifarResNet reloaded(20);
  SGD reloaded_sgd(reloaded.flatten(), {0.05f, 0.9f, 0.0f, 5e-4f, false});
  const auto metadata = load_checkpoint(saved, reloaded, reloaded_sgd);
  CHECK(metadata.at("epoch") == "1");  // the loaded file's metadata is kept
  CHECK(reloaded.flatten().values().to_vector() == reference.flatten().values().to_vector());
  CHECK(reloaded_sgd.momentum_buffer().to_vector() == sgd.momentum_buffer().to_vector());

  float last = first;
  for (int step = 0; step < 8; ++step)
    REQUIRE(qnn_train_step_f32(model, x.data(), labels.data(), 8, 32, 32, &options, &last) == QNN_OK);
  CHECK(last < 0.5f * first);

  // Momentum, weight decay and nesterov are fixed by the first step.
  const qnn_sgd_options other = {0.05f, 0.5f, 5e-4f, 0};
  CHECK(qnn_train_step_f32(model, x.data(), labels.data(), 8, 32, 32, &other, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(qnn_last_error()).find("momentum") != std::string::npos);
  qnn_model_free(model);
}

TEST_CASE("capi: a training step on byte images is the step on the floats they normalise to") {
  TempDir dir;
  manual_seed(17);
  CifarResNet reference(20);
  const std::string path = make_checkpoint(dir.path, reference);
  qnn_model* from_bytes = load(path);
  qnn_model* from_floats = load(path);

  // HWC RGB bytes, and the NCHW floats CIFAR-10's normalisation table gives them.
  const int64_t n = 4;
  std::vector<uint8_t> bytes(size_t(n) * 32 * 32 * 3);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t((i * 53 + i / 11) % 256);
  const Normalization norm = cifar10_normalization();
  std::vector<float> floats(bytes.size());
  for (int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) floats[size_t((i * 3 + c) * 1024 + p)] = norm.table(c)[bytes[size_t((i * 1024 + p) * 3 + c)]];
  const std::vector<int32_t> labels = {3, 1, 4, 1};
  const qnn_sgd_options options = {0.1f, 0.9f, 1e-4f, 1};
  for (int step = 0; step < 2; ++step) {
    float byte_loss = -1, float_loss = -2;
    REQUIRE(qnn_train_step_u8(from_bytes, bytes.data(), labels.data(), n, 32, 32, &options, &byte_loss) == QNN_OK);
    REQUIRE(qnn_train_step_f32(from_floats, floats.data(), labels.data(), n, 32, 32, &options, &float_loss) == QNN_OK);
    CHECK(byte_loss == float_loss);
  }
  const std::string a = dir.path + "/bytes.safetensors", b = dir.path + "/floats.safetensors";
  REQUIRE(qnn_model_save(from_bytes, a.c_str()) == QNN_OK);
  REQUIRE(qnn_model_save(from_floats, b.c_str()) == QNN_OK);
  CifarResNet model_a(20), model_b(20);
  SGD sgd_a(model_a.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, true}), sgd_b(model_b.flatten(), {0.1f, 0.9f, 0.0f, 1e-4f, true});
  load_checkpoint(a, model_a, sgd_a);
  load_checkpoint(b, model_b, sgd_b);
  CHECK(model_a.flatten().values().to_vector() == model_b.flatten().values().to_vector());
  CHECK(model_a.flatten().values().to_vector() != reference.flatten().values().to_vector());  // it trained

  // Bytes are checked as floats are: a null batch is refused with the function's name.
  CHECK(qnn_train_step_u8(from_bytes, nullptr, labels.data(), n, 32, 32, &options, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(qnn_last_error()).find("qnn_train_step_u8") != std::string::npos);
  qnn_model_free(from_bytes);
  qnn_model_free(from_floats);
}

TEST_CASE("capi: bad input returns its status and a message, never an exception") {
  TempDir dir;
  manual_seed(14);
  CifarResNet reference(20);
  const std::string good = make_checkpoint(dir.path, reference);
  qnn_model* model = reinterpret_cast<qnn_model*>(&reference);  // must be reset to NULL on failure

  auto load_fails = [&](const std::string& path, qnn_status status, const std::string& message) {
    model = reinterpret_cast<qnn_model*>(&reference);
    CHECK(qnn_model_load(path.c_str(), &model) == status);
    CHECK(model == nullptr);
    const std::string error = qnn_last_error();
    INFO(error);
    CHECK(error.find(message) != std::string::npos);
  };
  load_fails(dir.path + "/missing.safetensors", QNN_ERROR_FILE, "missing.safetensors: cannot open");
  CifarResNet other(20);
  load_fails(make_checkpoint(dir.path, other, "resnet21"), QNN_ERROR_UNSUPPORTED_MODEL, "'resnet21'");
  load_fails(make_checkpoint(dir.path, other, "resnet20", "C"), QNN_ERROR_UNSUPPORTED_MODEL,
             "recorded setting --shortcut is 'C'; valid: A, B");
  CifarResNet b_model(20, 10, Shortcut::B);
  const std::string b_path = make_checkpoint(dir.path, b_model, "resnet20", "B");
  SafetensorsFile b_file = load_safetensors(b_path);
  b_file.metadata["setting.shortcut"] = "A";  // option-B weights described as option A
  std::vector<NamedTensor> tensors = b_file.tensors;
  save_safetensors(dir.path + "/mislabelled.safetensors", tensors, b_file.metadata);
  load_fails(dir.path + "/mislabelled.safetensors", QNN_ERROR_BAD_CHECKPOINT, "shortcut");
  // Recorded QAT settings are read as ./apps/cifar --resume reads them: a value it would refuse is
  // refused, naming the setting (a bit width of 2^32 + 2 is not taken for 2).
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> bad_settings = {
      {{{"setting.qat", "lsq"}, {"setting.weight-bits", "4294967298"}}, "--weight-bits must be between 2 and 8, got 4294967298"},
      {{{"setting.qat", "lsq"}, {"setting.act-bits", "1"}}, "--act-bits must be between 2 and 8, got 1"},
      {{{"setting.qat", "lsq"}, {"setting.fold-bn", "maybe"}}, "bad value 'maybe' for --fold-bn"},
      {{{"setting.qat", "pact"}, {"setting.fold-bn", "yes"}}, "--fold-bn folds batch norms into --qat linear or lsq"},
      {{{"setting.qat", "lsq"}, {"setting.wrpn-width", "2"}}, "--wrpn-width 2 widens a --qat wrpn network"},
      {{{"setting.qat", "ternary"}}, "bad --qat 'ternary'"},
  };
  for (size_t i = 0; i < bad_settings.size(); ++i) {
    SafetensorsFile file = load_safetensors(good);
    for (const auto& [key, value] : bad_settings[i].first) file.metadata[key] = value;
    const std::string path = dir.path + "/bad_setting" + std::to_string(i) + ".safetensors";
    save_safetensors(path, file.tensors, file.metadata);
    load_fails(path, QNN_ERROR_UNSUPPORTED_MODEL, bad_settings[i].second);
    load_fails(path, QNN_ERROR_UNSUPPORTED_MODEL, path + ": recorded setting");
  }
  save_safetensors(dir.path + "/plain.safetensors", {{"w", Tensor::zeros({2})}});
  load_fails(dir.path + "/plain.safetensors", QNN_ERROR_BAD_CHECKPOINT, "not a qnn training checkpoint");
  b_file.metadata.erase("arch");
  save_safetensors(dir.path + "/no_arch.safetensors", tensors, b_file.metadata);
  load_fails(dir.path + "/no_arch.safetensors", QNN_ERROR_BAD_CHECKPOINT, "metadata 'arch' is missing");
  CHECK(qnn_model_load(nullptr, &model) == QNN_ERROR_INVALID_ARGUMENT);

  model = load(good);
  std::vector<float> image(3 * 32 * 32, 0.5f), logits(10);
  int32_t classes[10];
  CHECK(qnn_infer_f32(nullptr, image.data(), 1, 32, 32, logits.data()) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(qnn_infer_f32(model, nullptr, 1, 32, 32, logits.data()) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(qnn_infer_f32(model, image.data(), 0, 32, 32, logits.data()) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(qnn_infer_f32(model, image.data(), 1, 32, 32, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(qnn_classify_f32(model, image.data(), 1, 32, 32, 11, classes, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(qnn_last_error()).find("k must be in 1..10") != std::string::npos);
  CHECK(qnn_classify_f32(model, image.data(), 1, 32, 32, 10, classes, nullptr) == QNN_OK);

  std::vector<float> batch(2 * 3 * 32 * 32, 0.5f);
  const qnn_sgd_options options = {0.1f, 0.9f, 0.0f, 0};
  const int32_t bad_labels[2] = {3, 10};
  CHECK(qnn_train_step_f32(model, batch.data(), bad_labels, 2, 32, 32, &options, nullptr) ==
        QNN_ERROR_INVALID_ARGUMENT);
  CHECK(std::string(qnn_last_error()).find("labels[1] is 10") != std::string::npos);
  const int32_t labels[2] = {3, 4};
  CHECK(qnn_train_step_f32(model, batch.data(), labels, 1, 32, 32, &options, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  CHECK(qnn_train_step_f32(model, batch.data(), labels, 2, 32, 32, nullptr, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  const qnn_sgd_options negative = {-0.1f, 0.9f, 0.0f, 0};
  CHECK(qnn_train_step_f32(model, batch.data(), labels, 2, 32, 32, &negative, nullptr) == QNN_ERROR_INVALID_ARGUMENT);
  // A learning rate that blows the weights up: the next step's loss is not finite and that step
  // makes no update.
  const qnn_sgd_options huge = {1e30f, 0.9f, 0.0f, 0};
  REQUIRE(qnn_train_step_f32(model, batch.data(), labels, 2, 32, 32, &huge, nullptr) == QNN_OK);
  CHECK(qnn_train_step_f32(model, batch.data(), labels, 2, 32, 32, &huge, nullptr) == QNN_ERROR_INTERNAL);
  CHECK(std::string(qnn_last_error()).find("the loss is") != std::string::npos);
  CHECK(qnn_model_save(model, (dir.path + "/no/such/folder/x.safetensors").c_str()) == QNN_ERROR_FILE);
  CHECK(std::string(qnn_last_error()).find("no/such/folder") != std::string::npos);
  qnn_model_free(model);

  CHECK(std::string(qnn_status_name(QNN_ERROR_UNSUPPORTED_MODEL)) == "QNN_ERROR_UNSUPPORTED_MODEL");
  CHECK(std::string(qnn_status_name(static_cast<qnn_status>(99))) == "unknown status");
}
