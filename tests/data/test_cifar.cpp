// CIFAR readers: exact bytes and labels read back from synthetic files, one test per kind of
// bad input (each error message checked), and, when CIFAR10_DIR is set, the real files.
#include <doctest.h>

#include <cstdlib>
#include <filesystem>

#include "data/cifar.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// True when image i of `d` holds exactly the synthetic pixels of record `record`.
bool holds_record(const ImageDataset& d, int64_t i, int64_t record) {
  const uint8_t* image = d.image(i);
  for (int64_t p = 0; p < 3072; ++p)
    if (image[p] != synthetic_pixel(record, p)) return false;
  return true;
}

}  // namespace

TEST_CASE("cifar10: the test split reads back byte for byte") {
  TempDir dir;
  write_cifar10_file(dir.file("test_batch.bin"), 0);
  ImageDataset d = load_cifar10(dir.path, /*train=*/false);
  CHECK(d.count == 10000);
  CHECK(d.channels == 3);
  CHECK(d.height == 32);
  CHECK(d.width == 32);
  CHECK(d.num_classes == 10);
  CHECK(d.labels.size() == 10000);
  CHECK(d.pixels.size() == 10000u * 3072u);
  CHECK(d.labels[0] == 0);
  CHECK(d.labels[1234] == 4);
  CHECK(holds_record(d, 0, 0));
  CHECK(holds_record(d, 1234, 1234));
  CHECK(holds_record(d, 9999, 9999));
  CHECK_FALSE(holds_record(d, 1, 2));  // the check itself can tell records apart
  // Planes are R, G, B in that order: byte 1024 is the first green pixel.
  CHECK(d.image(5)[1024] == synthetic_pixel(5, 1024));
  CHECK_THROWS_WITH_AS(d.image(10000), doctest::Contains("image 10000 out of range"), Error);

  ImageDataset first = std::move(d);
  keep_first(first, 100);
  CHECK(first.count == 100);
  CHECK(first.labels.size() == 100);
  CHECK(first.pixels.size() == 100u * 3072u);
  CHECK(holds_record(first, 99, 99));
  keep_first(first, 1000);  // more than there are: unchanged
  CHECK(first.count == 100);
  CHECK_THROWS_AS(keep_first(first, -1), Error);
}

TEST_CASE("cifar10: the training split spans five files, found inside the archive folder") {
  TempDir dir;
  const std::string inner = dir.file("cifar-10-batches-bin");
  std::filesystem::create_directory(inner);
  // Black label-0 files, each with its first and last record set to the split's record number.
  for (int b = 0; b < 5; ++b) {
    const std::string file = inner + "/data_batch_" + std::to_string(b + 1) + ".bin";
    write_zero_file(file, 30730000);
    overwrite_cifar10_record(file, 0, b * 10000 + 1);
    overwrite_cifar10_record(file, 9999, b * 10000 + 9999);
  }
  const ImageDataset d = load_cifar10(dir.path, /*train=*/true);  // the parent folder
  CHECK(d.count == 50000);
  CHECK(d.pixels.size() == 50000u * 3072u);
  CHECK(d.labels.size() == 50000u);
  for (int b = 0; b < 5; ++b) {
    CAPTURE(b);
    CHECK(holds_record(d, b * 10000, b * 10000 + 1));
    CHECK(d.labels[b * 10000] == 1);
    CHECK(holds_record(d, b * 10000 + 9999, b * 10000 + 9999));
    CHECK(d.labels[b * 10000 + 9999] == 9);
  }
  CHECK(d.image(10001)[0] == 0);
  CHECK(d.labels[10001] == 0);
}

TEST_CASE("cifar10: bad input is named with what was expected and found") {
  TempDir dir;

  SUBCASE("missing folder") {
    const std::string missing = dir.file("nowhere");
    const std::string m = error_message([&] { load_cifar10(missing, true); });
    CHECK(contains(m, "[load_cifar10] data folder '" + missing + "' not found"));
    CHECK(contains(m, "make cifar10"));
    CHECK(contains(m, "--data"));
    CHECK(contains(m, "CIFAR10_DIR"));
  }
  SUBCASE("a file where the folder should be") {
    write_bytes(dir.file("plain"), {1, 2, 3});
    CHECK(contains(error_message([&] { load_cifar10(dir.file("plain"), false); }),
                   "is not a folder"));
  }
  SUBCASE("missing file") {
    write_zero_file(dir.file("test_batch.bin"), 30730000);  // the test split only
    const std::string m = error_message([&] { load_cifar10(dir.path, true); });
    CHECK(contains(m, "[load_cifar10] " + dir.file("data_batch_1.bin") + ": file not found"));
    CHECK(contains(m, "make cifar10"));
  }
  SUBCASE("truncated file") {
    write_zero_file(dir.file("test_batch.bin"), 30726927);
    const std::string m = error_message([&] { load_cifar10(dir.path, false); });
    CHECK(contains(m, dir.file("test_batch.bin")));
    CHECK(contains(m, "expected 30730000 bytes (10000 records of 3073 bytes)"));
    CHECK(contains(m, "found 30726927 bytes"));
    CHECK(contains(m, "truncated"));
  }
  SUBCASE("oversized file") {
    write_zero_file(dir.file("test_batch.bin"), 30733073);
    const std::string m = error_message([&] { load_cifar10(dir.path, false); });
    CHECK(contains(m, "expected 30730000 bytes"));
    CHECK(contains(m, "found 30733073 bytes"));
    CHECK(contains(m, "oversized"));
  }
  SUBCASE("label out of range") {
    write_zero_file(dir.file("test_batch.bin"), 30730000);
    patch_byte(dir.file("test_batch.bin"), 7 * 3073, 10);  // record 7's label
    const std::string m = error_message([&] { load_cifar10(dir.path, false); });
    CHECK(contains(m, dir.file("test_batch.bin") + ": record 7 has label 10, expected 0..9 (10 classes)"));
  }
}

TEST_CASE("cifar100: fine labels by default, coarse on request, both validated") {
  TempDir dir;
  const std::string file = dir.file("test.bin");
  write_records(file, 0, 10000, [](int64_t r) {
    return std::vector<uint8_t>{static_cast<uint8_t>(r % 20), static_cast<uint8_t>(r % 100)};
  });

  const ImageDataset fine = load_cifar100(dir.path, false);
  CHECK(fine.count == 10000);
  CHECK(fine.num_classes == 100);
  CHECK(fine.labels[57] == 57);
  CHECK(fine.labels[157] == 57);
  CHECK(holds_record(fine, 157, 157));
  const ImageDataset coarse = load_cifar100(dir.path, false, Cifar100Labels::Coarse);
  CHECK(coarse.num_classes == 20);
  CHECK(coarse.labels[57] == 17);

  CHECK(contains(error_message([&] { load_cifar100(dir.path, true); }),
                 "[load_cifar100] " + dir.file("train.bin") + ": file not found"));

  patch_byte(file, 3 * 3074 + 1, 100);  // record 3's fine label
  CHECK(contains(error_message([&] { load_cifar100(dir.path, false); }),
                 "record 3 has fine label 100, expected 0..99 (100 classes)"));
  patch_byte(file, 3 * 3074 + 1, 3);
  patch_byte(file, 5 * 3074, 20);  // record 5's coarse label
  CHECK(contains(error_message([&] { load_cifar100(dir.path, false); }),
                 "record 5 has coarse label 20, expected 0..19 (20 classes)"));
  std::filesystem::resize_file(file, 10000 * 3074 - 1);
  CHECK(contains(error_message([&] { load_cifar100(dir.path, false); }),
                 "expected 30740000 bytes (10000 records of 3074 bytes), found 30739999 bytes"));
}

TEST_CASE("cifar: batch files in memory are checked as files on disk are") {
  // Three CIFAR-10 records (labels 0, 1, 2) and two CIFAR-100 records, built in memory.
  std::vector<uint8_t> ten, hundred;
  for (int64_t r = 0; r < 3; ++r) {
    ten.push_back(static_cast<uint8_t>(r));
    for (int64_t p = 0; p < 3072; ++p) ten.push_back(synthetic_pixel(r, p));
  }
  for (int64_t r = 0; r < 2; ++r) {
    hundred.push_back(static_cast<uint8_t>(19 - r));
    hundred.push_back(static_cast<uint8_t>(99 - r));
    for (int64_t p = 0; p < 3072; ++p) hundred.push_back(synthetic_pixel(r, p));
  }

  const ImageDataset d = load_cifar10_batch(ten.data(), ten.size(), 3, "mem.bin");
  CHECK(d.count == 3);
  CHECK(d.num_classes == 10);
  CHECK(d.labels == std::vector<int32_t>{0, 1, 2});
  CHECK(holds_record(d, 2, 2));
  const ImageDataset fine = load_cifar100_batch(hundred.data(), hundred.size(), 2, "mem100.bin");
  CHECK(fine.labels == std::vector<int32_t>{99, 98});
  CHECK(holds_record(fine, 1, 1));
  const ImageDataset coarse =
      load_cifar100_batch(hundred.data(), hundred.size(), 2, "mem100.bin", Cifar100Labels::Coarse);
  CHECK(coarse.labels == std::vector<int32_t>{19, 18});
  CHECK(load_cifar10_batch(nullptr, 0, 0, "empty.bin").count == 0);

  CHECK(error_message([&] { load_cifar10_batch(ten.data(), ten.size() - 1, 3, "mem.bin"); }) ==
        "[load_cifar10_batch] mem.bin: expected 9219 bytes (3 records of 3073 bytes), found 9218 "
        "bytes: the file is truncated (an interrupted download?)");
  CHECK(contains(error_message([&] { load_cifar10_batch(ten.data(), ten.size(), 2, "mem.bin"); }),
                 "oversized"));
  CHECK(contains(error_message([&] { load_cifar10_batch(ten.data(), ten.size(), -1, "mem.bin"); }),
                 "mem.bin: cannot hold -1 records"));
  CHECK(contains(error_message([&] { load_cifar10_batch(ten.data(), ten.size(), int64_t{1} << 62, "m"); }),
                 "cannot hold 4611686018427387904 records"));
  ten[3073] = 10;  // record 1's label
  CHECK(error_message([&] { load_cifar10_batch(ten.data(), ten.size(), 3, "mem.bin"); }) ==
        "[load_cifar10_batch] mem.bin: record 1 has label 10, expected 0..9 (10 classes)");
  hundred[3074] = 20;  // record 1's coarse label
  CHECK(contains(error_message([&] { load_cifar100_batch(hundred.data(), hundred.size(), 2, "h"); }),
                 "[load_cifar100_batch] h: record 1 has coarse label 20, expected 0..19"));
}

TEST_CASE("cifar10: the real files (when CIFAR10_DIR is set)") {
  const char* dir = std::getenv("CIFAR10_DIR");
  if (dir == nullptr || *dir == '\0') {
    MESSAGE("real CIFAR-10 checks skipped: CIFAR10_DIR is not set (point it at the folder "
            "holding data_batch_1.bin .. test_batch.bin)");
    return;
  }
  const ImageDataset train = load_cifar10(dir, true);
  const ImageDataset test = load_cifar10(dir, false);
  CHECK(train.count == 50000);
  CHECK(test.count == 10000);
  std::vector<int64_t> train_histogram(10, 0), test_histogram(10, 0);
  for (int32_t label : train.labels) ++train_histogram.at(label);
  for (int32_t label : test.labels) ++test_histogram.at(label);
  for (int c = 0; c < 10; ++c) {
    CHECK(train_histogram[c] == 5000);
    CHECK(test_histogram[c] == 1000);
  }
  CHECK(test.labels[0] == 3);   // the official test set opens with a cat
  CHECK(train.labels[0] == 6);  // and the training set with a frog
}
