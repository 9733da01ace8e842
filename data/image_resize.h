// Resizing 8-bit RGB images with PIL's BILINEAR filter, as Image.resize(size, Image.BILINEAR)
// computes it (Pillow's Resample.c, described here and implemented independently):
//
// Each axis is resampled separately, horizontally first, then vertically, each pass rounding to
// 8 bits. For an axis of `in` pixels resized to `out`, scale = in / out and the triangle filter
// tri(x) = max(0, 1 - |x|) is stretched by f = max(scale, 1) (so a downscale averages over all
// the pixels an output pixel covers: antialiasing; an upscale interpolates between two). Output
// pixel o has centre c = (o + 0.5) * scale, reads input pixels xmin..xmax-1 with
//   xmin = max(0, (int)(c - f + 0.5)),  xmax = min(in, (int)(c + f + 0.5)),
// weights w_x = tri((x - c + 0.5) / f) divided by their sum, stored as fixed-point integers with
// 22 fraction bits (rounded half away from zero); the sum starts at 2^21 (for rounding) and is
// shifted right by 22 and clamped to 0..255. An axis whose size does not change is not filtered.
// Pillow runs the horizontal pass only on the input rows the vertical pass reads; so does this.
//
// The same integer arithmetic in the same order gives PIL's bytes: the tests find no difference
// from torchvision-on-PIL outputs (tests/fixtures/images: down- and upscaling, crops, both
// axes). The weights are computed in double as Pillow computes them; a compiler that contracted
// those operations differently (fused multiply-add) could move a weight by one unit in 2^22 and
// so, rarely, a pixel by one grey level.
#pragma once
#include "data/image_decode.h"

namespace qnn {

// A rectangle of pixels: rows top..top+height-1, columns left..left+width-1.
struct PixelBox {
  int top = 0, left = 0, height = 0, width = 0;
};

// Resizes the part `crop` of `image` (treated as an image of its own, as PIL's crop() then
// resize() do) to out_height x out_width and returns the rectangle `window` of that result.
// Computing only the window gives the same bytes as resizing everything, then cropping.
RgbImage resize_bilinear(const RgbImage& image, const PixelBox& crop, int out_height, int out_width,
                         const PixelBox& window);

// The whole image resized to out_height x out_width.
RgbImage resize_bilinear(const RgbImage& image, int out_height, int out_width);

}  // namespace qnn
