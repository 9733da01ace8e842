// An image folder (data/image_folder.h) as a sample source for the batch loader
// (data/loader.h): each sample is read, decoded (data/image_decode.h) and transformed
// (data/image_transforms.h) on the loader's worker threads, into normalised float32 CHW
// size x size. Training: RandomResizedCrop(size) + RandomHorizontalFlip keyed by
// (seed, epoch, sample index); evaluation: Resize(resize) + CenterCrop(size). Both normalise
// with `normalization` (ImageNet's by default). fill_bytes() gives the same sample as CHW bytes
// before normalisation, for a GPU that normalises on the device.
//
// A file that cannot be read or decoded is an error naming it, unless skip_undecodable: then
// the sample is replaced by the next sample of the folder (index + 1, wrapping) that decodes,
// transformed with the random draws of the original index, and the bad file is remembered
// with its error; undecodable_count() says how many distinct files were skipped so far and
// undecodable_files() which and why, so the caller can print a summary.
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "data/image_decode.h"
#include "data/image_folder.h"
#include "data/image_transforms.h"
#include "data/sample_source.h"

namespace qnn {

struct ImageFolderOptions {
  bool train = false;  // RandomResizedCrop + flip; otherwise Resize + CenterCrop
  int size = 224;      // output side
  int resize = 256;    // evaluation's shorter side before the centre crop
  Normalization normalization = imagenet_normalization();
  ImageDecoder decoder = ImageDecoder::automatic;
  bool skip_undecodable = false;
};

class ImageFolderSource : public SampleSource {
 public:
  ImageFolderSource(ImageFolder folder, ImageFolderOptions options);
  int64_t count() const override { return folder_.count(); }
  SampleShape shape() const override { return {3, options_.size, options_.size}; }
  int32_t fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const override;
  const Normalization* byte_normalization() const override { return &options_.normalization; }
  int32_t fill_bytes(int64_t index, uint64_t seed, int64_t epoch, uint8_t* out) const override;

  // The transformed bytes (HWC, size x size) of sample `index`, and its label through `label`.
  RgbImage transformed(int64_t index, uint64_t seed, int64_t epoch, int32_t& label) const;

  const ImageFolder& folder() const { return folder_; }
  int64_t undecodable_count() const;
  std::map<std::string, std::string> undecodable_files() const;  // path -> the error that skipped it

 private:
  const ImageFolder folder_;
  const ImageFolderOptions options_;
  mutable std::mutex mutex_;  // guards undecodable_
  mutable std::map<std::string, std::string> undecodable_;
};

}  // namespace qnn
