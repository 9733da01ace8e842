// Image-folder samples for the batch loader (see data/image_folder_source.h): decode, transform,
// normalise, and the optional skipping of files that do not decode.
#include "data/image_folder_source.h"

#include <utility>

#include "tensor/check.h"

namespace qnn {

ImageFolderSource::ImageFolderSource(ImageFolder folder, ImageFolderOptions options)
    : folder_(std::move(folder)), options_(std::move(options)) {
  QNN_CHECK(folder_.count() > 0, "image folder ", folder_.root, " has no images");
  QNN_CHECK(options_.size > 0 && options_.resize >= options_.size, "crop size ", options_.size,
            " and resize ", options_.resize, ": expected 0 < size <= resize");
  QNN_CHECK(options_.normalization.channels() == 3, "normalisation has ",
            options_.normalization.channels(), " channels, expected 3 (RGB)");
}

RgbImage ImageFolderSource::transformed(int64_t index, uint64_t seed, int64_t epoch, int32_t& label) const {
  QNN_CHECK(index >= 0 && index < folder_.count(), "sample ", index, " out of range: the folder ",
            folder_.root, " has ", folder_.count());
  RgbImage image;
  int64_t used = index;
  for (int64_t tries = 0;; ++tries) {
    const ImageFolderSample& sample = folder_.samples[used];
    try {
      image = decode_image_file(sample.path, options_.decoder);
      label = sample.label;
      break;
    } catch (const Error& e) {
      if (!options_.skip_undecodable) throw;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        undecodable_.emplace(sample.path, e.what());
      }
      QNN_CHECK(tries + 1 < folder_.count(), "no image of the folder ", folder_.root, " decodes");
      used = (used + 1) % folder_.count();
    }
  }
  if (options_.train) return train_transform(image, options_.size, seed, epoch, index);
  return eval_transform(image, options_.resize, options_.size);
}

int32_t ImageFolderSource::fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const {
  int32_t label = 0;
  const RgbImage image = transformed(index, seed, epoch, label);
  normalize_to_chw(image, options_.normalization, out);
  return label;
}

int32_t ImageFolderSource::fill_bytes(int64_t index, uint64_t seed, int64_t epoch, uint8_t* out) const {
  int32_t label = 0;
  const RgbImage image = transformed(index, seed, epoch, label);
  const int64_t plane = static_cast<int64_t>(image.height) * image.width;
  for (int c = 0; c < 3; ++c)
    for (int64_t p = 0; p < plane; ++p) out[c * plane + p] = image.pixels[3 * p + c];
  return label;
}

int64_t ImageFolderSource::undecodable_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(undecodable_.size());
}

std::map<std::string, std::string> ImageFolderSource::undecodable_files() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return undecodable_;
}

}  // namespace qnn
