// finetune: train a CIFAR ResNet for a few steps with qnn's C++ API and save it as a checkpoint
// that ./apps/cifar, examples/classify.c and the C API load.
//
//   finetune START OUT.safetensors [STEPS] [CIFAR_BATCH.bin]
//
// START is a qnn checkpoint to fine-tune (its architecture from its metadata) or an
// architecture to start from scratch (resnet20, resnet32, ...). The batches come from a
// CIFAR-10 batch file when one is given, else from a synthetic task whose class is the image's
// dominant colour channel, which a network learns in a few steps. The steps are the library's
// own training step (train/trainer.h does the same, with loaders, schedules and logs):
//   logits = model(x);  loss = cross_entropy(logits, labels);  zero_grad;  backward;  SGD step.
// Build against an installed qnn: c++ -std=c++17 finetune.cpp $(pkg-config --cflags --libs qnn-static)
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "data/augment.h"
#include "data/cifar.h"
#include "nn/resnet.h"
#include "optim/sgd.h"
#include "train/checkpoint.h"

using namespace qnn;

namespace {

// A batch of `n` images starting at image `first` (wrapping around), normalised with the CIFAR
// constants: images [n, 3, 32, 32] and labels.
void make_batch(const ImageDataset& data, int64_t first, int64_t n, Tensor& images, std::vector<int32_t>& labels) {
  const Normalization norm = cifar10_normalization();
  images = Tensor({n, 3, 32, 32});
  labels.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t index = (first + i) % data.count;
    const uint8_t* pixels = data.image(index);  // CHW bytes
    for (int64_t p = 0; p < 3 * 1024; ++p) images.data()[i * 3072 + p] = norm.table(int(p / 1024))[pixels[p]];
    labels[i] = data.labels[index];
  }
}

// The synthetic task: 256 noisy images of class c in 0..2 whose channel c is bright.
ImageDataset synthetic_images() {
  ImageDataset data;
  data.count = 256, data.channels = 3, data.height = data.width = 32, data.num_classes = 10;
  uint32_t state = 12345;
  for (int64_t i = 0; i < data.count; ++i) {
    const int label = int(i % 3);
    data.labels.push_back(label);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) {
        state = state * 1664525u + 1013904223u;  // a small linear congruential generator
        data.pixels.push_back(uint8_t((c == label ? 128 : 0) + (state >> 25)));
      }
  }
  return data;
}

ImageDataset read_cifar_batch(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  QNN_CHECK(in, path, ": cannot open");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return load_cifar10_batch(bytes.data(), bytes.size(), int64_t(bytes.size() / 3073), path);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: finetune CHECKPOINT|ARCH OUT.safetensors [STEPS] [CIFAR_BATCH.bin]\n");
    return 2;
  }
  try {
    const std::string start = argv[1], out = argv[2];
    const int steps = argc > 3 ? std::atoi(argv[3]) : 20;
    const ImageDataset data = argc > 4 ? read_cifar_batch(argv[4]) : synthetic_images();

    // The model: from a checkpoint's metadata and weights, or fresh.
    std::map<std::string, std::string> metadata = {{"arch", start}, {"setting.shortcut", "A"}};
    std::unique_ptr<SafetensorsFile> file;
    if (start.size() > 12 && start.substr(start.size() - 12) == ".safetensors") {
      file = std::make_unique<SafetensorsFile>(read_checkpoint(start));
      QNN_CHECK(file->metadata.count("arch"), start, ": metadata 'arch' is missing");
      metadata = file->metadata;
    }
    const Shortcut shortcut = metadata.count("setting.shortcut") && metadata["setting.shortcut"] == "B" ? Shortcut::B : Shortcut::A;
    CifarResNet model(cifar_resnet_depth(metadata["arch"]), 10, shortcut);
    if (file) load_state_dict(model, *file);
    SGD sgd(model.flatten(), SGDOptions{/*lr*/ 0.02f, /*momentum*/ 0.9f, /*dampening*/ 0.0f, /*weight_decay*/ 5e-4f});
    std::printf("model: %s, %lld parameters; %lld training images\n", metadata["arch"].c_str(),
                (long long)model.num_parameters(), (long long)data.count);

    model.train();
    Tensor images;
    std::vector<int32_t> labels;
    float first_loss = 0, last_loss = 0;
    for (int step = 0; step < steps; ++step) {
      make_batch(data, int64_t(step) * 32, 32, images, labels);
      Variable loss = cross_entropy(model(Variable(images)), labels);
      sgd.zero_grad();
      loss.backward();
      sgd.step();
      last_loss = loss.value().item();
      if (step == 0) first_loss = last_loss;
      if (step % 5 == 0 || step + 1 == steps) std::printf("step %d: loss %.4f\n", step, last_loss);
    }
    std::printf("loss: first %.4f, last %.4f\n", first_loss, last_loss);
    save_checkpoint(out, model, sgd, metadata);  // written to a temporary name, then renamed
    std::printf("saved %s\n", out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finetune: %s\n", e.what());
    return 1;
  }
  return 0;
}
