// PIL-compatible bilinear resizing (see data/image_resize.h): the per-axis fixed-point taps and
// the two separable passes.
#include "data/image_resize.h"

#include <algorithm>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

namespace {

constexpr int kFractionBits = 22;  // Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2

// The taps of one axis for output pixels begin..begin+n-1: output pixel o reads count(o) input
// pixels from first(o), with weights(o)[0..count(o)-1].
struct AxisTaps {
  int begin = 0;
  int width = 0;  // taps stored per output pixel
  std::vector<int> firsts, counts;
  std::vector<int32_t> all_weights;
  int first(int o) const { return firsts[o - begin]; }
  int count(int o) const { return counts[o - begin]; }
  const int32_t* weights(int o) const { return all_weights.data() + static_cast<size_t>(o - begin) * width; }
};

double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// The taps of output pixels begin..begin+n-1 of an axis of in_size pixels resized to out_size:
// only those a window reads, so a large resize computes no more than its window needs.
AxisTaps bilinear_taps(int in_size, int out_size, int begin, int n_out) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double stretch = std::max(scale, 1.0);
  const double support = 1.0 * stretch;  // the triangle's support, 1, stretched
  AxisTaps taps;
  taps.begin = begin;
  taps.width = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.firsts.resize(n_out);
  taps.counts.resize(n_out);
  taps.all_weights.assign(static_cast<size_t>(n_out) * taps.width, 0);
  std::vector<double> w(taps.width);
  for (int o = begin; o < begin + n_out; ++o) {
    const double centre = (o + 0.5) * scale;
    const int xmin = std::max(0, static_cast<int>(centre - support + 0.5));
    const int xmax = std::min(in_size, static_cast<int>(centre + support + 0.5));
    const int n = xmax - xmin;
    double sum = 0;
    for (int k = 0; k < n; ++k) sum += (w[k] = triangle((k + xmin - centre + 0.5) / stretch));
    for (int k = 0; k < n; ++k) {
      const double normalised = sum != 0.0 ? w[k] / sum : w[k];
      const double fixed = normalised * (1 << kFractionBits);
      taps.all_weights[static_cast<size_t>(o - begin) * taps.width + k] =
          static_cast<int32_t>(fixed < 0 ? fixed - 0.5 : fixed + 0.5);
    }
    taps.firsts[o - begin] = xmin;
    taps.counts[o - begin] = n;
  }
  return taps;
}

uint8_t to_byte(int32_t sum) {
  if (sum <= 0) return 0;
  if (sum >= (256 << kFractionBits)) return 255;
  return static_cast<uint8_t>(sum >> kFractionBits);
}

}  // namespace

RgbImage resize_bilinear(const RgbImage& image, const PixelBox& crop, int out_height, int out_width,
                         const PixelBox& window) {
  QNN_CHECK(crop.top >= 0 && crop.left >= 0 && crop.height > 0 && crop.width > 0 &&
                crop.top + crop.height <= image.height && crop.left + crop.width <= image.width,
            "crop (top ", crop.top, ", left ", crop.left, ", ", crop.height, "x", crop.width,
            ") outside the ", image.height, "x", image.width, " image");
  QNN_CHECK(out_height > 0 && out_width > 0, "resize to ", out_height, "x", out_width,
            ": expected positive sizes");
  QNN_CHECK(window.top >= 0 && window.left >= 0 && window.height > 0 && window.width > 0 &&
                window.top + window.height <= out_height && window.left + window.width <= out_width,
            "window (top ", window.top, ", left ", window.left, ", ", window.height, "x",
            window.width, ") outside the ", out_height, "x", out_width, " resized image");
  const int64_t in_stride = static_cast<int64_t>(image.width) * 3;
  const uint8_t* in = image.pixels.data() + crop.top * in_stride + crop.left * 3;
  const bool horizontal = out_width != crop.width, vertical = out_height != crop.height;
  const AxisTaps rows = bilinear_taps(crop.height, out_height, window.top, vertical ? window.height : 0);

  // Input rows the window's output rows read (all of them when there is no vertical pass).
  const int row_begin = vertical ? rows.first(window.top) : window.top;
  const int last = window.top + window.height - 1;
  const int row_end = vertical ? rows.first(last) + rows.count(last) : last + 1;

  // Horizontal pass into `middle`: rows row_begin..row_end-1, the window's columns.
  std::vector<uint8_t> middle;
  const uint8_t* mid = nullptr;  // row r of the pass's output at mid + (r - row_begin) * mid_stride
  int64_t mid_stride = 0;
  if (horizontal) {
    const AxisTaps cols = bilinear_taps(crop.width, out_width, window.left, window.width);
    mid_stride = static_cast<int64_t>(window.width) * 3;
    middle.resize(static_cast<size_t>(row_end - row_begin) * mid_stride);
    for (int r = row_begin; r < row_end; ++r) {
      const uint8_t* source = in + r * in_stride;
      uint8_t* target = middle.data() + (r - row_begin) * mid_stride;
      for (int x = 0; x < window.width; ++x) {
        const int o = window.left + x;
        const int32_t* w = cols.weights(o);
        const uint8_t* p = source + cols.first(o) * 3;
        int32_t s0 = 1 << (kFractionBits - 1), s1 = s0, s2 = s0;
        for (int k = 0; k < cols.count(o); ++k, p += 3) {
          s0 += p[0] * w[k];
          s1 += p[1] * w[k];
          s2 += p[2] * w[k];
        }
        target[3 * x] = to_byte(s0);
        target[3 * x + 1] = to_byte(s1);
        target[3 * x + 2] = to_byte(s2);
      }
    }
    mid = middle.data();
  } else {
    mid_stride = in_stride;
    mid = in + row_begin * in_stride + window.left * 3;
  }

  // Vertical pass into the result.
  RgbImage out;
  out.height = window.height;
  out.width = window.width;
  out.pixels.resize(static_cast<size_t>(window.height) * window.width * 3);
  const int64_t row_bytes = static_cast<int64_t>(window.width) * 3;
  std::vector<int32_t> sums(static_cast<size_t>(row_bytes));
  for (int y = 0; y < window.height; ++y) {
    uint8_t* target = out.pixels.data() + y * row_bytes;
    const int o = window.top + y;
    if (!vertical) {
      std::copy(mid + (o - row_begin) * mid_stride, mid + (o - row_begin) * mid_stride + row_bytes, target);
      continue;
    }
    const int32_t* w = rows.weights(o);
    const uint8_t* base = mid + (rows.first(o) - row_begin) * mid_stride;
    std::fill(sums.begin(), sums.end(), int32_t{1} << (kFractionBits - 1));
    for (int k = 0; k < rows.count(o); ++k) {  // row by row: contiguous reads
      const uint8_t* source = base + k * mid_stride;
      for (int64_t b = 0; b < row_bytes; ++b) sums[b] += source[b] * w[k];
    }
    for (int64_t b = 0; b < row_bytes; ++b) target[b] = to_byte(sums[b]);
  }
  return out;
}

RgbImage resize_bilinear(const RgbImage& image, int out_height, int out_width) {
  return resize_bilinear(image, PixelBox{0, 0, image.height, image.width}, out_height, out_width,
                         PixelBox{0, 0, out_height, out_width});
}

}  // namespace qnn
