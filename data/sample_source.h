// What the batch loader (data/loader.h) draws samples from: anything that can fill one
// sample's normalised float32 CHW values and give its label, given the sample's index, the
// run's seed and the epoch. A source must be a pure function of those (so batches are the same
// whatever the threads do) and safe to call from several threads at once.
//
// ByteImageSource is the in-memory CIFAR-style one (data/cifar.h's ImageDataset with
// data/augment.h's crop + flip); ImageFolderSource (data/image_folder_source.h) decodes files.
#pragma once
#include <cstdint>

#include "data/augment.h"
#include "data/cifar.h"

namespace qnn {

struct SampleShape {
  int channels = 0, height = 0, width = 0;
  int64_t values() const { return static_cast<int64_t>(channels) * height * width; }
};

class SampleSource {
 public:
  virtual ~SampleSource() = default;
  virtual int64_t count() const = 0;       // samples per epoch
  virtual SampleShape shape() const = 0;   // every sample's shape
  // Writes sample `index`'s shape().values() floats to `out` and returns its label.
  virtual int32_t fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const = 0;

  // A source whose floats are bytes put through a normalisation table (data/augment.h) can give
  // the bytes instead: a GPU run then copies a quarter of the data to the device and normalises
  // it there. byte_normalization() is that table (nullptr: the source has no byte form), and
  // fill_bytes() writes shape().values() bytes, C x H x W, such that fill()'s value at channel c
  // is byte_normalization()->table(c)[byte].
  virtual const Normalization* byte_normalization() const { return nullptr; }
  virtual int32_t fill_bytes(int64_t index, uint64_t seed, int64_t epoch, uint8_t* out) const;
};

// An ImageDataset's byte images, normalised, and when `augment` randomly cropped (zero padding
// `padding`) and flipped with data/augment.h's draws. Keeps a reference to the dataset.
class ByteImageSource : public SampleSource {
 public:
  ByteImageSource(const ImageDataset& dataset, bool augment, int padding, Normalization normalization);
  int64_t count() const override { return count_; }
  SampleShape shape() const override { return {dataset_.channels, dataset_.height, dataset_.width}; }
  int32_t fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const override;

 private:
  const ImageDataset& dataset_;
  const int64_t count_;  // the dataset's count when the source was made
  const bool augment_;
  const int padding_;
  const Normalization normalization_;
};

}  // namespace qnn
