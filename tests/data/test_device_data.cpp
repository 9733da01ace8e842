// Data on the device (data/device_data.h): the CPU twin of the batch gather builds exactly the
// Loader's batches, the epoch order tensor is the Loader's order, metrics accumulate as computed
// by hand, and on a GPU the CUDA gather and metrics equal the CPU twin bit for bit (the gather is
// table lookups and copies; the metrics are integer counts and the same float operations).
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "data/device_data.h"
#include "data/loader.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/gpu.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

constexpr uint64_t kSeed = 11;

Tensor clock_tensor(int64_t number, int64_t epoch, Device device = Device::CPU) {
  return Tensor::from_vector({static_cast<float>(number), static_cast<float>(epoch)}, {2}).to(device);
}

struct Gathered {
  Tensor images, labels;
};

// Batch `number` of `epoch` gathered on data's device, rows as the Loader would give.
Gathered gather(const DeviceDataset& data, int64_t batch_size, bool augment, bool shuffle, int64_t epoch,
                int64_t number, int padding = 4) {
  const Device device = data.device();
  const Tensor order = epoch_order(data.count(), kSeed, epoch, shuffle, device);
  const int64_t rows = std::min(batch_size, data.count() - number * batch_size);
  Gathered g{Tensor({rows, data.channels(), data.height(), data.width()}, device), Tensor({rows}, device)};
  gather_batch(data, order, clock_tensor(number, epoch, device), batch_size, augment, kSeed, padding,
               cifar10_normalization(), g.images, g.labels);
  return g;
}

}  // namespace

TEST_CASE("device data: the CPU gather builds the Loader's batches bit for bit") {
  const ImageDataset dataset = synthetic_dataset(50);
  const DeviceDataset data(dataset, Device::CPU);
  CHECK(data.count() == 50);
  CHECK(data.channels() == 3);
  CHECK(data.height() == 32);
  CHECK(data.width() == 32);
  CHECK(data.device() == Device::CPU);
  for (bool augment : {true, false}) {
    for (bool shuffle : {true, false}) {
      CAPTURE(augment);
      CAPTURE(shuffle);
      LoaderConfig config;
      config.batch_size = 16;  // 50 = 3 x 16 + 2: a partial last batch
      config.workers = 0;
      config.augment = augment;
      config.shuffle = shuffle;
      config.seed = kSeed;
      Loader loader(dataset, config);
      for (int64_t epoch : {0, 3}) {
        loader.start_epoch(epoch);
        int64_t batches = 0;
        for (Batch batch; loader.next(batch); ++batches) {
          CAPTURE(batch.number);
          const Gathered g = gather(data, 16, augment, shuffle, epoch, batch.number);
          CHECK(g.images.shape() == batch.images.shape());
          CHECK(g.images.to_vector() == batch.images.to_vector());
          std::vector<float> labels(batch.labels.begin(), batch.labels.end());
          CHECK(g.labels.to_vector() == labels);
        }
        CHECK(batches == 4);
      }
    }
  }
}

TEST_CASE("device data: the epoch order tensor is the Loader's order") {
  const std::vector<int64_t> order = shuffled_order(1000, kSeed, 5);
  const std::vector<float> tensor = epoch_order(1000, kSeed, 5, true, Device::CPU).to_vector();
  REQUIRE(tensor.size() == order.size());
  for (size_t i = 0; i < order.size(); ++i) CHECK(tensor[i] == static_cast<float>(order[i]));
  const std::vector<float> identity = epoch_order(7, kSeed, 5, false, Device::CPU).to_vector();
  CHECK(identity == std::vector<float>{0, 1, 2, 3, 4, 5, 6});
  CHECK_THROWS_WITH_AS(epoch_order((int64_t{1} << 24) + 1, kSeed, 0, true, Device::CPU),
                       doctest::Contains("expected 0..2^24"), Error);
}

TEST_CASE("device data: the gather checks shapes, positions and the normalisation") {
  const ImageDataset dataset = synthetic_dataset(10);
  const DeviceDataset data(dataset, Device::CPU);
  const Tensor order = epoch_order(10, kSeed, 0, true, Device::CPU);
  Tensor images({4, 3, 32, 32}), labels({4});
  const Normalization norm = cifar10_normalization();
  // Batch 2 of size 4 would need positions 8..11 of 10.
  CHECK(error_message([&] {
          gather_batch(data, order, clock_tensor(2, 0), 4, true, kSeed, 4, norm, images, labels);
        }).find("outside the epoch order of 10") != std::string::npos);
  CHECK(error_message([&] {
          gather_batch(data, order, clock_tensor(0, 0), 3, true, kSeed, 4, norm, images, labels);
        }).find("batch of 4 rows for batch size 3") != std::string::npos);
  Tensor wrong({4, 1, 32, 32});
  CHECK(error_message([&] {
          gather_batch(data, order, clock_tensor(0, 0), 4, true, kSeed, 4, norm, wrong, labels);
        }).find("expected [rows, 3, 32, 32]") != std::string::npos);
  const Normalization gray({0.5f}, {0.25f});
  CHECK(error_message([&] {
          gather_batch(data, order, clock_tensor(0, 0), 4, true, kSeed, 4, gray, images, labels);
        }).find("normalisation has 1 channels") != std::string::npos);
}

TEST_CASE("device data: metrics accumulate loss x N, correct rows (first maximum), N and top-5 rows") {
  // Row 0: maximum 3 at classes 1 and 2, the first (1) counts: label 1, correct.
  // Row 1: maximum at 0, label 2: wrong. Row 2: maximum at 2, label 2: correct.
  // Row 3: all equal, first maximum 0, label 0: correct.
  const Tensor logits = Tensor::from_vector({1, 3, 3, 5, -1, 2, 0, 1, 4, 7, 7, 7}, {4, 3});
  const Tensor labels = Tensor::from_vector({1, 2, 2, 0}, {4});
  Tensor metrics = Tensor::from_vector({1.0f, 2.0f, 10.0f, 1.0f}, {4});
  accumulate_metrics(logits, labels, Tensor::full({1}, 0.5f), metrics);
  // Three classes: every label is in the top 5.
  CHECK(metrics.to_vector() == std::vector<float>{1.0f + 0.5f * 4, 2.0f + 3, 14.0f, 5.0f});
  accumulate_metrics(logits, Tensor::from_vector({2, 1, 0, 1}, {4}), Tensor::full({1}, 0.25f), metrics);
  CHECK(metrics.to_vector() == std::vector<float>{4.0f, 5.0f, 18.0f, 9.0f});
  // Seven classes. Row 0 (logits 6 5 4 2 2 1 0): label 4 has 6, 5, 4 and the equal logit at the
  // lower index 3 above it, rank 4: top 5. Row 1 (6 5 4 3 2 1 0): label 5 has five above: not.
  const Tensor wide = Tensor::from_vector({6, 5, 4, 2, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0}, {2, 7});
  Tensor m7 = Tensor::zeros({4});
  accumulate_metrics(wide, Tensor::from_vector({4, 5}, {2}), Tensor::full({1}, 0.0f), m7);
  CHECK(m7.to_vector() == std::vector<float>{0.0f, 0.0f, 2.0f, 1.0f});
  accumulate_metrics(wide, Tensor::from_vector({3, 0}, {2}), Tensor::full({1}, 0.0f), m7);
  CHECK(m7.to_vector() == std::vector<float>{0.0f, 1.0f, 4.0f, 3.0f});
  // A label that names no class (NaN: what the gather writes for a broken order) is never
  // correct, not even where the first maximum is class 0.
  Tensor mn = Tensor::zeros({4});
  accumulate_metrics(logits, Tensor::from_vector({std::nanf(""), 2, 2, std::nanf("")}, {4}), Tensor::full({1}, 0.0f), mn);
  CHECK(mn.to_vector() == std::vector<float>{0.0f, 1.0f, 4.0f, 2.0f});
  Tensor short_metrics = Tensor::zeros({3});
  CHECK_THROWS_WITH_AS(accumulate_metrics(logits, labels, Tensor::full({1}, 0.5f), short_metrics),
                       doctest::Contains("metrics [4]"), Error);
}

GPU_TEST_CASE("device data: the CUDA gather equals the CPU twin bit for bit") {
  const ImageDataset dataset = synthetic_dataset(70);
  const DeviceDataset cpu(dataset, Device::CPU), gpu(dataset, Device::CUDA);
  CHECK(gpu.device() == Device::CUDA);
  CHECK(gpu.labels().to_vector() == cpu.labels().to_vector());
  for (bool augment : {true, false}) {
    for (int padding : {4, 2}) {
      CAPTURE(augment);
      CAPTURE(padding);
      for (int64_t epoch : {0, 1}) {
        for (int64_t number = 0; number < 3; ++number) {  // batches of 32, 32 and 6 rows
          const Gathered on_cpu = gather(cpu, 32, augment, true, epoch, number, padding);
          const Gathered on_gpu = gather(gpu, 32, augment, true, epoch, number, padding);
          CHECK(on_gpu.images.is_cuda());
          CHECK(on_gpu.images.to_vector() == on_cpu.images.to_vector());
          CHECK(on_gpu.labels.to_vector() == on_cpu.labels.to_vector());
        }
      }
    }
  }
}

GPU_TEST_CASE("device data: the CUDA gather reads the clock on the device") {
  // One set of buffers, the clock rewritten between gathers (as the host does before replaying a
  // captured step): each gather must show the batch the clock names at that moment.
  const ImageDataset dataset = synthetic_dataset(40);
  const DeviceDataset cpu(dataset, Device::CPU), gpu(dataset, Device::CUDA);
  const Tensor order = epoch_order(40, kSeed, 2, true, Device::CUDA);
  Tensor clock = clock_tensor(0, 2, Device::CUDA);
  Tensor images({16, 3, 32, 32}, Device::CUDA), labels({16}, Device::CUDA);
  for (int64_t number : {1, 0}) {
    clock.copy_from(clock_tensor(number, 2));
    gather_batch(gpu, order, clock, 16, true, kSeed, 4, cifar10_normalization(), images, labels);
    const Gathered expected = gather(cpu, 16, true, true, 2, number);
    CHECK(images.to_vector() == expected.images.to_vector());
    CHECK(labels.to_vector() == expected.labels.to_vector());
  }
  // A channels-last batch: the same values, in NHWC order.
  Tensor images_cl({16, 3, 32, 32}, Device::CUDA, MemoryFormat::channels_last);
  gather_batch(gpu, order, clock, 16, true, kSeed, 4, cifar10_normalization(), images_cl, labels);
  CHECK(images_cl.is_channels_last());
  CHECK(images_cl.to_vector() == gather(cpu, 16, true, true, 2, 0).images.to_vector());
  // A position past the order (batch 3 of 16 in 40 images) shows up as NaN rather than garbage.
  clock.copy_from(clock_tensor(3, 2));
  gather_batch(gpu, order, clock, 16, true, kSeed, 4, cifar10_normalization(), images, labels);
  CHECK(std::isnan(labels.to_vector()[0]));
}

GPU_TEST_CASE("device data: CUDA metrics equal the CPU's") {
  const int64_t n = 600, classes = 10;  // more rows than the kernel's 256 threads
  std::vector<float> z = Tensor::uniform({n, classes}, -2.0f, 2.0f, 3).to_vector();
  for (float& v : z) v = std::round(v);  // many ties: the first maximum must win on both sides
  const Tensor logits = Tensor::from_vector(z, {n, classes});
  std::vector<float> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = i % 97 == 0 ? std::nanf("") : static_cast<float>((i * 3) % classes);
  const Tensor labels = Tensor::from_vector(t, {n});
  Tensor metrics = Tensor::from_vector({0.3f, 17.0f, 200.0f, 30.0f}, {4});
  Tensor gmetrics = metrics.to(Device::CUDA);
  for (float loss : {2.3025851f, 1.7f}) {
    accumulate_metrics(logits, labels, Tensor::full({1}, loss), metrics);
    accumulate_metrics(logits.to(Device::CUDA), labels.to(Device::CUDA), Tensor::full({1}, loss, Device::CUDA),
                       gmetrics);
    CHECK(gmetrics.to_vector() == metrics.to_vector());
  }
  CHECK(metrics.to_vector()[2] == 200.0f + 2 * n);
}
