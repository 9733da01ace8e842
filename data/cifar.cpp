// CIFAR-10/100 binary readers (see data/cifar.h): find the folder, check each file's size,
// read it in chunks of records, check every label, and copy the pixel bytes into one
// ImageDataset. The in-memory readers (load_cifar10_batch, load_cifar100_batch) run the same
// size check and the same record parser on bytes they are given.
#include "data/cifar.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>

#include "tensor/check.h"

namespace qnn {

namespace fs = std::filesystem;

namespace {

constexpr int kChannels = 3;
constexpr int kSide = 32;
constexpr int64_t kPixelBytes = int64_t(kChannels) * kSide * kSide;  // 3072

// What differs between the two datasets. Errors carry `loader` as their "[function]" prefix.
struct CifarFormat {
  const char* loader;          // "load_cifar10"
  const char* archive_folder;  // the folder the official archive unpacks to
  const char* hint;            // how to get the files, appended to "not found" errors
  int label_bytes;             // label bytes at the start of each record
  const char* label_names[2];  // per label byte, for error messages
  int label_classes[2];        // per label byte: valid labels are 0..classes-1
  int kept_label;              // which label byte becomes ImageDataset::labels

  int64_t record_bytes() const { return label_bytes + kPixelBytes; }
};

[[noreturn]] void fail(const CifarFormat& format, const std::string& message) {
  throw Error(str("[", format.loader, "] ", message));
}

// The folder holding the .bin files: `dir` itself, or the archive's folder inside it.
fs::path find_folder(const CifarFormat& format, const std::string& dir) {
  const fs::path path(dir);
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(format, str("data folder '", dir, "' not found; ", format.hint));
  if (!fs::is_directory(path, ec)) fail(format, str("'", dir, "' is not a folder; ", format.hint));
  const fs::path inner = path / format.archive_folder;
  return fs::is_directory(inner, ec) ? inner : path;
}

// Checks that `name`, of `found` bytes, holds exactly `records` records.
void check_size(const CifarFormat& format, const std::string& name, int64_t records, int64_t found) {
  const int64_t expected = records * format.record_bytes();
  if (found != expected) {
    fail(format, str(name, ": expected ", expected, " bytes (", records, " records of ",
                     format.record_bytes(), " bytes), found ", found, " bytes: ",
                     found < expected ? "the file is truncated (an interrupted download?)"
                                      : "the file is oversized (a different format?)"));
  }
}

// Checks the labels of the `n` records at `bytes` (numbered from `first` within `name`) and
// appends their images and labels to `out`.
void append_records(const CifarFormat& format, const std::string& name, const uint8_t* bytes,
                    int64_t first, int64_t n, ImageDataset& out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t* record = bytes + i * format.record_bytes();
    for (int b = 0; b < format.label_bytes; ++b) {
      if (record[b] >= format.label_classes[b]) {
        fail(format, str(name, ": record ", first + i, " has ", format.label_names[b], " ",
                         int(record[b]), ", expected 0..", format.label_classes[b] - 1, " (",
                         format.label_classes[b], " classes)"));
      }
    }
    out.labels.push_back(record[format.kept_label]);
    out.pixels.insert(out.pixels.end(), record + format.label_bytes, record + format.record_bytes());
  }
  out.count += n;
}

// An empty dataset of the format's image size and classes, with room for `records` images.
ImageDataset empty_dataset(const CifarFormat& format, int64_t records) {
  ImageDataset out;
  out.channels = kChannels;
  out.height = out.width = kSide;
  out.num_classes = format.label_classes[format.kept_label];
  out.pixels.reserve(static_cast<size_t>(records * kPixelBytes));  // no reallocation
  out.labels.reserve(static_cast<size_t>(records));
  return out;
}

// Reads one file of `records` records and appends its images and labels to `out`.
void read_file(const CifarFormat& format, const fs::path& path, int64_t records,
               ImageDataset& out) {
  const std::string name = path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail(format, str(name, ": file not found (expected ", records, " records of ",
                     format.record_bytes(), " bytes); ", format.hint));
  }
  const auto found = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) fail(format, str(name, ": cannot read its size: ", ec.message()));
  check_size(format, name, records, found);

  // Read in chunks of records into one small reused buffer and append each record's pixels:
  // the only large allocation is the dataset itself, written once.
  std::ifstream file(path, std::ios::binary);
  if (!file) fail(format, str(name, ": cannot open it for reading"));
  const int64_t chunk_records = 512;
  std::vector<uint8_t> chunk(static_cast<size_t>(chunk_records * format.record_bytes()));
  for (int64_t start = 0; start < records; start += chunk_records) {
    const int64_t n = std::min(chunk_records, records - start);
    const int64_t want = n * format.record_bytes();
    file.read(reinterpret_cast<char*>(chunk.data()), want);
    if (!file || file.gcount() != want) {
      fail(format, str(name, ": read failed at byte ", start * format.record_bytes() + file.gcount(),
                       " of ", records * format.record_bytes()));
    }
    append_records(format, name, chunk.data(), start, n, out);
  }
}

// Reads the files in order into one dataset.
ImageDataset read_files(const CifarFormat& format, const std::string& dir,
                        const std::vector<std::string>& files, int64_t records_per_file) {
  const fs::path folder = find_folder(format, dir);
  ImageDataset out = empty_dataset(format, static_cast<int64_t>(files.size()) * records_per_file);
  for (const std::string& file : files) read_file(format, folder / file, records_per_file, out);
  return out;
}

// One file's bytes in memory, checked exactly as read_file checks a file on disk.
ImageDataset read_bytes(const CifarFormat& format, const uint8_t* bytes, size_t size,
                        int64_t records, const std::string& name) {
  if (records < 0 || records > std::numeric_limits<int64_t>::max() / format.record_bytes())
    fail(format, str(name, ": cannot hold ", records, " records: expected a count from 0 to ",
                     std::numeric_limits<int64_t>::max() / format.record_bytes()));
  if (size > static_cast<size_t>(std::numeric_limits<int64_t>::max()))
    fail(format, str(name, ": ", size, " bytes is beyond any CIFAR file"));
  check_size(format, name, records, static_cast<int64_t>(size));
  ImageDataset out = empty_dataset(format, records);
  append_records(format, name, bytes, 0, records, out);
  return out;
}

CifarFormat cifar10_format(const char* loader) {
  return {loader, "cifar-10-batches-bin",
          "run `make cifar10` (downloads into data/), or pass --data DIR or set CIFAR10_DIR to "
          "the folder holding data_batch_1.bin .. test_batch.bin",
          1, {"label", ""}, {10, 0}, 0};
}

CifarFormat cifar100_format(const char* loader, Cifar100Labels labels) {
  return {loader, "cifar-100-binary",
          "download cifar-100-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, "
          "unpack it and pass --data DIR (the folder holding train.bin and test.bin)",
          2, {"coarse label", "fine label"}, {20, 100},
          labels == Cifar100Labels::Fine ? 1 : 0};
}

}  // namespace

const uint8_t* ImageDataset::image(int64_t i) const {
  QNN_CHECK(i >= 0 && i < count, "image ", i, " out of range for a dataset of ", count, " images");
  return pixels.data() + i * image_bytes();
}

ImageDataset load_cifar10(const std::string& dir, bool train) {
  const CifarFormat format = cifar10_format("load_cifar10");
  if (!train) return read_files(format, dir, {"test_batch.bin"}, 10000);
  return read_files(format, dir,
                    {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                     "data_batch_4.bin", "data_batch_5.bin"},
                    10000);
}

ImageDataset load_cifar100(const std::string& dir, bool train, Cifar100Labels labels) {
  const CifarFormat format = cifar100_format("load_cifar100", labels);
  return train ? read_files(format, dir, {"train.bin"}, 50000)
               : read_files(format, dir, {"test.bin"}, 10000);
}

ImageDataset load_cifar10_batch(const uint8_t* bytes, size_t size, int64_t records,
                                const std::string& name) {
  return read_bytes(cifar10_format("load_cifar10_batch"), bytes, size, records, name);
}

ImageDataset load_cifar100_batch(const uint8_t* bytes, size_t size, int64_t records,
                                 const std::string& name, Cifar100Labels labels) {
  return read_bytes(cifar100_format("load_cifar100_batch", labels), bytes, size, records, name);
}

void keep_first(ImageDataset& dataset, int64_t n) {
  QNN_CHECK(n >= 0, "cannot keep ", n, " images: expected a count >= 0");
  if (n >= dataset.count) return;
  dataset.count = n;
  dataset.labels.resize(static_cast<size_t>(n));
  dataset.labels.shrink_to_fit();
  dataset.pixels.resize(static_cast<size_t>(n * dataset.image_bytes()));
  dataset.pixels.shrink_to_fit();
}

}  // namespace qnn
