// The in-memory byte-image sample source (see data/sample_source.h).
#include "data/sample_source.h"

#include <utility>

#include "tensor/check.h"

namespace qnn {

int32_t SampleSource::fill_bytes(int64_t, uint64_t, int64_t, uint8_t*) const {
  throw Error("this sample source gives normalised floats only, not bytes (byte_normalization() is null)");
}

ByteImageSource::ByteImageSource(const ImageDataset& dataset, bool augment, int padding,
                                 Normalization normalization)
    : dataset_(dataset), count_(dataset.count), augment_(augment), padding_(padding),
      normalization_(std::move(normalization)) {
  QNN_CHECK(padding_ >= 0, "crop padding is ", padding_, ", expected >= 0");
  QNN_CHECK(static_cast<int64_t>(dataset.labels.size()) == dataset.count &&
                static_cast<int64_t>(dataset.pixels.size()) == dataset.count * dataset.image_bytes(),
            "dataset of ", dataset.count, " images holds ", dataset.labels.size(), " labels and ",
            dataset.pixels.size(), " pixel bytes, expected ", dataset.count, " and ",
            dataset.count * dataset.image_bytes());
  QNN_CHECK(normalization_.channels() == dataset.channels, "normalisation has ",
            normalization_.channels(), " channels, the dataset's images have ", dataset.channels);
}

int32_t ByteImageSource::fill(int64_t index, uint64_t seed, int64_t epoch, float* out) const {
  const uint8_t* image = dataset_.image(index);
  const int c = dataset_.channels, h = dataset_.height, w = dataset_.width;
  if (augment_) {
    const AugmentDraw draw = draw_augmentation(seed, epoch, index, padding_);
    augment_image(image, c, h, w, draw, padding_, normalization_, out);
  } else {
    normalize_image(image, c, h, w, normalization_, out);
  }
  return dataset_.labels[index];
}

}  // namespace qnn
