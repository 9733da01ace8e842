// Crop, flip and normalisation of byte images (see data/augment.h). Rows that fall in the
// padding are filled whole; other rows read source pixels, forwards or mirrored.
#include "data/augment.h"

#include <algorithm>
#include <utility>

#include "tensor/check.h"

namespace qnn {

Normalization::Normalization(std::vector<float> mean_, std::vector<float> stddev_)
    : mean(std::move(mean_)), stddev(std::move(stddev_)) {
  QNN_CHECK(!mean.empty() && mean.size() == stddev.size(), "expected one mean and one stddev per ",
            "channel, found ", mean.size(), " means and ", stddev.size(), " stddevs");
  lookup.resize(mean.size() * 256);
  for (size_t c = 0; c < mean.size(); ++c) {
    QNN_CHECK(stddev[c] > 0, "stddev of channel ", c, " is ", stddev[c], ", expected > 0");
    for (int v = 0; v < 256; ++v)  // torchvision: ToTensor divides by 255, Normalize subtracts, divides
      lookup[c * 256 + v] = (static_cast<float>(v) / 255.0f - mean[c]) / stddev[c];
  }
}

Normalization cifar10_normalization() {
  return Normalization({0.4914f, 0.4822f, 0.4465f}, {0.2023f, 0.1994f, 0.2010f});
}

void augment_image(const uint8_t* image, int channels, int height, int width,
                   const AugmentDraw& draw, int padding, const Normalization& norm, float* out) {
  QNN_CHECK(norm.channels() == channels, "normalisation has ", norm.channels(),
            " channels, the image has ", channels);
  QNN_CHECK(padding >= 0 && draw.crop_y >= 0 && draw.crop_y <= 2 * padding && draw.crop_x >= 0 &&
                draw.crop_x <= 2 * padding,
            "crop offset (", draw.crop_y, ", ", draw.crop_x, ") outside 0..", 2 * padding,
            " for padding ", padding);
  // Output (y, x) shows padded pixel (y + crop_y, x + crop_x), i.e. source pixel
  // (y + dy, x + dx); a flip mirrors x first, as RandomHorizontalFlip does after the crop.
  const int dy = draw.crop_y - padding, dx = draw.crop_x - padding;
  // Output columns [x_begin, x_end) of an unflipped row come from the image; the rest is padding.
  const int x_begin = std::max(0, -dx), x_end = std::min(width, width - dx);
  for (int c = 0; c < channels; ++c) {
    const float* table = norm.table(c);
    const float zero = table[0];
    for (int y = 0; y < height; ++y) {
      float* row = out + (static_cast<int64_t>(c) * height + y) * width;
      const int sy = y + dy;
      if (sy < 0 || sy >= height) {
        std::fill(row, row + width, zero);
        continue;
      }
      const uint8_t* source = image + (static_cast<int64_t>(c) * height + sy) * width;
      for (int x = 0; x < width; ++x) {
        const int cx = draw.flip ? width - 1 - x : x;  // column in the unflipped crop
        row[x] = (cx >= x_begin && cx < x_end) ? table[source[cx + dx]] : zero;
      }
    }
  }
}

void normalize_image(const uint8_t* image, int channels, int height, int width,
                     const Normalization& norm, float* out) {
  QNN_CHECK(norm.channels() == channels, "normalisation has ", norm.channels(),
            " channels, the image has ", channels);
  const int64_t plane = static_cast<int64_t>(height) * width;
  for (int c = 0; c < channels; ++c) {
    const float* table = norm.table(c);
    const uint8_t* source = image + c * plane;
    float* target = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) target[i] = table[source[i]];
  }
}

}  // namespace qnn
