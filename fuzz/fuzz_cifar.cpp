// libFuzzer target for the CIFAR-10 and CIFAR-100 batch readers (data/cifar.h).
//
// The input is one batch file's bytes. Each reader runs twice: on the input's whole records
// (the size check passes, so every label byte is checked and every record copied) and on the
// whole input claiming one record more than fits (the truncated-file error). A reader may only
// return a dataset that matches the bytes exactly or throw qnn::Error; anything else (another
// exception, a crash, a sanitizer report, a wrong dataset) is a defect.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "data/cifar.h"
#include "tensor/check.h"

namespace {

// Stops the run so that libFuzzer saves the input: the reader returned a wrong dataset.
void require(bool ok) {
  if (!ok) std::abort();
}

// Checks that `d` holds exactly the `records` records of `label_bytes` label bytes at `bytes`,
// keeping label byte `kept` out of `classes` classes.
void check_dataset(const qnn::ImageDataset& d, const uint8_t* bytes, int64_t records, int label_bytes,
                   int kept, int classes) {
  const int64_t record_bytes = label_bytes + 3072;
  require(d.count == records && d.channels == 3 && d.height == 32 && d.width == 32);
  require(d.num_classes == classes);
  require(static_cast<int64_t>(d.labels.size()) == records);
  require(static_cast<int64_t>(d.pixels.size()) == records * 3072);
  for (int64_t r = 0; r < records; ++r) {
    const uint8_t* record = bytes + r * record_bytes;
    require(d.labels[r] == record[kept] && d.labels[r] >= 0 && d.labels[r] < classes);
    require(std::memcmp(d.image(r), record + label_bytes, 3072) == 0);
  }
}

// Runs `read(size, records)` and checks its result; qnn::Error is a valid answer.
template <class Read, class Check>
void attempt(Read&& read, Check&& check, size_t size, int64_t records) {
  try {
    const qnn::ImageDataset d = read(size, records);
    check(d, records);
  } catch (const qnn::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // CIFAR-10: 1 label byte (0..9) per 3073-byte record.
  const int64_t ten = static_cast<int64_t>(size / 3073);
  auto read10 = [&](size_t n, int64_t records) {
    return qnn::load_cifar10_batch(data, n, records, "fuzz-cifar10.bin");
  };
  auto check10 = [&](const qnn::ImageDataset& d, int64_t records) {
    check_dataset(d, data, records, 1, 0, 10);
  };
  attempt(read10, check10, static_cast<size_t>(ten * 3073), ten);
  attempt(read10, [](const qnn::ImageDataset&, int64_t) { std::abort(); }, size, ten + 1);

  // CIFAR-100: coarse (0..19) and fine (0..99) label bytes per 3074-byte record.
  const int64_t hundred = static_cast<int64_t>(size / 3074);
  for (const auto labels : {qnn::Cifar100Labels::Fine, qnn::Cifar100Labels::Coarse}) {
    const bool fine = labels == qnn::Cifar100Labels::Fine;
    auto read100 = [&](size_t n, int64_t records) {
      return qnn::load_cifar100_batch(data, n, records, "fuzz-cifar100.bin", labels);
    };
    auto check100 = [&](const qnn::ImageDataset& d, int64_t records) {
      check_dataset(d, data, records, 2, fine ? 1 : 0, fine ? 100 : 20);
    };
    attempt(read100, check100, static_cast<size_t>(hundred * 3074), hundred);
    attempt(read100, [](const qnn::ImageDataset&, int64_t) { std::abort(); }, size, hundred + 1);
  }
  return 0;
}
