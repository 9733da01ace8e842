// torchvision 0.14's ImageNet transforms on decoded RGB images (data/image_decode.h):
//
// training:    RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip(),
//              ToTensor(), Normalize(mean, std)
// evaluation:  Resize(resize), CenterCrop(size), ToTensor(), Normalize(mean, std)
//
// RandomResizedCrop.get_params, for an H x W image: up to 10 tries of
//   target_area = H W * U(scale),  aspect = exp(U(log ratio_lo, log ratio_hi)),
//   w = round(sqrt(target_area * aspect)),  h = round(sqrt(target_area / aspect))
// (Python's round: halves to even), accepted when 0 < w <= W and 0 < h <= H, with the top-left
// corner i = randint(0, H - h), j = randint(0, W - w) (inclusive). When all 10 fail: the
// centred crop of the whole image with its aspect clamped into the ratio range (w = W,
// h = round(W / ratio_lo) if W/H < ratio_lo; h = H, w = round(H * ratio_hi) if W/H > ratio_hi;
// else the whole image), at i = (H - h) // 2, j = (W - w) // 2. The crop is resized to
// size x size with PIL's BILINEAR (data/image_resize.h), then flipped left-right with p = 1/2.
//
// Resize(n): the shorter side becomes n, the longer int(n * long / short) (truncated, as
// torchvision computes it); CenterCrop(n): top = int(round((H - n) / 2.0)) with Python's
// rounding (halves to even), the same for left.
//
// Random draws come from the counter-based generator (tensor/random.h), a pure function of
// (seed, epoch, sample index), so a run is reproducible and resumable bit for bit whatever the
// threads do. Key layout: Philox key = seed; counter = (index * 16 + slot, stream) with
// stream = "IRC1" << 32 | epoch (epoch < 2^32, index < 2^60). Slot t = 0..9 is try t of the
// crop: its words 0..3 give U(scale), U(log ratio), i and j; slot 10's word 0 gives the flip
// (top bit). A uniform in [lo, hi) is lo + (hi - lo) * word / 2^32; randint(0, n) is
// (word * (n + 1)) >> 32.
#pragma once
#include <cstdint>

#include "data/augment.h"
#include "data/image_resize.h"

namespace qnn {

// ImageNet's normalisation constants: mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
Normalization imagenet_normalization();

struct RandomResizedCropRange {
  double scale_lo = 0.08, scale_hi = 1.0;
  double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;
};

// The counter-based stream of the image transforms' draws for an epoch ("IRC1" high bits).
inline uint64_t image_transform_stream(int64_t epoch) {
  return (uint64_t{0x49524331} << 32) | static_cast<uint32_t>(epoch);
}

// RandomResizedCrop.get_params for sample `index` of `epoch` on a height x width image.
PixelBox random_resized_crop_box(int height, int width, uint64_t seed, int64_t epoch, int64_t index,
                                 const RandomResizedCropRange& range = {});

// RandomHorizontalFlip's coin for sample `index` of `epoch`.
bool random_flip(uint64_t seed, int64_t epoch, int64_t index);

// Resize(n)'s output size (height, width) for a height x width image.
void shorter_side_size(int height, int width, int n, int& out_height, int& out_width);

// CenterCrop's box of crop_height x crop_width in a height x width image (no larger than it).
PixelBox center_crop_box(int height, int width, int crop_height, int crop_width);

// RandomResizedCrop(size) + RandomHorizontalFlip, as uint8 HWC (size x size).
RgbImage train_transform(const RgbImage& image, int size, uint64_t seed, int64_t epoch, int64_t index);

// Resize(resize) + CenterCrop(size), as uint8 HWC (size x size). Only the crop is resampled.
RgbImage eval_transform(const RgbImage& image, int resize, int size);

// ToTensor + Normalize: HWC bytes to normalised CHW floats (3 x height x width at `out`).
void normalize_to_chw(const RgbImage& image, const Normalization& norm, float* out);

}  // namespace qnn
