// libFuzzer target for the image decoders and the ImageNet transforms (data/image_decode.h,
// data/image_transforms.h): what ./apps/imagenet does with every file of an image folder.
//
// The input is one image file's bytes. It is decoded with each decoder of the build (TurboJPEG
// for JPEGs when built with it, stb_image for everything), and each decoded image goes through
// the evaluation transform (Resize 256, CenterCrop 224), the training transform
// (RandomResizedCrop 224 and the flip) and the normalisation. A decoder may only return an
// image of a size its pixels fill, within kMaxImagePixels, or throw qnn::Error; the transforms
// must give 224 x 224 images or throw qnn::Error. Anything else (another exception, a crash, a
// sanitizer report) is a defect.
//
// Inputs whose header claims more than 2^22 pixels are passed over: decoding one takes seconds
// under the sanitizers, and large images add no code paths (the pixel limit itself is tested in
// tests/data/test_image_decode.cpp). A JPEG's size is taken from every start-of-frame marker
// (FF C0, C1, C2) in it, the largest: stb_image's header reader would meet the malformed Huffman
// tables that decode_image_bytes refuses before stb_image sees them.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "data/augment.h"
#include "data/image_decode.h"
#include "data/image_structure.h"
#include "data/image_transforms.h"
#include "tensor/check.h"

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG  // the formats data/image_decode.cpp builds stb_image with
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include <stb_image.h>

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

// The size the input's header claims, where a header reader finds one (for a JPEG, the largest
// size any start-of-frame marker in it claims).
bool header_size(const uint8_t* data, size_t size, int& width, int& height) {
  if (size == 0) return false;
  size_t p = 0;  // stb_image takes FF bytes before a JPEG's start-of-image marker FF D8
  while (p < size && data[p] == 0xFF) ++p;
  if (p > 0 && p < size && data[p] == 0xD8) {
    int64_t largest = -1;
    for (size_t q = p; q + 9 <= size; ++q) {
      if (data[q] != 0xFF || data[q + 1] < 0xC0 || data[q + 1] > 0xC2) continue;
      const int h = data[q + 5] << 8 | data[q + 6], w = data[q + 7] << 8 | data[q + 8];
      if (int64_t{h} * w > largest) largest = int64_t{h} * w, height = h, width = w;
    }
    return largest >= 0;
  }
  int channels = 0;
  return stbi_info_from_memory(data, static_cast<int>(size), &width, &height, &channels) != 0;
}

void check_transforms(const qnn::RgbImage& image) {
  constexpr int kSize = 224;
  std::vector<float> chw(3 * kSize * kSize);
  try {
    const qnn::RgbImage eval = qnn::eval_transform(image, 256, kSize);
    require(eval.height == kSize && eval.width == kSize && eval.pixels.size() == chw.size());
    qnn::normalize_to_chw(eval, qnn::imagenet_normalization(), chw.data());
  } catch (const qnn::Error&) {
  }
  const qnn::RgbImage train = qnn::train_transform(image, kSize, 7, 0, 0);
  require(train.height == kSize && train.width == kSize && train.pixels.size() == chw.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Sizes are read only from bytes the structure checks pass, as decode_image_bytes reads them.
  int width = 0, height = 0;
  const bool screened_out = !qnn::image_structure_fault(data, size, qnn::MissingHuffmanTables::refused).empty();
  if (!screened_out && header_size(data, size, width, height) && int64_t{width} * height > (int64_t{1} << 22))
    return 0;
  std::vector<qnn::ImageDecoder> decoders{qnn::ImageDecoder::stb};
  if (qnn::turbojpeg_available()) decoders.push_back(qnn::ImageDecoder::turbojpeg);
  for (const qnn::ImageDecoder decoder : decoders) {
    qnn::RgbImage image;
    try {
      image = qnn::decode_image_bytes(data, size, "fuzz-image", decoder);
    } catch (const qnn::Error&) {
      continue;
    }
    require(image.height > 0 && image.width > 0);
    require(static_cast<int64_t>(image.height) * image.width <= qnn::kMaxImagePixels);
    require(image.pixels.size() == static_cast<size_t>(image.height) * image.width * 3);
    check_transforms(image);
  }
  return 0;
}
