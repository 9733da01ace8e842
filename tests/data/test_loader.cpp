// The batch loader: each index once per epoch, identical batches whatever the number of
// workers, a new order each epoch, last-batch handling, and errors from workers reaching the
// consumer.
#include <doctest.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "data/loader.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// Every batch of one epoch.
std::vector<Batch> run_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> batches;
  for (Batch batch; loader.next(batch);) batches.push_back(std::move(batch));
  return batches;
}

std::vector<int64_t> visit_order(const std::vector<Batch>& batches) {
  std::vector<int64_t> order;
  for (const Batch& b : batches) order.insert(order.end(), b.indices.begin(), b.indices.end());
  return order;
}

LoaderConfig config_with(int64_t batch_size, int workers, bool augment = true) {
  LoaderConfig config;
  config.batch_size = batch_size;
  config.workers = workers;
  config.augment = augment;
  config.seed = 11;
  return config;
}

}  // namespace

TEST_CASE("loader: every image exactly once per epoch, with its label and pixels") {
  const ImageDataset d = synthetic_dataset(103);
  Loader loader(d, config_with(10, 2));
  CHECK(loader.batches_per_epoch() == 11);
  const std::vector<Batch> batches = run_epoch(loader, 0);
  REQUIRE(batches.size() == 11);
  std::vector<int64_t> order = visit_order(batches);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 103; ++i) CHECK(sorted[i] == i);
  CHECK(order != sorted);  // shuffled

  const Normalization norm = cifar10_normalization();
  for (size_t b = 0; b < batches.size(); ++b) {
    const Batch& batch = batches[b];
    CHECK(batch.number == int64_t(b));
    const int64_t size = b + 1 < batches.size() ? 10 : 3;  // 103 = 10 x 10 + 3
    CHECK(batch.images.shape() == Shape{size, 3, 32, 32});
    REQUIRE(batch.labels.size() == size_t(size));
    for (int64_t i = 0; i < size; ++i) {
      const int64_t index = batch.indices[i];
      CHECK(batch.labels[i] == d.labels[index]);
      std::vector<float> expected(3072);
      augment_image(d.image(index), 3, 32, 32, draw_augmentation(11, 0, index, 4), 4, norm,
                    expected.data());
      CHECK(std::equal(expected.begin(), expected.end(), batch.images.data() + i * 3072));
    }
  }
}

TEST_CASE("loader: batches do not depend on the number of workers") {
  const ImageDataset d = synthetic_dataset(70);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 3}) {
    LoaderConfig config = config_with(8, workers);
    config.prefetch = 2;
    Loader loader(d, config);
    run_epoch(loader, 0);
    runs.push_back(run_epoch(loader, 5));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    REQUIRE(runs[r].size() == runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      CHECK(runs[r][b].indices == runs[0][b].indices);
      CHECK(runs[r][b].labels == runs[0][b].labels);
      CHECK(runs[r][b].images.to_vector() == runs[0][b].images.to_vector());
    }
  }
}

TEST_CASE("loader: each epoch has its own order, reproducible from (seed, epoch)") {
  const ImageDataset d = synthetic_dataset(50);
  Loader loader(d, config_with(16, 2, /*augment=*/false));
  const std::vector<int64_t> epoch0 = visit_order(run_epoch(loader, 0));
  const std::vector<int64_t> epoch1 = visit_order(run_epoch(loader, 1));
  CHECK(epoch0 != epoch1);
  CHECK(visit_order(run_epoch(loader, 0)) == epoch0);
  CHECK(epoch0 == shuffled_order(50, 11, 0));

  // Restarting mid-epoch abandons the old epoch's batches cleanly.
  loader.start_epoch(0);
  Batch first;
  REQUIRE(loader.next(first));
  CHECK(visit_order(run_epoch(loader, 1)) == epoch1);

  LoaderConfig in_order = config_with(16, 2, false);
  in_order.shuffle = false;
  Loader sequential(d, in_order);
  const std::vector<int64_t> order = visit_order(run_epoch(sequential, 3));
  for (int64_t i = 0; i < 50; ++i) CHECK(order[i] == i);
}

TEST_CASE("loader: partial last batch, or none with drop_last") {
  const ImageDataset d = synthetic_dataset(10);
  Loader keep(d, config_with(4, 2));
  CHECK(keep.batches_per_epoch() == 3);
  std::vector<Batch> batches = run_epoch(keep, 0);
  REQUIRE(batches.size() == 3);
  CHECK(batches[2].images.shape() == Shape{2, 3, 32, 32});
  CHECK(batches[2].labels.size() == 2);
  Batch after;
  CHECK_FALSE(keep.next(after));  // exhausted, and stays so
  CHECK_FALSE(keep.next(after));

  LoaderConfig config = config_with(4, 2);
  config.drop_last = true;
  Loader drop(d, config);
  CHECK(drop.batches_per_epoch() == 2);
  batches = run_epoch(drop, 0);
  REQUIRE(batches.size() == 2);
  CHECK(batches[1].images.shape() == Shape{4, 3, 32, 32});
  CHECK(visit_order(batches).size() == 8);

  Loader exact(d, config_with(5, 1));
  CHECK(exact.batches_per_epoch() == 2);
  CHECK(run_epoch(exact, 0).back().labels.size() == 5);
}

TEST_CASE("loader: misuse and worker errors reach the caller") {
  ImageDataset d = synthetic_dataset(10);
  CHECK_THROWS_WITH_AS(Loader(d, config_with(0, 2)),
                       doctest::Contains("batch size is 0, expected >= 1"), Error);
  {
    Loader loader(d, config_with(4, 2));
    Batch batch;
    CHECK_THROWS_WITH_AS(loader.next(batch), doctest::Contains("call start_epoch() before next()"),
                         Error);
    CHECK_THROWS_WITH_AS(loader.start_epoch(-1), doctest::Contains("epoch -1 out of range"), Error);
  }
  for (int workers : {0, 2}) {
    CAPTURE(workers);
    LoaderConfig config = config_with(4, workers);
    config.shuffle = false;
    ImageDataset shrinking = d;  // outlives the loader
    Loader loader(shrinking, config);
    // The dataset shrinks under the loader (before the epoch starts, while workers are idle);
    // the loader still serves the 10 images it was made with, so batch 1 reaches image 6.
    shrinking.count = 6;
    loader.start_epoch(0);
    Batch batch;
    CHECK(loader.next(batch));
    CHECK_THROWS_WITH_AS(loader.next(batch), doctest::Contains("image 6 out of range"), Error);
  }
}

namespace {

// A byte dataset that counts the samples the loader asks it for.
struct CountingSource : ByteImageSource {
  using ByteImageSource::ByteImageSource;
  int32_t fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const override {
    ++fills;
    return ByteImageSource::fill(index, seed, epoch, out);
  }
  mutable std::atomic<int64_t> fills{0};
};

}  // namespace

TEST_CASE("loader: a rank's share is batches first, first + stride, ... of the full epoch, and only those are built") {
  const ImageDataset d = synthetic_dataset(103);  // 11 batches of 10, the last of 3
  Loader all(d, config_with(10, 2));
  const std::vector<Batch> full = run_epoch(all, 1);
  REQUIRE(full.size() == 11);
  for (int workers : {0, 2})
    for (int64_t stride : {1, 3, 4})
      for (int64_t first = 0; first < stride; ++first) {
        CAPTURE(workers);
        CAPTURE(stride);
        CAPTURE(first);
        CountingSource source(d, /*augment=*/true, 4, cifar10_normalization());
        Loader loader(source, config_with(10, workers));
        loader.start_epoch(1, first, stride);
        std::vector<int64_t> numbers;
        int64_t images = 0;
        for (Batch batch; loader.next(batch);) {
          numbers.push_back(batch.number);
          images += int64_t(batch.labels.size());
          const Batch& same = full[size_t(batch.number)];
          CHECK(batch.indices == same.indices);
          CHECK(batch.labels == same.labels);
          CHECK(std::equal(batch.images.data(), batch.images.data() + batch.images.numel(), same.images.data()));
        }
        std::vector<int64_t> expected;
        for (int64_t n = first; n < 11; n += stride) expected.push_back(n);
        CHECK(numbers == expected);
        CHECK(source.fills.load() == images);  // no other rank's batch was decoded
        CHECK(loader.batches_per_epoch() == 11);
      }
  Loader loader(d, config_with(10, 2));
  CHECK_THROWS_WITH_AS(loader.start_epoch(0, 3, 3), doctest::Contains("batch share first 3, stride 3"), Error);
  CHECK_THROWS_WITH_AS(loader.start_epoch(0, 0, 0), doctest::Contains("expected stride >= 1"), Error);
}
