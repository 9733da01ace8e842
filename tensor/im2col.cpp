// im2col / col2im (see tensor/im2col.h).
#include "tensor/im2col.h"

#include <algorithm>
#include <cstring>

namespace qnn {

ConvGeometry conv_geometry(const Shape& x, const Shape& w, ConvParams p) {
  QNN_CHECK(x.size() == 4 && w.size() == 4, "input ", shape_str(x), " and weight ", shape_str(w),
            " must both be 4-D (NCHW, OIHW)");
  QNN_CHECK(x[1] == w[1], "input ", shape_str(x), " has ", x[1], " channels, weight ", shape_str(w),
            " expects ", w[1]);
  QNN_CHECK(p.stride >= 1 && p.padding >= 0, "stride ", p.stride, " padding ", p.padding,
            " (expected stride >= 1, padding >= 0)");
  ConvGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p.stride, p.padding};
  g.ho = conv_out_size(g.h, g.kh, p);
  g.wo = conv_out_size(g.w, g.kw, p);
  QNN_CHECK(g.ho > 0 && g.wo > 0, "kernel ", shape_str(w), " larger than padded input ", shape_str(x));
  return g;
}

namespace {

// Output columns j whose source column j*s + v - pad lies inside [0, W): [first, last).
struct ColumnRange {
  int64_t first, last;
};

ColumnRange valid_columns(const ConvGeometry& g, int64_t v) {
  const int64_t offset = v - g.pad;  // source column of j = 0
  int64_t first = offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride;
  int64_t last = offset > g.w - 1 ? 0 : (g.w - 1 - offset) / g.stride + 1;
  first = std::min(first, g.wo);
  last = std::max(first, std::min(last, g.wo));
  return {first, last};
}

}  // namespace

namespace {

// The common "same" case (stride 1, output as large as the input): row (c, u, v) of col is the
// image plane shifted by (u - pad) rows and (v - pad) columns, so it is one contiguous copy of
// the plane followed by zeroing the rows and columns that fell into the padding.
void im2col_same(const ConvGeometry& g, const float* x, float* col) {
  const int64_t plane = g.h * g.w;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        float* row = col + ((c * g.kh + u) * g.kw + v) * plane;
        const int64_t dy = u - g.pad, dx = v - g.pad;
        const int64_t i_first = std::max<int64_t>(0, -dy), i_last = std::min(g.h, g.h - dy);
        if (i_first >= i_last) {
          std::memset(row, 0, plane * sizeof(float));
          continue;
        }
        std::memset(row, 0, i_first * g.w * sizeof(float));
        // Copy [i_first*W, i_last*W) shifted by dy*W + dx, clipped to the plane.
        int64_t q_first = i_first * g.w, q_last = i_last * g.w;
        const int64_t shift = dy * g.w + dx;
        const float* src = x + c * plane;
        const int64_t copy_first = std::max(q_first, -shift), copy_last = std::min(q_last, plane - shift);
        std::memcpy(row + copy_first, src + copy_first + shift, (copy_last - copy_first) * sizeof(float));
        for (int64_t q = q_first; q < copy_first; ++q) row[q] = 0.0f;
        for (int64_t q = copy_last; q < q_last; ++q) row[q] = 0.0f;
        std::memset(row + q_last, 0, (plane - q_last) * sizeof(float));
        // Columns whose source lies left or right of the image read a neighbouring row: clear.
        for (int64_t i = i_first; i < i_last; ++i) {
          float* out = row + i * g.w;
          for (int64_t j = 0; j < -dx; ++j) out[j] = 0.0f;
          for (int64_t j = g.w - dx; j < g.w; ++j) out[j] = 0.0f;
        }
      }
}

}  // namespace

void im2col(const ConvGeometry& g, const float* x, float* col) {
  if (g.stride == 1 && g.ho == g.h && g.wo == g.w) {
    im2col_same(g, x, col);
    return;
  }
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        float* row = col + ((c * g.kh + u) * g.kw + v) * g.p();
        const ColumnRange r = valid_columns(g, v);
        const int64_t offset = v - g.pad;
        for (int64_t i = 0; i < g.ho; ++i) {
          float* out = row + i * g.wo;
          const int64_t y = i * g.stride + u - g.pad;
          if (y < 0 || y >= g.h) {
            std::memset(out, 0, g.wo * sizeof(float));
            continue;
          }
          const float* in = x + (c * g.h + y) * g.w;
          for (int64_t j = 0; j < r.first; ++j) out[j] = 0.0f;
          if (g.stride == 1) {
            std::memcpy(out + r.first, in + r.first + offset, (r.last - r.first) * sizeof(float));
          } else {
            for (int64_t j = r.first; j < r.last; ++j) out[j] = in[j * g.stride + offset];
          }
          for (int64_t j = r.last; j < g.wo; ++j) out[j] = 0.0f;
        }
      }
}

int64_t shifted_planes_size(const ConvGeometry& g) {
  const int64_t rows = g.ho + (g.kh - 1) / g.stride;
  return g.c * g.kw * g.stride * rows * g.wo;
}

void shifted_row_offsets(const ConvGeometry& g, int64_t* offsets) {
  const int64_t plane = (g.ho + (g.kh - 1) / g.stride) * g.wo;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v)
        offsets[(c * g.kh + u) * g.kw + v] =
            ((c * g.kw + v) * g.stride + u % g.stride) * plane + (u / g.stride) * g.wo;
}

void shifted_planes(const ConvGeometry& g, const float* x, float* planes) {
  const int64_t rows = g.ho + (g.kh - 1) / g.stride;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t v = 0; v < g.kw; ++v) {
      const ColumnRange r = valid_columns(g, v);
      const int64_t offset = v - g.pad;
      for (int64_t ph = 0; ph < g.stride; ++ph)
        for (int64_t i = 0; i < rows; ++i) {
          float* out = planes + (((c * g.kw + v) * g.stride + ph) * rows + i) * g.wo;
          const int64_t y = i * g.stride + ph - g.pad;
          if (y < 0 || y >= g.h) {
            std::memset(out, 0, g.wo * sizeof(float));
            continue;
          }
          const float* in = x + (c * g.h + y) * g.w;
          for (int64_t j = 0; j < r.first; ++j) out[j] = 0.0f;
          if (g.stride == 1) {
            std::memcpy(out + r.first, in + r.first + offset, (r.last - r.first) * sizeof(float));
          } else {
            for (int64_t j = r.first; j < r.last; ++j) out[j] = in[j * g.stride + offset];
          }
          for (int64_t j = r.last; j < g.wo; ++j) out[j] = 0.0f;
        }
    }
}

void col2im(const ConvGeometry& g, const float* col, float* x) {
  std::memset(x, 0, g.image_in() * sizeof(float));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        const float* row = col + ((c * g.kh + u) * g.kw + v) * g.p();
        const ColumnRange r = valid_columns(g, v);
        const int64_t offset = v - g.pad;
        for (int64_t i = 0; i < g.ho; ++i) {
          const int64_t y = i * g.stride + u - g.pad;
          if (y < 0 || y >= g.h) continue;
          const float* in = row + i * g.wo;
          float* out = x + (c * g.h + y) * g.w;
          for (int64_t j = r.first; j < r.last; ++j) out[j * g.stride + offset] += in[j];
        }
      }
}

}  // namespace qnn
