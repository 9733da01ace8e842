// im2col and its adjoint col2im: the lowering that turns a convolution into a matrix product.
//
// For one image x [C, H, W], kernel KH x KW, stride s and zero padding `pad`, the column matrix
// has K = C*KH*KW rows and P = Ho*Wo columns:
//   col[(c*KH + u)*KW + v][i*Wo + j] = x[c][i*s + u - pad][j*s + v - pad]   (0 outside the image)
// so that y[O x P] = w[O x K] * col (Chellapilla et al., "High performance convolutional neural
// networks for document processing", 2006). col2im adds every entry back to the pixel it came
// from, which is the transpose of im2col and what the gradient with respect to x needs.
// im2col is built from the shifted planes below (one contiguous run per row of col). col2im at
// strides 1 and 2 sums each run of 16 pixels of x in a register over the rows of col that reach
// it, in the order of the rows; at other strides it adds back a row of `col` at a time (the
// columns j that fall inside the image form one contiguous range, so each row is one strided run).
#pragma once
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensor/conv.h"

namespace qnn {

// Sizes of one convolution, checked once and shared by the kernels.
struct ConvGeometry {
  int64_t n, c, h, w, o, kh, kw, ho, wo;
  int stride, pad;
  int64_t k() const { return c * kh * kw; }  // rows of col (reduction length of the forward gemm)
  int64_t p() const { return ho * wo; }      // columns of col (output pixels per image)
  int64_t image_in() const { return c * h * w; }
  int64_t image_out() const { return o * ho * wo; }
};

// dst[0, n) = src[0, n) for the short runs of the lowerings (rows of 8 to 34 floats), without a
// library call per run.
inline void copy_floats(float* dst, const float* src, int64_t n) {
#if defined(__AVX512F__)
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_loadu_ps(src + i));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
  }
#else
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
#endif
}

// The row phases of the shifted planes (below) that a kernel reads: kernel row u reads phase
// u % stride, so min(stride, KH) of them (a 1x1 kernel at stride 2 reads the even rows only).
inline int64_t row_phases(const ConvGeometry& g) { return g.stride < g.kh ? g.stride : g.kh; }

#if defined(__AVX512F__)
// Lanes [0, n) of a 16-lane mask, n clamped to [0, 16].
inline __mmask16 lanes_below(int64_t n) {
  return n <= 0 ? 0 : n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1u);
}

// The lanes t of a run of 16 source columns [first, first + 16) that lie inside [0, w).
inline __mmask16 inside_row(int64_t first, int64_t w) {
  return static_cast<__mmask16>(lanes_below(w - first) & ~lanes_below(-first));
}

// One run of a shifted plane row (stride 1 or 2): lane t is image[y][first + t*stride] for one
// channel's image, zero outside it, where low = inside_row(first, W) and high =
// inside_row(first + 16, W). One masked load at stride 1; at stride 2 two, whose even lanes one
// permute picks. The load address may lie before or past the row (and the image) where lanes are
// masked off: masked-off lanes of an AVX-512 load are not accessed and cannot fault.
inline __m512 source_run(const ConvGeometry& g, const float* image, int64_t y, int64_t first,
                         __mmask16 low, __mmask16 high) {
  if (y < 0 || y >= g.h) return _mm512_setzero_ps();
  const float* in = image + y * g.w + first;
  const __m512 run = _mm512_maskz_loadu_ps(low, in);
  if (g.stride == 1) return run;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_ps(run, even, _mm512_maskz_loadu_ps(high, in + 16));
}

// Asks for the lines that source_run(g, image, y, first, ...) reads to be brought into L1. The
// plane builders call it for the next channel's image while they build this one's runs: an
// image that comes from memory then arrives one channel ahead, where the hardware prefetcher,
// handed rows s apart, leaves each row's first read to wait for memory. (Addresses before the
// row, where `first` is negative, are only prefetched, never read.) Always inlined: a prefetch has
// no effect the language sees, so g++ takes a call to this function for one without side
// effects and deletes it.
__attribute__((always_inline)) inline void prefetch_source_run(const ConvGeometry& g, const float* image,
                                                               int64_t y, int64_t first) {
  if (y < 0 || y >= g.h) return;
  const char* in = reinterpret_cast<const char*>(image + y * g.w + first);
  _mm_prefetch(in, _MM_HINT_T0);
  if (g.stride == 2) _mm_prefetch(in + 64, _MM_HINT_T0);
}

// Walks the shifted planes (below) of `channels` channels (or groups of channels) in runs of 16
// plane columns: for each, calls
//   store(c, y, first, low, high, mask, at)
// where the run is plane row i of (c, v, ph), holding source row y = i*s + ph - pad at columns
// first + t*s (source_run's arguments low and high), mask selects its valid lanes and `at` is
// its offset in the planes. The builders of float, bf16 and paired planes differ only in store.
template <class Store>
inline void for_each_plane_run(const ConvGeometry& g, int64_t channels, Store store) {
  const int64_t s = g.stride, rows = g.ho + (g.kh - 1) / s, phases = row_phases(g);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t v = 0; v < g.kw; ++v)
      for (int64_t ph = 0; ph < phases; ++ph) {
        const int64_t plane = ((c * g.kw + v) * phases + ph) * rows * g.wo;
        for (int64_t j = 0; j < g.wo; j += 16) {
          const int64_t first = j * s + v - g.pad;  // source column of output column j
          const __mmask16 low = inside_row(first, g.w), high = inside_row(first + 16, g.w);
          const __mmask16 mask = lanes_below(g.wo - j);
          for (int64_t i = 0; i < rows; ++i) store(c, i * s + ph - g.pad, first, low, high, mask, plane + i * g.wo + j);
        }
      }
}
#endif

// Row offsets of the implicit im2col over a zero-padded image of `channels` planes, each
// (H + 2 pad) x (W + 2 pad): offsets[(c*KH + u)*KW + v] = c*Hp*Wp + u*Wp + v, so that row
// (c, u, v) of col, computed on an output grid Wp wide, starts there.
inline void padded_row_offsets(const ConvGeometry& g, int64_t channels, int64_t* offsets) {
  const int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) offsets[(c * g.kh + u) * g.kw + v] = c * hp * wp + u * wp + v;
}

// Validates x [N, C, H, W] against w [O, C, KH, KW] and the parameters.
ConvGeometry conv_geometry(const Shape& x, const Shape& w, ConvParams p);

// col [K x P] from one image x [C, H, W].
void im2col(const ConvGeometry& g, const float* x, float* col);
// x [C, H, W] = col2im(col): x is overwritten with the sums.
void col2im(const ConvGeometry& g, const float* col, float* x);

// Shifted planes: the same matrix without writing it out. For each channel c, kernel column v
// and row phase ph < S = row_phases(g) = min(stride, KH), one plane of R = Ho + (KH-1)/stride
// rows by Wo columns,
//   planes[((c*KW + v)*S + ph)*R*Wo + r*Wo + j] = x[c][r*s + ph - pad][j*s + v - pad]  (0 outside),
// so that row (c, u, v) of col is the run of P contiguous floats starting at
//   offset(c, u, v) = ((c*KW + v)*S + u%s)*R*Wo + (u/s)*Wo
// (output row i reads plane row i + u/s, i.e. image row i*s + u - pad). Building them copies
// KW*s*R/H times the image instead of the KH*KW times of im2col (about 3x less for 3x3).
int64_t shifted_planes_size(const ConvGeometry& g);
// offsets[(c*KH + u)*KW + v] for all K rows.
void shifted_row_offsets(const ConvGeometry& g, int64_t* offsets);
void shifted_planes(const ConvGeometry& g, const float* x, float* planes);

}  // namespace qnn
