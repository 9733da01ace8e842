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
  return g.c * g.kw * row_phases(g) * rows * g.wo;
}

void shifted_row_offsets(const ConvGeometry& g, int64_t* offsets) {
  const int64_t plane = (g.ho + (g.kh - 1) / g.stride) * g.wo;
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v)
        offsets[(c * g.kh + u) * g.kw + v] =
            ((c * g.kw + v) * row_phases(g) + u % g.stride) * plane + (u / g.stride) * g.wo;
}

namespace {

#if defined(__AVX512F__)
// Strides 1 and 2 with AVX-512. Plane row i of (c, v, ph) is source row i*s + ph - pad, read at
// columns j*s + v - pad, zero outside the image. Each run of 16 output columns is built in
// registers from one (stride 1) or two (stride 2) masked loads straight from x, the two split
// into their even lanes by one permute, then stored once. The masked lanes are never read, so
// the padding costs nothing, and no padded copy of the row is written and read back (its reads
// at offsets v would straddle its own recent stores, which store-to-load forwarding cannot
// serve, and the copies were one short store each). Measured on one core, per image: 8x8 with
// 64 channels 4.8 -> 2.0 us, 16x16 stride 1 4.2 -> 1.7 us, 32x32 stride 2 7.9 -> 2.0 us. Each run
// also prefetches the same run of the next channel (prefetch_source_run): ImageNet's strided
// layers then build their planes 1.7-3x faster (16 images at 56x56: 2.4-2.9 -> 0.7-1.1 ms).
// The runs are source_run, walked by for_each_plane_run (tensor/im2col.h).
void shifted_planes_avx512(const ConvGeometry& g, const float* x, float* planes) {
  for_each_plane_run(g, g.c, [&](int64_t c, int64_t y, int64_t first, __mmask16 low, __mmask16 high,
                                 __mmask16 mask, int64_t at) {
    if (c + 1 < g.c) prefetch_source_run(g, x + (c + 1) * g.h * g.w, y, first);
    _mm512_mask_storeu_ps(planes + at, mask, source_run(g, x + c * g.h * g.w, y, first, low, high));
  });
}
#endif

}  // namespace

void shifted_planes(const ConvGeometry& g, const float* x, float* planes) {
#if defined(__AVX512F__)
  if (g.stride <= 2) {
    shifted_planes_avx512(g, x, planes);
    return;
  }
#endif
  // Other strides, or no AVX-512: each row is built from one zero-padded copy of the source row,
  // split into its `stride` column phases; every plane row is then a plain run of that.
  const int64_t rows = g.ho + (g.kh - 1) / g.stride, row_phase_count = row_phases(g);
  const int64_t s = g.stride;
  const int64_t padded = g.w + 2 * g.pad;
  const int64_t phase_len = (padded + g.kw + s - 1) / s + g.wo;  // room for the longest read
  thread_local std::vector<float> buffer;
  buffer.assign(static_cast<size_t>(s * phase_len), 0.0f);
  float* phases = buffer.data();  // phases[t*phase_len + m] = padded row[m*s + t]
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t ph = 0; ph < row_phase_count; ++ph)
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
          float* out = planes + (((c * g.kw + v) * row_phase_count + ph) * rows + i) * g.wo;
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

namespace {

#if defined(__AVX512F__)
// col2im at strides 1 and 2 with AVX-512, one run of 16 pixels of an image row at a time, summed
// in a register and stored once: pixel (y, x) receives col row (c, u, v) at output (i, j) with
// i*s + u - pad = y and j*s + v - pad = x, so for each (u, v) in the scalar loop's order the run
// takes col's row i at columns j = (x - v + pad) / s: one masked load (stride 2: the loaded
// columns spread onto every other pixel by one permute) and one masked add. Each pixel thus
// receives the same additions in the same order as the scalar loop, starting from +0.0f as after
// its memset (lanes a (u, v) does not reach are left as they are), so x is unchanged bit for bit,
// and is written once instead of read and written once per (u, v).
template <int64_t s>  // the stride, a constant so that the divisions below are shifts
void col2im_avx512(const ConvGeometry& g, const float* col, float* x) {
  // Per run of 16 pixels and kernel column v: where col's row is read from (column first_j),
  // which of the loaded lanes are columns [0, Wo), and which pixels receive a value.
  struct Tap {
    int64_t first_j;
    __mmask16 load, add;
    __m512i spread;
  };
  const int64_t runs = (g.w + 15) / 16;
  std::vector<Tap> taps(static_cast<size_t>(runs * g.kw));
  for (int64_t run = 0; run < runs; ++run)
    for (int64_t v = 0; v < g.kw; ++v) {
      const int64_t d = run * 16 - v + g.pad;  // s*j for the run's first pixel
      const int64_t first_j = d >= 0 ? d / s : -((-d + s - 1) / s);
      const int64_t phase = d - first_j * s;  // 0, or 1 at stride 2
      alignas(64) int32_t index[16];
      __mmask16 add = 0;
      for (int l = 0; l < 16; ++l) {
        index[l] = static_cast<int32_t>((phase + l) / s);
        const int64_t j = first_j + index[l];
        if ((phase + l) % s == 0 && run * 16 + l < g.w && j >= 0 && j < g.wo)
          add = static_cast<__mmask16>(add | 1u << l);
      }
      taps[run * g.kw + v] = {first_j, inside_row(first_j, g.wo), add,
                              _mm512_load_si512(reinterpret_cast<const void*>(index))};
    }
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t y = 0; y < g.h; ++y)
      for (int64_t run = 0; run < runs; ++run) {
        __m512 sum = _mm512_setzero_ps();
        for (int64_t u = 0; u < g.kh; ++u) {
          const int64_t t = y + g.pad - u;  // i*s
          if (t < 0 || t % s != 0 || t / s >= g.ho) continue;
          const float* rows = col + (c * g.kh + u) * g.kw * g.p() + (t / s) * g.wo;
          for (int64_t v = 0; v < g.kw; ++v) {
            const Tap& tap = taps[run * g.kw + v];
            // Masked-off lanes are not accessed: the address may lie outside the row.
            __m512 in = _mm512_maskz_loadu_ps(tap.load, rows + v * g.p() + tap.first_j);
            if (s == 2) in = _mm512_maskz_permutexvar_ps(tap.add, tap.spread, in);
            sum = _mm512_mask_add_ps(sum, tap.add, sum, in);
          }
        }
        _mm512_mask_storeu_ps(x + (c * g.h + y) * g.w + run * 16, lanes_below(g.w - run * 16), sum);
      }
}
#endif

}  // namespace

void col2im(const ConvGeometry& g, const float* col, float* x) {
#if defined(__AVX512F__)
  if (g.stride == 1 || g.stride == 2) {
    g.stride == 1 ? col2im_avx512<1>(g, col, x) : col2im_avx512<2>(g, col, x);
    return;
  }
#endif
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
