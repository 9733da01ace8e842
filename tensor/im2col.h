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

// Validates x [N, C, H, W] against w [O, C, KH, KW] and the parameters.
ConvGeometry conv_geometry(const Shape& x, const Shape& w, ConvParams p);

// col [K x P] from one image x [C, H, W].
void im2col(const ConvGeometry& g, const float* x, float* col);
// x [C, H, W] = col2im(col): x is overwritten with the sums.
void col2im(const ConvGeometry& g, const float* col, float* x);

// Shifted planes: the same matrix without writing it out. For each channel c, kernel column v
// and row phase ph < stride, one plane of R = Ho + (KH-1)/stride rows by Wo columns,
//   planes[((c*KW + v)*s + ph)*R*Wo + r*Wo + j] = x[c][r*s + ph - pad][j*s + v - pad]  (0 outside),
// so that row (c, u, v) of col is the run of P contiguous floats starting at
//   offset(c, u, v) = ((c*KW + v)*s + u%s)*R*Wo + (u/s)*Wo
// (output row i reads plane row i + u/s, i.e. image row i*s + u - pad). Building them copies
// KW*s*R/H times the image instead of the KH*KW times of im2col (about 3x less for 3x3).
int64_t shifted_planes_size(const ConvGeometry& g);
// offsets[(c*KH + u)*KW + v] for all K rows.
void shifted_row_offsets(const ConvGeometry& g, int64_t* offsets);
void shifted_planes(const ConvGeometry& g, const float* x, float* planes);

}  // namespace qnn
