// What the Winograd F(4x4, 3x3) passes share (tensor/winograd.cpp: forward and input gradient;
// tensor/winograd_weight.cpp: weight gradient; the algorithm in tensor/winograd.h): the 1-D
// transforms of the matrices below, the 2-D transform built from them, the channels-last copy of
// an image, the tile blocks and the register kernel of the 36 products. Internal to those files
// (and tests/tensor/test_winograd.cpp, which checks the bf16 rounding of `operand`).
//
// With B^T, G and A^T for the points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016):
//   B^T = | 4  0 -5  0  1  0 |    G = | 1/4    0     0   |    A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |        | -1/6 -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |        | -1/6  1/6  -1/6  |          | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |        | 1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |        | 1/24 -1/12  1/6  |
//         | 0  4  0 -5  0  1 |        | 0      0     1   |
// Each 2-D transform is the 1-D one applied to the columns of the tile and then to the rows
// (separable_transform). The transforms run over 16 channels at a time, one per vector lane.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tensor/conv_lowering.h"
#include "tensor/im2col.h"

#if defined(__AVX512F__)
#include <immintrin.h>

namespace qnn {
namespace winograd_tiles {

// conv_lowering::scratch_data rounded up to a 64-byte boundary, so that the vectors the transforms
// store and the products read never straddle two cache lines.
inline float* scratch_data(int slot, int64_t size) {
  float* raw = conv_lowering::scratch_data(slot, size + 16);
  const uintptr_t address = reinterpret_cast<uintptr_t>(raw);
  return reinterpret_cast<float*>((address + 63) & ~static_cast<uintptr_t>(63));
}

constexpr int kOut = 4;                // outputs per tile side
constexpr int kIn = kOut + 2;          // inputs per tile side
constexpr int kPositions = kIn * kIn;  // xi = 0 .. 35
// V and M of a block (36 Tb (C + O) floats) should stay in L2 between the steps.
constexpr int64_t kBlockBytes = 640 * 1024;

inline __m512 splat(float v) { return _mm512_set1_ps(v); }

// v rounded to bf16 (VCVTNEPS2BF16, the rounding of `--precision bf16`, tensor/bf16.h) when Round,
// as a float. Without AVX-512 BF16 the same rounding in integer operations, bf16_bits' steps:
// zero and subnormals to a signed zero, NaN to a quiet NaN, the rest to nearest with ties to
// even (adding 0x7FFF plus the lowest kept bit, then clearing the low 16 bits), so both builds
// give the same bits.
template <bool Round>
inline __m512 operand(__m512 v) {
  if (!Round) return v;
#if defined(__AVX512BF16__)
  const __m256i bits = (__m256i)_mm512_cvtneps_pbh(v);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
#else
  const __m512i u = _mm512_castps_si512(v);
  const __m512i magnitude = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 tiny = _mm512_cmplt_epu32_mask(magnitude, _mm512_set1_epi32(0x00800000));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(magnitude, _mm512_set1_epi32(0x7F800000));
  const __mmask16 odd = _mm512_test_epi32_mask(u, _mm512_set1_epi32(0x00010000));  // the lowest kept bit
  __m512i r = _mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF));
  r = _mm512_mask_add_epi32(r, odd, r, _mm512_set1_epi32(1));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x00400000)));
  r = _mm512_mask_mov_epi32(r, tiny, _mm512_and_si512(u, _mm512_set1_epi32(int(0x80000000u))));
  return _mm512_castsi512_ps(_mm512_and_si512(r, _mm512_set1_epi32(int(0xFFFF0000u))));
#endif
}

// r = B^T d for one column or row d of an input tile.
inline void input_1d(const __m512 d[kIn], __m512 r[kIn]) {
  r[0] = _mm512_fmadd_ps(splat(4), d[0], _mm512_fnmadd_ps(splat(5), d[2], d[4]));
  r[1] = _mm512_fnmadd_ps(splat(4), _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
  r[2] = _mm512_fmadd_ps(splat(4), _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
  r[3] = _mm512_fmadd_ps(splat(2), _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[4], d[2]));
  r[4] = _mm512_fmadd_ps(splat(2), _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d[4], d[2]));
  r[5] = _mm512_fmadd_ps(splat(4), d[1], _mm512_fnmadd_ps(splat(5), d[3], d[5]));
}

// s = A^T m for one column or row m of a tile of products.
inline void output_1d(const __m512 m[kIn], __m512 s[kOut]) {
  const __m512 sum12 = _mm512_add_ps(m[1], m[2]), dif12 = _mm512_sub_ps(m[1], m[2]);
  const __m512 sum34 = _mm512_add_ps(m[3], m[4]), dif34 = _mm512_sub_ps(m[3], m[4]);
  s[0] = _mm512_add_ps(_mm512_add_ps(m[0], sum12), sum34);
  s[1] = _mm512_fmadd_ps(splat(2), dif34, dif12);
  s[2] = _mm512_fmadd_ps(splat(4), sum34, sum12);
  s[3] = _mm512_add_ps(_mm512_fmadd_ps(splat(8), dif34, dif12), m[5]);
}

// a = G f for one column or row f of a 3x3 filter.
inline void weight_1d(const __m512 f[3], __m512 a[kIn]) {
  const __m512 outer = _mm512_add_ps(f[0], f[2]);
  a[0] = _mm512_mul_ps(splat(1.0f / 4), f[0]);
  a[1] = _mm512_mul_ps(splat(-1.0f / 6), _mm512_add_ps(outer, f[1]));
  a[2] = _mm512_mul_ps(splat(-1.0f / 6), _mm512_sub_ps(outer, f[1]));
  const __m512 even = _mm512_fmadd_ps(splat(1.0f / 6), f[2], _mm512_mul_ps(splat(1.0f / 24), f[0]));
  a[3] = _mm512_fmadd_ps(splat(1.0f / 12), f[1], even);
  a[4] = _mm512_fnmadd_ps(splat(1.0f / 12), f[1], even);
  a[5] = f[2];
}

// r = A dy for one column or row dy of a 4x4 tile of output gradients (the transpose of
// output_1d, which is what carries a gradient back through it).
inline void output_gradient_1d(const __m512 dy[kOut], __m512 r[kIn]) {
  const __m512 even = _mm512_add_ps(dy[0], dy[2]), odd = _mm512_add_ps(dy[1], dy[3]);
  const __m512 even4 = _mm512_fmadd_ps(splat(4), dy[2], dy[0]);
  const __m512 odd8 = _mm512_fmadd_ps(splat(8), dy[3], _mm512_add_ps(dy[1], dy[1]));
  r[0] = dy[0];
  r[1] = _mm512_add_ps(even, odd);
  r[2] = _mm512_sub_ps(even, odd);
  r[3] = _mm512_add_ps(even4, odd8);
  r[4] = _mm512_sub_ps(even4, odd8);
  r[5] = dy[3];
}

// f = G^T u for one column or row u of a 6x6 weight gradient (the transpose of weight_1d).
inline void weight_gradient_1d(const __m512 u[kIn], __m512 f[3]) {
  const __m512 sum12 = _mm512_add_ps(u[1], u[2]), dif21 = _mm512_sub_ps(u[2], u[1]);
  const __m512 sum34 = _mm512_add_ps(u[3], u[4]), dif34 = _mm512_sub_ps(u[3], u[4]);
  f[0] = _mm512_fmadd_ps(splat(1.0f / 24), sum34,
                         _mm512_fmadd_ps(splat(-1.0f / 6), sum12, _mm512_mul_ps(splat(1.0f / 4), u[0])));
  f[1] = _mm512_fmadd_ps(splat(1.0f / 12), dif34, _mm512_mul_ps(splat(1.0f / 6), dif21));
  f[2] = _mm512_fmadd_ps(splat(1.0f / 6), _mm512_sub_ps(sum34, sum12), u[5]);
}

// r[q] becomes column q of the 16x16 matrix whose rows were r[0..15].
inline void transpose16(__m512 r[16]) {
  __m512 a[16], b[16];
#pragma GCC unroll 16
  for (int k = 0; k < 8; ++k) {
    a[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
    a[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
  }
  // b[4k + e], 128-bit lane L: element 4L + e of rows 4k .. 4k+3.
#pragma GCC unroll 16
  for (int k = 0; k < 4; ++k) {
    const __m512d lo0 = _mm512_castps_pd(a[4 * k]), lo1 = _mm512_castps_pd(a[4 * k + 2]);
    const __m512d hi0 = _mm512_castps_pd(a[4 * k + 1]), hi1 = _mm512_castps_pd(a[4 * k + 3]);
    b[4 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
    b[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
    b[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
    b[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
  }
#pragma GCC unroll 16
  for (int e = 0; e < 4; ++e) {
    const __m512 c02 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x88);  // lanes 0, 2 of each
    const __m512 c13 = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xDD);  // lanes 1, 3 of each
    const __m512 d02 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x88);
    const __m512 d13 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xDD);
    r[e] = _mm512_shuffle_f32x4(c02, d02, 0x88);
    r[8 + e] = _mm512_shuffle_f32x4(c02, d02, 0xDD);
    r[4 + e] = _mm512_shuffle_f32x4(c13, d13, 0x88);
    r[12 + e] = _mm512_shuffle_f32x4(c13, d13, 0xDD);
  }
}

// p[Hp][Wp][C] = image [C][H][W] in channels-last order, `before` rows and columns of zeros
// before it and enough after it to fill whole tiles (each value rounded to bf16 when Round).
template <bool Round>
void pad_channels_last(const float* image, int64_t c, int64_t h, int64_t w, int64_t before, int64_t hp,
                       int64_t wp, float* p) {
  std::fill(p, p + before * wp * c, 0.0f);                        // rows above the image
  std::fill(p + (before + h) * wp * c, p + hp * wp * c, 0.0f);    // rows below it
  for (int64_t y = 0; y < h; ++y) {
    // The image comes from memory, 16 planes at a time: the row two below is asked for ahead
    // (measured 4% faster on the ResNet-20 step; four rows ahead no better, eight worse).
    const int64_t ahead = std::min(y + 2, h - 1);
    float* row = p + (before + y) * wp * c;
    std::fill(row, row + before * c, 0.0f);                       // columns left of it
    std::fill(row + (before + w) * c, row + wp * c, 0.0f);        // columns right of it
    for (int64_t cb = 0; cb < c; cb += 16)
      for (int64_t x0 = 0; x0 < w; x0 += 16) {
        const int64_t valid = std::min<int64_t>(16, w - x0);
        const __mmask16 mask = lanes_below(valid);
        __m512 r[16];
#pragma GCC unroll 16
        for (int l = 0; l < 16; ++l) {
          const float* plane = image + (cb + l) * h * w;
          _mm_prefetch(reinterpret_cast<const char*>(plane + ahead * w + x0), _MM_HINT_T0);
          r[l] = operand<Round>(_mm512_maskz_loadu_ps(mask, plane + y * w + x0));
        }
        transpose16(r);
        for (int64_t q = 0; q < valid; ++q) _mm512_storeu_ps(row + (before + x0 + q) * c + cb, r[q]);
      }
  }
}

// The 2-D transform T d T^T of an n x n block d, T the 1-D transform `Transform` from n values
// to N (one of the *_1d above): T applied to the block's columns, load(i, j) = d[i][j], then to
// the rows of the result; result(k, l, value) receives each of the N x N values.
template <int n, int N, void (*Transform)(const __m512*, __m512*), typename Load, typename Result>
inline void separable_transform(Load load, Result result) {
  __m512 columns[n][N];  // columns[j] = T d[.][j]
#pragma GCC unroll 6
  for (int j = 0; j < n; ++j) {
    __m512 d[n];
#pragma GCC unroll 6
    for (int i = 0; i < n; ++i) d[i] = load(i, j);
    Transform(d, columns[j]);
  }
#pragma GCC unroll 6
  for (int k = 0; k < N; ++k) {
    __m512 row[n], out[N];
#pragma GCC unroll 6
    for (int j = 0; j < n; ++j) row[j] = columns[j][k];
    Transform(row, out);
#pragma GCC unroll 6
    for (int l = 0; l < N; ++l) result(k, l, out[l]);
  }
}

// out[(k * N + l) * S + c] = (T d T^T)[k][l] for the n x n block d of a channels-last buffer
// (C channels, rows `ld` pixels apart) whose top-left pixel is `corner`.
template <int C, int64_t S, int n, int N, void (*Transform)(const __m512*, __m512*)>
void transform_tile(const float* corner, int64_t ld, float* out) {
  for (int cb = 0; cb < C; cb += 16)
    separable_transform<n, N, Transform>(
        [&](int i, int j) { return _mm512_loadu_ps(corner + (i * ld + j) * C + cb); },
        [&](int k, int l, __m512 v) { _mm512_storeu_ps(out + (k * N + l) * S + cb, v); });
}

// v[xi * S + c] = (B^T d B)[xi] for the 6x6 input tile whose top-left pixel is p's (y0, x0).
template <int C, int64_t S>
void transform_input_tile(const float* p, int64_t wp, int64_t y0, int64_t x0, float* v) {
  transform_tile<C, S, kIn, kIn, input_1d>(p + (y0 * wp + x0) * C, wp, v);
}

// Tiles per block: V[xi][t][c] and M[xi][t][o] for C = O channels together take about
// kBlockBytes, in whole register tiles of MR rows. A compile-time constant, like the product's
// strides (outer_product_tile), so that the 36 positions are constant offsets from one pointer.
template <int C, int MR>
constexpr int64_t kCapacity = std::max<int64_t>(MR, kBlockBytes / (2 * 4 * kPositions * C) / MR * MR);

// The register tile of both products: for rows r < MR and columns [0, 16 NV)
//     c[r][j] = (c[r][j] if `resume`, else 0) + sum_{p < k} a[r * RS + p * CS] b[p * LD + j]
// with the rows of b and c LD floats apart. The strides are compile-time constants, so that the
// MR rows of a are constant offsets from one pointer (runtime strides would need a register per
// row, more than x86-64 has).
template <int MR, int NV, int64_t RS, int64_t CS, int64_t LD>
inline void outer_product_tile(int64_t k, const float* a, const float* b, float* c, bool resume) {
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) acc[r][q] = resume ? _mm512_loadu_ps(c + r * LD + 16 * q) : _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    __m512 bp[NV];
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) bp[q] = _mm512_loadu_ps(b + p * LD + 16 * q);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r * RS + p * CS]);
#pragma GCC unroll 4
      for (int q = 0; q < NV; ++q) acc[r][q] = _mm512_fmadd_ps(ar, bp[q], acc[r][q]);
    }
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int q = 0; q < NV; ++q) _mm512_storeu_ps(c + r * LD + 16 * q, acc[r][q]);
}

}  // namespace winograd_tiles
}  // namespace qnn

#endif
