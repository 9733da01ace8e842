// CIFAR-10 and CIFAR-100 readers for the official binary versions.
//
// The whole split is read into memory as bytes (uint8, one CHW image after another): CIFAR-10's
// training set is 150 MB that way, four times less than as float32, and augmentation turns
// bytes into normalised floats one batch at a time (data/augment.h, data/loader.h).
// Every file is checked before it is used: its size must be exactly records x record bytes and
// every label must be in range, and each error names the file, the record, what was expected
// and what was found, so a truncated download never trains silently on half the data.
//
// File formats (https://www.cs.toronto.edu/~kriz/cifar.html):
//   CIFAR-10:  data_batch_1.bin .. data_batch_5.bin (train), test_batch.bin (test); each holds
//              10000 records of 3073 bytes: 1 label byte (0..9), then 1024 R, 1024 G, 1024 B
//              bytes, each plane row-major 32x32.
//   CIFAR-100: train.bin (50000 records), test.bin (10000); each record is 3074 bytes: coarse
//              label (0..19), fine label (0..99), then the same 3072 pixel bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

// Images kept as bytes, CHW per image, images back to back, with one label per image.
struct ImageDataset {
  std::vector<uint8_t> pixels;  // count * channels * height * width bytes
  std::vector<int32_t> labels;  // count labels in 0..num_classes-1
  int64_t count = 0;
  int channels = 0, height = 0, width = 0;
  int num_classes = 0;

  int64_t image_bytes() const { return int64_t(channels) * height * width; }
  // The CHW bytes of image i (0 <= i < count).
  const uint8_t* image(int64_t i) const;
};

// Reads the training split (50000 images) or the test split (10000) of CIFAR-10 from `dir`.
// `dir` is the folder holding the .bin files, or a folder holding the unpacked archive's
// cifar-10-batches-bin/ (as `make cifar10` leaves it in data/): both are accepted.
ImageDataset load_cifar10(const std::string& dir, bool train);

// Which of CIFAR-100's two labels to keep.
enum class Cifar100Labels { Fine, Coarse };

// Reads CIFAR-100's training (50000) or test (10000) split; fine labels (100 classes) unless
// asked otherwise. `dir` holds train.bin/test.bin, or the unpacked cifar-100-binary/.
ImageDataset load_cifar100(const std::string& dir, bool train,
                           Cifar100Labels labels = Cifar100Labels::Fine);

// One CIFAR-10 batch file already in memory: its `size` bytes must be exactly `records`
// records, checked as the folder reader checks each file (it runs the same code), with `name`
// standing for the file in error messages. For callers that hold the bytes, and for the fuzz
// target (fuzz/fuzz_cifar.cpp).
ImageDataset load_cifar10_batch(const uint8_t* bytes, size_t size, int64_t records,
                                const std::string& name);

// The same for one CIFAR-100 file (train.bin or test.bin).
ImageDataset load_cifar100_batch(const uint8_t* bytes, size_t size, int64_t records,
                                 const std::string& name,
                                 Cifar100Labels labels = Cifar100Labels::Fine);

// Keeps only the first n images (all of them when n >= count): for quick runs such as
// --limit-train / --limit-test. Frees the memory of the dropped images.
void keep_first(ImageDataset& dataset, int64_t n);

}  // namespace qnn
