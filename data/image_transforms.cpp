// torchvision's ImageNet transforms (see data/image_transforms.h): RandomResizedCrop's draws,
// Resize's and CenterCrop's arithmetic, the flip and the normalisation into CHW floats.
#include "data/image_transforms.h"

#include <algorithm>
#include <climits>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

namespace {

double uniform_between(uint32_t word, double lo, double hi) {
  return lo + (hi - lo) * (static_cast<double>(word) * (1.0 / 4294967296.0));
}

int python_round(double x) { return static_cast<int>(std::nearbyint(x)); }  // halves to even

uint64_t counter(int64_t index, int slot) { return (static_cast<uint64_t>(index) << 4) | static_cast<uint64_t>(slot); }

}  // namespace

Normalization imagenet_normalization() {
  return Normalization({0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f});
}

PixelBox random_resized_crop_box(int height, int width, uint64_t seed, int64_t epoch, int64_t index,
                                 const RandomResizedCropRange& range) {
  QNN_CHECK(height > 0 && width > 0, "cannot crop a ", height, "x", width, " image");
  QNN_CHECK(index >= 0 && index < (int64_t{1} << 60), "sample index ", index, " outside 0..2^60-1");
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(range.ratio_lo), log_hi = std::log(range.ratio_hi);
  const uint64_t stream = image_transform_stream(epoch);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const Philox4 draw = random_words(seed, stream, counter(index, attempt));
    const double target_area = area * uniform_between(draw.v[0], range.scale_lo, range.scale_hi);
    const double aspect = std::exp(uniform_between(draw.v[1], log_lo, log_hi));
    const int w = python_round(std::sqrt(target_area * aspect));
    const int h = python_round(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      PixelBox box;
      box.height = h;
      box.width = w;
      box.top = static_cast<int>(uniform_below(draw.v[2], static_cast<uint32_t>(height - h + 1)));
      box.left = static_cast<int>(uniform_below(draw.v[3], static_cast<uint32_t>(width - w + 1)));
      return box;
    }
  }
  // The fallback: a centred crop with the aspect ratio clamped into the range.
  const double in_ratio = static_cast<double>(width) / height;
  PixelBox box{0, 0, height, width};
  if (in_ratio < range.ratio_lo) {
    box.height = python_round(width / range.ratio_lo);
  } else if (in_ratio > range.ratio_hi) {
    box.width = python_round(height * range.ratio_hi);
  }
  box.top = (height - box.height) / 2;
  box.left = (width - box.width) / 2;
  return box;
}

bool random_flip(uint64_t seed, int64_t epoch, int64_t index) {
  return (random_words(seed, image_transform_stream(epoch), counter(index, 10)).v[0] >> 31) != 0;
}

void shorter_side_size(int height, int width, int n, int& out_height, int& out_width) {
  QNN_CHECK(height > 0 && width > 0 && n > 0, "cannot resize a ", height, "x", width,
            " image to a shorter side of ", n);
  const int shorter = std::min(height, width), longer = std::max(height, width);
  const double scaled_longer = static_cast<double>(n) * longer / shorter;
  QNN_CHECK(scaled_longer <= INT_MAX, "cannot resize a ", height, "x", width, " image to a shorter side of ", n,
            ": its longer side would be ", static_cast<int64_t>(scaled_longer), " pixels, more than 2^31-1");
  const int new_longer = static_cast<int>(scaled_longer);
  const bool portrait = width <= height;  // torchvision: (w, h) = (new_short, new_long) when w <= h
  out_width = portrait ? n : new_longer;
  out_height = portrait ? new_longer : n;
}

PixelBox center_crop_box(int height, int width, int crop_height, int crop_width) {
  QNN_CHECK(crop_height > 0 && crop_width > 0 && crop_height <= height && crop_width <= width,
            "center crop of ", crop_height, "x", crop_width, " from a ", height, "x", width,
            " image: expected a crop no larger than the image");
  return PixelBox{python_round((height - crop_height) / 2.0), python_round((width - crop_width) / 2.0),
                  crop_height, crop_width};
}

RgbImage train_transform(const RgbImage& image, int size, uint64_t seed, int64_t epoch, int64_t index) {
  const PixelBox crop = random_resized_crop_box(image.height, image.width, seed, epoch, index);
  RgbImage out = resize_bilinear(image, crop, size, size, PixelBox{0, 0, size, size});
  if (random_flip(seed, epoch, index)) {
    for (int y = 0; y < out.height; ++y) {
      uint8_t* row = out.pixels.data() + static_cast<size_t>(y) * out.width * 3;
      for (int a = 0, b = out.width - 1; a < b; ++a, --b)
        for (int c = 0; c < 3; ++c) std::swap(row[3 * a + c], row[3 * b + c]);
    }
  }
  return out;
}

RgbImage eval_transform(const RgbImage& image, int resize, int size) {
  int height = 0, width = 0;
  shorter_side_size(image.height, image.width, resize, height, width);
  const PixelBox window = center_crop_box(height, width, size, size);
  return resize_bilinear(image, PixelBox{0, 0, image.height, image.width}, height, width, window);
}

void normalize_to_chw(const RgbImage& image, const Normalization& norm, float* out) {
  QNN_CHECK(norm.channels() == 3, "normalisation has ", norm.channels(), " channels, RGB images have 3");
  const int64_t plane = static_cast<int64_t>(image.height) * image.width;
  for (int c = 0; c < 3; ++c) {
    const float* table = norm.table(c);
    float* target = out + c * plane;
    for (int64_t p = 0; p < plane; ++p) target[p] = table[image.pixels[3 * p + c]];
  }
}

}  // namespace qnn
