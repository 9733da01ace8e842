// Training-time augmentation and normalisation of byte images into float32 CHW.
//
// The standard CIFAR recipe, with PyTorch's semantics: RandomCrop(32, padding=4) (pad with
// zeros to 40x40, cut a 32x32 window at offsets uniform in 0..8), then RandomHorizontalFlip
// (probability 1/2), then ToTensor and Normalize: (x/255 - mean) / std per channel. Evaluation
// uses the normalisation alone.
//
// The random choices for an image are a pure function of (seed, epoch, dataset index of the
// image), drawn from the counter-based generator (tensor/random.h). So an image's augmentation
// in an epoch never depends on which batch it lands in, how many loader threads there are or
// which thread gets there first, and a GPU kernel calling draw_augmentation() gets the same
// crops and flips as the CPU.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/random.h"

namespace qnn {

// Per-channel normalisation, (x/255 - mean[c]) / stddev[c], precomputed for all 256 byte values
// in exactly the float32 operations torchvision uses, so the result matches it bit for bit.
struct Normalization {
  Normalization(std::vector<float> mean, std::vector<float> stddev);
  int channels() const { return static_cast<int>(mean.size()); }
  // The 256 normalised values of channel c: table(c)[byte].
  const float* table(int c) const { return lookup.data() + 256 * c; }

  std::vector<float> mean, stddev;
  std::vector<float> lookup;  // channels x 256
};

// The constants of the reference CIFAR-10 experiments: mean (0.4914, 0.4822, 0.4465),
// std (0.2023, 0.1994, 0.2010).
Normalization cifar10_normalization();

// The random choices for one image: where the crop window starts in the padded image
// (0..2*padding on each axis) and whether to flip it left to right.
struct AugmentDraw {
  int crop_y = 0, crop_x = 0;
  bool flip = false;
};

// The counter-based stream of augmentation draws for an epoch: a tag in the high 32 bits keeps
// it apart from other users of the same seed (weight initialisation, shuffling).
QNN_HOST_DEVICE uint64_t augment_stream(int64_t epoch) {
  return (uint64_t{0x41554731} << 32) | static_cast<uint32_t>(epoch);  // "AUG1"
}

// A uniform integer in 0..n-1 from a random 32-bit word (multiply and keep the high half).
QNN_HOST_DEVICE uint32_t uniform_below(uint32_t word, uint32_t n) {
  return static_cast<uint32_t>((static_cast<uint64_t>(word) * n) >> 32);
}

// The draws for dataset image `index` in `epoch`: one Philox block, three of its words.
QNN_HOST_DEVICE AugmentDraw draw_augmentation(uint64_t seed, int64_t epoch, int64_t index,
                                              int padding) {
  const Philox4 w = random_words(seed, augment_stream(epoch), static_cast<uint64_t>(index));
  const uint32_t positions = static_cast<uint32_t>(2 * padding + 1);
  AugmentDraw draw;
  draw.crop_y = static_cast<int>(uniform_below(w.v[0], positions));
  draw.crop_x = static_cast<int>(uniform_below(w.v[1], positions));
  draw.flip = (w.v[2] >> 31) != 0;
  return draw;
}

// Crops, flips and normalises one CHW byte image into `out` (channels x height x width floats).
// The window starts at (draw.crop_y, draw.crop_x) in the image zero-padded by `padding` on every
// side and has the image's own size; padded pixels are byte 0, so they come out as -mean/std.
void augment_image(const uint8_t* image, int channels, int height, int width,
                   const AugmentDraw& draw, int padding, const Normalization& norm, float* out);

// Normalises one CHW byte image into `out`: the evaluation transform.
void normalize_image(const uint8_t* image, int channels, int height, int width,
                     const Normalization& norm, float* out);

}  // namespace qnn
