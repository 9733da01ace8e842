// Test helpers for the data layer: a temporary folder that removes itself, a whole-file reader,
// and writers for small synthetic CIFAR files whose every byte is a known function of the
// record number, so a test can check exactly what a reader returns.
#pragma once
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/cifar.h"
#include "tensor/check.h"

namespace qnn::testing {

// mkdtemp folder under the system temp dir, deleted with everything in it on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "qnn-data-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

// Pixel byte p (0..3071) of the record numbered `record` across a whole split.
inline uint8_t synthetic_pixel(int64_t record, int64_t p) {
  return static_cast<uint8_t>((record * 31 + p * 7 + (p >> 8)) & 255);
}

// A file's bytes, read in one block copy (not a character at a time: files here reach 30 MB).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Writes `records` CIFAR records numbered from `first`: the bytes labels(record) returns, then
// the synthetic pixels of that record. Streams record by record (no large buffer).
template <class Labels>
void write_records(const std::string& path, int64_t first, int64_t records, Labels labels) {
  std::ofstream out(path, std::ios::binary);
  std::vector<uint8_t> record;
  for (int64_t r = first; r < first + records; ++r) {
    record = labels(r);
    const size_t start = record.size();
    record.resize(start + 3072);
    for (int64_t p = 0; p < 3072; ++p) record[start + p] = synthetic_pixel(r, p);
    out.write(reinterpret_cast<const char*>(record.data()), static_cast<std::streamsize>(record.size()));
  }
  if (!out) throw std::runtime_error("cannot write " + path);
}

// A CIFAR-10 batch file of `records` records numbered from `first`, label record % 10.
inline void write_cifar10_file(const std::string& path, int64_t first, int64_t records = 10000) {
  write_records(path, first, records,
                [](int64_t r) { return std::vector<uint8_t>{static_cast<uint8_t>(r % 10)}; });
}

// The six CIFAR-10 batch files (data_batch_1..5, test_batch) in `folder`, created if missing,
// numbered across the splits as one run: training records 0..49999, test 50000..59999.
inline std::string write_cifar10_folder(const std::string& folder) {
  std::filesystem::create_directories(folder);
  for (int f = 1; f <= 5; ++f)
    write_cifar10_file(folder + "/data_batch_" + std::to_string(f) + ".bin", (f - 1) * 10000);
  write_cifar10_file(folder + "/test_batch.bin", 50000);
  return folder;
}

// A file of `bytes` zero bytes, made sparse and instantly: every record in it is a black image
// with label 0, a valid CIFAR record.
inline void write_zero_file(const std::string& path, int64_t bytes) {
  { std::ofstream create(path, std::ios::binary); }
  std::filesystem::resize_file(path, static_cast<std::uintmax_t>(bytes));
}

// Overwrites record `slot` of a CIFAR-10 file with synthetic record `record` (label record % 10).
inline void overwrite_cifar10_record(const std::string& path, int64_t slot, int64_t record) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(slot * 3073);
  f.put(static_cast<char>(record % 10));
  for (int64_t p = 0; p < 3072; ++p) f.put(static_cast<char>(synthetic_pixel(record, p)));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Overwrites one byte of a file in place (to plant a bad label).
inline void patch_byte(const std::string& path, int64_t offset, uint8_t value) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(offset);
  f.put(static_cast<char>(value));
  if (!f) throw std::runtime_error("cannot patch " + path);
}

// A small in-memory dataset of n 3x32x32 synthetic images, label i % 10: for augmentation and
// loader tests that need no files.
inline ImageDataset synthetic_dataset(int64_t n) {
  ImageDataset d;
  d.count = n;
  d.channels = 3;
  d.height = d.width = 32;
  d.num_classes = 10;
  d.pixels.resize(static_cast<size_t>(n * 3072));
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 10));
    for (int64_t p = 0; p < 3072; ++p) d.pixels[i * 3072 + p] = synthetic_pixel(i, p);
  }
  return d;
}

// The message of the qnn::Error that f() throws, or "" if it throws none (so checks on it fail).
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

}  // namespace qnn::testing
