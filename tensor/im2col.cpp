// im2col / col2im (see tensor/im2col.h).
#include "tensor/im2col.h"

#include <algorithm>
#include <cstring>
#include <vector>

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
  // Rows are short (8 to 32 floats), so each is built from one zero-padded copy of the source
  // row, split into its `stride` column phases; every plane row is then a plain run of that.
  const int64_t rows = g.ho + (g.kh - 1) / g.stride;
  const int64_t s = g.stride;
  const int64_t padded = g.w + 2 * g.pad;
  const int64_t phase_len = (padded + g.kw + s - 1) / s + g.wo;  // room for the longest read
  thread_local std::vector<float> buffer;
  buffer.assign(static_cast<size_t>(s * phase_len), 0.0f);
  float* phases = buffer.data();  // phases[t*phase_len + m] = padded row[m*s + t]
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t ph = 0; ph < s; ++ph)
      for (int64_t i = 0; i < rows; ++i) {
        const int64_t y = i * s + ph - g.pad;
        const bool inside = y >= 0 && y < g.h;
        if (inside) {
          const float* in = x + (c * g.h + y) * g.w;
          if (s == 1) {
            copy_floats(phases + g.pad, in, g.w);
          } else {
            // Padded column m = source column m - pad goes to phase m % s, position m / s.
            for (int64_t t = 0; t < s; ++t) {
              float* dst = phases + t * phase_len;
              int64_t m = t, q = 0;
              for (; m < g.pad; m += s, ++q) dst[q] = 0.0f;
              for (; m < g.pad + g.w; m += s, ++q) dst[q] = in[m - g.pad];
            }
          }
        }
        for (int64_t v = 0; v < g.kw; ++v) {
          float* out = planes + (((c * g.kw + v) * s + ph) * rows + i) * g.wo;
          if (inside)
            copy_floats(out, phases + (v % s) * phase_len + v / s, g.wo);
          else
            std::memset(out, 0, g.wo * sizeof(float));
        }
      }
}

void im2col(const ConvGeometry& g, const float* x, float* col) {
  // Through the shifted planes: each row of col is then one contiguous run of P floats, where a
  // direct im2col copies Ho short runs per row (8 floats each at 8x8).
  thread_local std::vector<float> planes;
  planes.resize(static_cast<size_t>(shifted_planes_size(g)));
  thread_local std::vector<int64_t> rows;
  rows.resize(static_cast<size_t>(g.k()));
  shifted_planes(g, x, planes.data());
  shifted_row_offsets(g, rows.data());
  for (int64_t kk = 0; kk < g.k(); ++kk) copy_floats(col + kk * g.p(), planes.data() + rows[kk], g.p());
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
