// The batch loader on an image folder: decoded and transformed on the workers into normalised
// NCHW batches, the same whatever the number of workers, each sample the transform of its key;
// undecodable files are an error naming them or, when asked, skipped and counted. With
// HYMENOPTERA_DIR the whole ants/bees folder loads (progressive JPEGs, a name with a space, the
// GIF ignored) and, with TurboJPEG, its evaluation crops and resized crops on fixed boxes are
// torchvision's bytes. Byte batches normalised by the device's kernel equal the float batches.
#include <doctest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "data/byte_batch.h"
#include "data/image_folder_source.h"
#include "data/loader.h"
#include "tensor/check.h"
#include "tests/data/image_fixtures.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/gpu.h"
#include "train/batch_source.h"

using namespace qnn;
using namespace qnn::testing;
namespace fs = std::filesystem;

namespace {

// Two classes of fixture images (PNG, JPEG baseline / progressive / grey / CMYK, a tall one).
void write_small_folder(const std::string& root) {
  const std::map<std::string, std::string> files{
      {"cats/a.png", "source.png"},      {"cats/b.jpg", "baseline.jpg"}, {"cats/c.jpg", "progressive.jpg"},
      {"dogs/d.png", "tall.png"},        {"dogs/e.jpg", "gray.jpg"},     {"dogs/f.jpg", "cmyk.jpg"},
      {"dogs/g.png", "rgba.png"}};
  for (const auto& [target, source] : files) {
    fs::create_directories(fs::path(root + "/" + target).parent_path());
    fs::copy_file(image_fixture(source), root + "/" + target);
  }
}

std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> batches;
  for (Batch batch; loader.next(batch);) batches.push_back(std::move(batch));
  return batches;
}

uint64_t fnv1a64(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001B3ull;
  return h;
}

std::string hex_hash(const RgbImage& image) {
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a64(image.pixels)));
  return hash;
}

}  // namespace

TEST_CASE("image loader: batches of transformed samples, independent of the workers") {
  TempDir dir;
  write_small_folder(dir.path);
  for (bool train : {true, false}) {
    CAPTURE(train);
    ImageFolderOptions options;
    options.train = train;
    options.size = 16;
    options.resize = 20;
    const ImageFolderSource source(scan_image_folder(dir.path), options);
    LoaderConfig config;
    config.batch_size = 3;
    config.seed = 7;
    config.shuffle = train;
    config.workers = 0;
    Loader serial(source, config);
    config.workers = 2;
    Loader threaded(source, config);
    const std::vector<Batch> a = run_epoch(serial, 1), b = run_epoch(threaded, 1);
    REQUIRE(a.size() == 3);  // 7 images: 3 + 3 + 1
    REQUIRE(b.size() == 3);
    for (size_t n = 0; n < a.size(); ++n) {
      REQUIRE(a[n].images.shape() == b[n].images.shape());
      CHECK(a[n].indices == b[n].indices);
      CHECK(a[n].labels == b[n].labels);
      for (int64_t i = 0; i < a[n].images.numel(); ++i) REQUIRE(a[n].images.data()[i] == b[n].images.data()[i]);
      for (size_t k = 0; k < a[n].indices.size(); ++k) {
        const int64_t index = a[n].indices[k];
        CHECK(a[n].labels[k] == (index < 3 ? 0 : 1));
        int32_t label = -1;
        const RgbImage expected = source.transformed(index, 7, 1, label);
        std::vector<float> values(3 * 16 * 16);
        normalize_to_chw(expected, imagenet_normalization(), values.data());
        for (size_t v = 0; v < values.size(); ++v) REQUIRE(a[n].images.data()[k * values.size() + v] == values[v]);
      }
    }
    CHECK(a.back().images.shape() == Shape{1, 3, 16, 16});
  }
}

TEST_CASE("image loader: an undecodable file is an error naming it, or skipped and counted") {
  TempDir dir;
  write_small_folder(dir.path);
  fs::copy_file(image_fixture("not_an_image.jpg"), dir.file("dogs/broken.jpg"));
  ImageFolderOptions options;
  options.size = 8;
  options.resize = 8;
  LoaderConfig config;
  config.batch_size = 4;
  config.shuffle = false;
  config.workers = 2;
  {
    const ImageFolderSource source(scan_image_folder(dir.path), options);
    Loader loader(source, config);
    loader.start_epoch(0);
    Batch batch;
    // Batch 0 holds cats/a, b, c and dogs/broken.jpg (sorted before dogs/d.png).
    CHECK_THROWS_WITH_AS(loader.next(batch), doctest::Contains(("cannot decode " + dir.file("dogs/broken.jpg")).c_str()), Error);
  }
  options.skip_undecodable = true;
  const ImageFolderSource source(scan_image_folder(dir.path), options);
  Loader loader(source, config);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const std::vector<Batch> batches = run_epoch(loader, epoch);
    REQUIRE(batches.size() == 2);
    CHECK(batches[1].images.shape() == Shape{4, 3, 8, 8});
  }
  CHECK(source.undecodable_count() == 1);  // counted once, however often it was met
  const std::map<std::string, std::string> skipped = source.undecodable_files();
  REQUIRE(skipped.size() == 1);
  CHECK(skipped.begin()->first == dir.file("dogs/broken.jpg"));
  CHECK(skipped.begin()->second.find("cannot decode " + dir.file("dogs/broken.jpg") + ": ") != std::string::npos);
}

TEST_CASE("image loader: the hymenoptera folder loads; its crops are torchvision's bytes") {
  const char* root = std::getenv("HYMENOPTERA_DIR");
  if (root == nullptr) {
    MESSAGE("hymenoptera loading skipped: HYMENOPTERA_DIR is not set (point it at the ants/bees "
            "folder holding train/ and val/)");
    return;
  }
  struct Expected {
    int label = -1;
    std::string eval_hash, crop_hash;
  };
  std::map<std::string, Expected> expected;  // by path under HYMENOPTERA_DIR
  std::ifstream list(image_fixture("hymenoptera_hashes.txt"));
  for (std::string line; std::getline(list, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream fields(line);
    std::string path, label;
    Expected e;
    std::getline(fields, path, '\t');
    std::getline(fields, label, '\t');
    std::getline(fields, e.eval_hash, '\t');
    std::getline(fields, e.crop_hash, '\t');
    e.label = std::stoi(label);
    expected[path] = e;
  }
  REQUIRE(expected.size() == 34);
  int64_t checked = 0;
  for (const char* split : {"train", "val"}) {
    for (bool train : {true, false}) {
      ImageFolderOptions options;
      options.train = train;
      const ImageFolderSource source(scan_image_folder(std::string(root) + "/" + split), options);
      CHECK(source.count() == (std::string(split) == "train" ? 22 : 12));
      LoaderConfig config;
      config.batch_size = 8;
      config.workers = 2;
      Loader loader(source, config);
      int64_t seen = 0;
      for (const Batch& batch : run_epoch(loader, 0)) {
        CHECK(batch.images.shape()[1] == 3);
        CHECK(batch.images.shape()[2] == 224);
        seen += batch.images.shape()[0];
      }
      CHECK(seen == source.count());
      if (train || !turbojpeg_available()) continue;
      for (int64_t i = 0; i < source.count(); ++i) {  // stb_image decodes JPEGs a little differently
        const std::string path = fs::relative(source.folder().samples[i].path, root).string();
        CAPTURE(path);
        REQUIRE(expected.count(path) == 1);
        int32_t label = -1;
        CHECK(hex_hash(source.transformed(i, 0, 0, label)) == expected[path].eval_hash);
        CHECK(label == expected[path].label);
        const RgbImage image = decode_image_file(source.folder().samples[i].path);
        const PixelBox box{image.height / 7, image.width / 5, image.height / 2, image.width / 3};
        CHECK(hex_hash(resize_bilinear(image, box, 224, 224, PixelBox{0, 0, 224, 224})) == expected[path].crop_hash);
        ++checked;
      }
    }
  }
  if (turbojpeg_available()) CHECK(checked == 34);
}

// The small folder in `root` as a training source of 24 x 24 crops.
ImageFolderSource small_training_source(const std::string& root) {
  write_small_folder(root);
  ImageFolderOptions options;
  options.train = true;
  options.size = 24;
  return ImageFolderSource(scan_image_folder(root), options);
}

TEST_CASE("image loader: byte batches normalised on their device equal the float batches") {
  // A GPU run copies an image folder's batches as bytes and normalises them there
  // (data/byte_batch.h); the CPU twin of that kernel must give the float loader's batch exactly.
  TempDir dir;
  const ImageFolderSource source = small_training_source(dir.path);
  REQUIRE(source.byte_normalization() != nullptr);
  LoaderConfig config;
  config.batch_size = 3;
  config.seed = 11;
  config.workers = 2;
  Loader floats(source, config);
  config.bytes = true;
  Loader bytes(source, config);
  const std::vector<Batch> a = run_epoch(floats, 1), b = run_epoch(bytes, 1);
  REQUIRE(a.size() == b.size());
  const Tensor table = normalization_table_on(*source.byte_normalization(), Device::CPU);
  for (size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(b[i].labels == a[i].labels);
    CHECK(b[i].indices == a[i].indices);
    REQUIRE(b[i].bytes.size() == static_cast<size_t>(a[i].images.numel()));
    Tensor images(a[i].images.shape());
    normalize_bytes(b[i].bytes.data(), table, images);
    CHECK(images.to_vector() == a[i].images.to_vector());
  }
  // A source without a byte form cannot make byte batches.
  const ImageDataset dataset = synthetic_dataset(8);
  const ByteImageSource plain(dataset, false, 4, cifar10_normalization());
  CHECK_THROWS_WITH_AS(Loader(plain, config), doctest::Contains("normalised floats only"), Error);
}

GPU_TEST_CASE("image loader: a GPU run's byte batches, normalised on the GPU, equal the CPU's") {
  TempDir dir;
  const ImageFolderSource source = small_training_source(dir.path);
  LoaderConfig config;
  config.batch_size = 4;
  config.seed = 3;
  LoaderSource cpu(source, config, Device::CPU), gpu(source, config, Device::CUDA);
  for (BatchSource* s : {static_cast<BatchSource*>(&cpu), static_cast<BatchSource*>(&gpu)}) s->start_epoch(2);
  for (int64_t number = 0; number < cpu.batches_per_epoch(); ++number) {
    CAPTURE(number);
    Tensor cpu_images, cpu_labels, gpu_images, gpu_labels;
    cpu.prepare(number);
    cpu.produce(cpu_images, cpu_labels);
    gpu.prepare(number);
    gpu.produce(gpu_images, gpu_labels);
    CHECK(gpu_images.is_cuda());
    CHECK(gpu_images.to(Device::CPU).to_vector() == cpu_images.to_vector());
    CHECK(gpu_labels.to(Device::CPU).to_vector() == cpu_labels.to_vector());
  }
}
