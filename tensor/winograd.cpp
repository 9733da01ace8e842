// Winograd F(4x4, 3x3) convolution on the CPU (see tensor/winograd.h for the algorithm).
//
// The transforms run over 16 channels at a time, one channel per vector lane, so each thread
// first copies an image into a zero-padded channels-last buffer P[Hp][Wp][C] (16x16 transposes
// in registers); the 6x6 input tiles are then 36 vector loads each. Per block of Tb tiles (from
// one or more images of the thread's share of the batch):
//   1. input transform   V[xi][t][c] = (B^T d_t B)[xi]          for every tile t of the block
//   2. 36 products       M[xi][t][o] = sum_c V[xi][t][c] U[xi][c][o]  (tensor/gemm_kernel.h)
//   3. output transform  y_t = A^T M_t A (+ bias), transposed back to [O][H][W] as it is stored
// Tb is chosen so that V and M stay in the core's L2 cache between the three steps. The weights
// are transformed once per call, U[xi][c][o] = (G g_oc G^T)[xi], by all threads. The weight
// gradient runs the transposed steps: per block V and dM = A dY A^T, then dU[xi] += V[xi]^T dM[xi]
// into the thread's own sum, and at the end dw += G^T dU G over the threads' sums. docs/winograd.md
// explains the choices and the numerics.
//
// With B^T, G and A^T for the points 0, 1, -1, 2, -2 and infinity (Lavin & Gray 2016):
//   B^T = | 4  0 -5  0  1  0 |    G = | 1/4    0     0   |    A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |        | -1/6 -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |        | -1/6  1/6  -1/6  |          | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |        | 1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |        | 1/24 -1/12  1/6  |
//         | 0  4  0 -5  0  1 |        | 0      0     1   |
// Each 2-D transform is the 1-D one applied to the columns of the tile and then to the rows.
//
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics (_mm512_undefined_ps, in the shuffles of transpose16) as (maybe-)uninitialized; the
// warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "tensor/winograd.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "tensor/conv_lowering.h"
#include "tensor/gemm_kernel.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace qnn {
namespace winograd {

#if defined(__AVX512F__)

bool built() { return true; }

bool covers(const ConvGeometry& g, bool bf16) {
#if !defined(__AVX512BF16__)
  if (bf16) return false;
#else
  (void)bf16;
#endif
  const bool channels = g.c == g.o && (g.c == 16 || g.c == 32 || g.c == 64 || g.c == 128 || g.c == 256 || g.c == 512);
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && channels && g.h >= 4 && g.w >= 4;
}

namespace {

using conv_lowering::thread_range;

// conv_lowering::scratch_data rounded up to a 64-byte boundary, so that the vectors the transforms
// store and the products read never straddle two cache lines.
float* scratch_data(int slot, int64_t size) {
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
// as a float.
template <bool Round>
inline __m512 operand(__m512 v) {
#if defined(__AVX512BF16__)
  if (Round) {
    const __m256i bits = (__m256i)_mm512_cvtneps_pbh(v);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  }
#endif
  return v;
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

// u[xi][i][j] = (G f G^T)[xi] for the filter f from input channel i to output channel j of the
// convolution computed (ci = g.c inputs, co = g.o outputs), 16 output channels per vector.
template <bool Round>
void transform_weights(const ConvGeometry& g, const float* w, bool flipped, float* u) {
  const int64_t ci = g.c, co = g.o;
  // f[a][b] = w[j][i][a][b], or flipped: w[i][j][2-a][2-b].
  const int64_t stride_i = flipped ? co * 9 : 9, stride_j = flipped ? 9 : ci * 9;
  const __m512i lanes = _mm512_mullo_epi32(
      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
      _mm512_set1_epi32(static_cast<int>(stride_j)));
#pragma omp parallel for schedule(static) if (kPositions * ci * co >= conv_lowering::kParallelPack && !omp_in_parallel())
  for (int64_t i = 0; i < ci; ++i)
    for (int64_t j0 = 0; j0 < co; j0 += 16) {
      const float* f0 = w + i * stride_i + j0 * stride_j;
      __m512 f[9];
#pragma GCC unroll 16
      for (int k = 0; k < 9; ++k) f[k] = operand<Round>(_mm512_i32gather_ps(lanes, f0 + (flipped ? 8 - k : k), 4));
      __m512 columns[3][kIn];  // columns[b] = G f[.][b]
#pragma GCC unroll 16
      for (int b = 0; b < 3; ++b) {
        const __m512 column[3] = {f[b], f[3 + b], f[6 + b]};
        weight_1d(column, columns[b]);
      }
#pragma GCC unroll 16
      for (int r = 0; r < kIn; ++r) {
        const __m512 row[3] = {columns[0][r], columns[1][r], columns[2][r]};
        __m512 out[kIn];
        weight_1d(row, out);
#pragma GCC unroll 16
        for (int s = 0; s < kIn; ++s) _mm512_storeu_ps(u + ((r * kIn + s) * ci + i) * co + j0, out[s]);
      }
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

// out[(k * N + l) * S + c] = (T d T^T)[k][l] for the n x n block d of a channels-last buffer
// (C channels, rows `ld` pixels apart) whose top-left pixel is `corner`, where T, the 1-D
// transform `Transform`, maps n values to N: applied to the block's columns, then to its rows.
template <int C, int64_t S, int n, int N, void (*Transform)(const __m512*, __m512*)>
void transform_tile(const float* corner, int64_t ld, float* out) {
  for (int cb = 0; cb < C; cb += 16) {
    __m512 columns[n][N];  // columns[j] = T d[.][j]
#pragma GCC unroll 6
    for (int j = 0; j < n; ++j) {
      __m512 d[n];
#pragma GCC unroll 6
      for (int i = 0; i < n; ++i) d[i] = _mm512_loadu_ps(corner + (i * ld + j) * C + cb);
      Transform(d, columns[j]);
    }
#pragma GCC unroll 6
    for (int k = 0; k < N; ++k) {
      __m512 row[n], result[N];
#pragma GCC unroll 6
      for (int j = 0; j < n; ++j) row[j] = columns[j][k];
      Transform(row, result);
#pragma GCC unroll 6
      for (int l = 0; l < N; ++l) _mm512_storeu_ps(out + (k * N + l) * S + cb, result[l]);
    }
  }
}

// v[xi * S + c] = (B^T d B)[xi] for the 6x6 input tile whose top-left pixel is p's (y0, x0).
template <int C, int64_t S>
void transform_input_tile(const float* p, int64_t wp, int64_t y0, int64_t x0, float* v) {
  transform_tile<C, S, kIn, kIn, input_1d>(p + (y0 * wp + x0) * C, wp, v);
}

// Lanes 4a .. 4a+3 of v.
inline __m128 quarter(__m512 v, int a) {
  switch (a) {
    case 0: return _mm512_castps512_ps128(v);
    case 1: return _mm512_extractf32x4_ps(v, 1);
    case 2: return _mm512_extractf32x4_ps(v, 2);
    default: return _mm512_extractf32x4_ps(v, 3);
  }
}

// Stores (or adds, with `accumulate`) the first columns of a row of outputs: all four with a
// plain store (masked stores of partial rows are slow), fewer at the image's right edge.
inline void store_row(float* at, __m128 row, __mmask8 columns, bool accumulate) {
  if (columns == 0xF) {
    if (accumulate) row = _mm_add_ps(row, _mm_loadu_ps(at));
    _mm_storeu_ps(at, row);
  } else {
    if (accumulate) row = _mm_add_ps(row, _mm_maskz_loadu_ps(columns, at));
    _mm_mask_storeu_ps(at, columns, row);
  }
}

// out[a * 4 + b] = (A^T M A)[a][b] (+ bias) for output channels [ob, ob + 16) of one tile, from
// its products m[xi * S + o]: the tile's 16 output pixels, 16 channels each.
template <int64_t S>
inline void output_pixels(const float* m, int ob, const float* bias, __m512 out[16]) {
  __m512 columns[kIn][kOut];  // columns[j] = A^T M[.][j]
#pragma GCC unroll 6
  for (int j = 0; j < kIn; ++j) {
    __m512 mj[kIn];
#pragma GCC unroll 6
    for (int i = 0; i < kIn; ++i) mj[i] = _mm512_loadu_ps(m + (i * kIn + j) * S + ob);
    output_1d(mj, columns[j]);
  }
#pragma GCC unroll 4
  for (int a = 0; a < kOut; ++a) {
    __m512 row[kIn];
#pragma GCC unroll 6
    for (int j = 0; j < kIn; ++j) row[j] = columns[j][a];
    output_1d(row, out + a * kOut);
  }
  if (bias) {
    const __m512 b = _mm512_loadu_ps(bias + ob);
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) out[q] = _mm512_add_ps(out[q], b);
  }
}

// The 4x4 outputs of one tile from its products m[xi * S + o] (C channels): y_n[o][y0 + a][x0 + b]
// = (A^T M A)[a][b] (+ bias[o]), or added to y_n with `accumulate`; rows and columns past the
// image are dropped.
template <int C, int64_t S>
void transform_output_tile(const ConvGeometry& g, const float* m, const float* bias, float* yn, int64_t y0,
                           int64_t x0, bool accumulate) {
  const int64_t plane = g.h * g.w;
  const int rows = static_cast<int>(std::min<int64_t>(kOut, g.h - y0));
  const __mmask8 columns_valid = static_cast<__mmask8>(lanes_below(std::min<int64_t>(kOut, g.w - x0)));
  for (int ob = 0; ob < C; ob += 16) {
    __m512 out[16];
    output_pixels<S>(m, ob, bias, out);
    transpose16(out);  // out[l]: channel ob + l, lane a * 4 + b
#pragma GCC unroll 16
    for (int l = 0; l < 16; ++l) {
      float* yo = yn + (ob + l) * plane + y0 * g.w + x0;
#pragma GCC unroll 4
      for (int a = 0; a < kOut; ++a)
        if (a < rows) store_row(yo + a * g.w, quarter(out[l], a), columns_valid, accumulate);
    }
  }
}

// The same for four tiles side by side in one row of the image (products m + k * C for tile k,
// top-left outputs (y0, x0 + 4k), x0 + 16 <= W): each output row of the four is 16 columns, one
// transpose puts 16 channels of it into 16 vectors, and each is one full store instead of four
// stores of four floats.
template <int C, int64_t S>
void transform_output_row(const ConvGeometry& g, const float* m, const float* bias, float* yn, int64_t y0,
                          int64_t x0, bool accumulate) {
  const int64_t plane = g.h * g.w;
  const int rows = static_cast<int>(std::min<int64_t>(kOut, g.h - y0));
  for (int ob = 0; ob < C; ob += 16) {
    __m512 out[4][16];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) output_pixels<S>(m + k * C, ob, bias, out[k]);
    for (int a = 0; a < rows; ++a) {
      __m512 r[16];  // r[4k + b]: column x0 + 4k + b of row y0 + a
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) r[q] = out[q / 4][a * kOut + q % 4];
      transpose16(r);  // r[l]: channel ob + l, lane = column
#pragma GCC unroll 16
      for (int l = 0; l < 16; ++l) {
        float* at = yn + (ob + l) * plane + (y0 + a) * g.w + x0;
        _mm512_storeu_ps(at, accumulate ? _mm512_add_ps(r[l], _mm512_loadu_ps(at)) : r[l]);
      }
    }
  }
}

// Tiles per block: V[xi][t][c] and M[xi][t][o] for C = O channels together take about
// kBlockBytes, in whole register tiles of MR rows. A compile-time constant, as are all the strides
// below, so that the transforms' 36 positions and the product's MR rows are constant offsets
// from one pointer (runtime strides would need a register each, more than x86-64 has).
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

// M[xi] = V[xi] * U[xi] for the first `tiles` tiles of a block, rounded up to MR (the buffers
// hold whole register tiles; the extra rows are computed from stale data and dropped).
template <int C, int MR, int NV>
void multiply_positions(const float* v, const float* u, float* m, int64_t tiles) {
  constexpr int64_t S = kCapacity<C, MR> * C;
  for (int xi = 0; xi < kPositions; ++xi)
    for (int j = 0; j < C; j += 16 * NV)
      for (int64_t t = 0; t < tiles; t += MR)
        outer_product_tile<MR, NV, C, 1, C>(C, v + xi * S + t * C, u + xi * C * C + j, m + xi * S + t * C + j,
                                            false);
}

// Where a tile of a block came from: image n, top-left output (y0, x0).
struct Tile {
  int64_t n, y0, x0;
};

// Whether tiles[0..3] (of `left` in the block) are four neighbours in one row of one image, all
// of whose 16 columns lie inside the image (width w).
inline bool four_in_a_row(const Tile* tiles, int64_t left, int64_t w) {
  if (left < 4 || tiles[0].x0 + 4 * kOut > w) return false;
  for (int k = 1; k < 4; ++k)
    if (tiles[k].n != tiles[0].n || tiles[k].y0 != tiles[0].y0 || tiles[k].x0 != tiles[0].x0 + k * kOut) return false;
  return true;
}

// The convolution with C input and C output channels; register tiles of MR tiles by 16 NV
// channels.
template <int C, int MR, int NV, bool Round>
void forward_blocked(const ConvGeometry& g, const float* x, const float* u, const float* bias, float* y,
                     bool accumulate) {
  const int64_t tiles_y = (g.h + kOut - 1) / kOut, tiles_x = (g.w + kOut - 1) / kOut;
  const int64_t hp = tiles_y * kOut + 2, wp = tiles_x * kOut + 2;
  constexpr int64_t capacity = kCapacity<C, MR>, S = capacity * C;
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    float* p = scratch_data(0, hp * wp * C);
    float* v = scratch_data(1, kPositions * S);
    float* m = scratch_data(2, kPositions * S);
    thread_local std::vector<Tile> block;
    block.resize(static_cast<size_t>(capacity));
    int64_t filled = 0;
    auto flush = [&] {
      multiply_positions<C, MR, NV>(v, u, m, filled);
      for (int64_t t = 0; t < filled;) {
        const Tile& first = block[t];
        float* yn = y + first.n * g.image_out();
        if (four_in_a_row(block.data() + t, filled - t, g.w)) {
          transform_output_row<C, S>(g, m + t * C, bias, yn, first.y0, first.x0, accumulate);
          t += 4;
        } else {
          transform_output_tile<C, S>(g, m + t * C, bias, yn, first.y0, first.x0, accumulate);
          t += 1;
        }
      }
      filled = 0;
    };
    for (int64_t n = begin; n < end; ++n) {
      pad_channels_last<Round>(x + n * g.image_in(), C, g.h, g.w, 1, hp, wp, p);
      for (int64_t ty = 0; ty < tiles_y; ++ty)
        for (int64_t tx = 0; tx < tiles_x; ++tx) {
          transform_input_tile<C, S>(p, wp, ty * kOut, tx * kOut, v + filled * C);
          block[filled++] = Tile{n, ty * kOut, tx * kOut};
          if (filled == capacity) flush();
        }
    }
    if (filled > 0) flush();
  }
}

// dm[xi * S + o] = (A dY A^T)[xi] for the 4x4 output gradients whose top-left is q's pixel
// (y0, x0).
template <int C, int64_t S>
void transform_gradient_tile(const float* q, int64_t wq, int64_t y0, int64_t x0, float* dm) {
  transform_tile<C, S, kOut, kIn, output_gradient_1d>(q + (y0 * wq + x0) * C, wq, dm);
}

// dw[o][c] += (G^T dU[.][c][o] G) for all channel pairs, 16 output channels per vector.
template <int C>
void add_weight_gradient(const float* du, float* dw) {
  const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(C * 9));
  for (int c = 0; c < C; ++c)
    for (int o0 = 0; o0 < C; o0 += 16) {
      __m512 columns[kIn][3];  // columns[j] = G^T dU[.][j]
#pragma GCC unroll 6
      for (int j = 0; j < kIn; ++j) {
        __m512 u[kIn];
#pragma GCC unroll 6
        for (int i = 0; i < kIn; ++i) u[i] = _mm512_loadu_ps(du + ((i * kIn + j) * C + c) * C + o0);
        weight_gradient_1d(u, columns[j]);
      }
      float* target = dw + (o0 * C + c) * 9;
#pragma GCC unroll 3
      for (int a = 0; a < 3; ++a) {
        __m512 row[kIn], f[3];
#pragma GCC unroll 6
        for (int j = 0; j < kIn; ++j) row[j] = columns[j][a];
        weight_gradient_1d(row, f);
#pragma GCC unroll 3
        for (int b = 0; b < 3; ++b) {
          const __m512 sum = _mm512_add_ps(_mm512_i32gather_ps(lanes, target + a * 3 + b, 4), f[b]);
          _mm512_i32scatter_ps(target + a * 3 + b, lanes, sum, 4);
        }
      }
    }
}

// dw += the weight gradient of the convolution with C input and C output channels (and db += the
// bias gradient when db is not null): per thread, dU[xi] = sum over its tiles of V[xi]^T dM[xi]
// in blocks of tiles, then the threads' dU summed in thread order and transformed back.
template <int C, int MR, int NV, bool Round>
void weight_gradient_blocked(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  const int64_t tiles_y = (g.h + kOut - 1) / kOut, tiles_x = (g.w + kOut - 1) / kOut;
  const int64_t hp = tiles_y * kOut + 2, wp = tiles_x * kOut + 2, hq = tiles_y * kOut, wq = tiles_x * kOut;
  // From 128 channels the thread's dU (2.4 MB and up) lives in L3, read and written once per
  // block: blocks of at least 64 tiles keep that traffic below the products' work (blocks of 32
  // and 128 measured no faster).
  constexpr int64_t capacity = std::max<int64_t>(kCapacity<C, 1>, C >= 128 ? 64 : 0), S = capacity * C;
  constexpr int64_t part = kPositions * C * C + C;  // one thread's dU and bias sums
  // One partial per thread of the team that actually runs (one when called inside a parallel
  // region), summed in thread order afterwards.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  float* partial = scratch_data(conv_lowering::kFlippedSlot, threads * part);
  int team = 1;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
#pragma omp single
    team = omp_get_num_threads();
    int64_t begin, end;
    thread_range(g.n, t, team, begin, end);
    float* du = partial + t * part;
    std::fill(du, du + part, 0.0f);
    float* p = scratch_data(0, hp * wp * C + hq * wq * C);
    float* q = p + hp * wp * C;
    float* v = scratch_data(1, kPositions * S);
    float* dm = scratch_data(2, kPositions * S);
    int64_t filled = 0;
    auto flush = [&] {
      for (int xi = 0; xi < kPositions; ++xi)
        for (int r = 0; r < C; r += MR)
          for (int j = 0; j < C; j += 16 * NV)
            outer_product_tile<MR, NV, 1, C, C>(filled, v + xi * S + r, dm + xi * S + j, du + (xi * C + r) * C + j,
                                                true);
      filled = 0;
    };
    for (int64_t n = begin; n < end; ++n) {
      pad_channels_last<Round>(x + n * g.image_in(), C, g.h, g.w, 1, hp, wp, p);
      pad_channels_last<Round>(dy + n * g.image_out(), C, g.h, g.w, 0, hq, wq, q);
      for (int64_t ty = 0; ty < tiles_y; ++ty)
        for (int64_t tx = 0; tx < tiles_x; ++tx) {
          transform_input_tile<C, S>(p, wp, ty * kOut, tx * kOut, v + filled * C);
          transform_gradient_tile<C, S>(q, wq, ty * kOut, tx * kOut, dm + filled * C);
          if (++filled == capacity) flush();
        }
    }
    if (filled > 0) flush();
    if (db) conv_lowering::add_bias_sums(g, dy, begin, end, du + kPositions * C * C);
  }
  for (int t = 1; t < team; ++t)
    for (int64_t i = 0; i < part; ++i) partial[i] += partial[t * part + i];
  add_weight_gradient<C>(partial, dw);
  if (db)
    for (int64_t o = 0; o < C; ++o) db[o] += partial[kPositions * C * C + o];
}

// Register tiles as wide as the channels allow: 16, 32 or 64 channels per row.
template <bool Round>
void forward_channels(const ConvGeometry& g, const float* x, const float* w, bool flipped, const float* bias,
                      float* y, bool accumulate) {
  float* u = scratch_data(conv_lowering::kPackedSlot, kPositions * g.c * g.o);
  transform_weights<Round>(g, w, flipped, u);
  switch (g.c) {
    case 16: return forward_blocked<16, 24, 1, Round>(g, x, u, bias, y, accumulate);
    case 32: return forward_blocked<32, 12, 2, Round>(g, x, u, bias, y, accumulate);
    case 64: return forward_blocked<64, 6, 4, Round>(g, x, u, bias, y, accumulate);
    case 128: return forward_blocked<128, 6, 4, Round>(g, x, u, bias, y, accumulate);
    case 256: return forward_blocked<256, 6, 4, Round>(g, x, u, bias, y, accumulate);
    default: return forward_blocked<512, 6, 4, Round>(g, x, u, bias, y, accumulate);
  }
}

template <bool Round>
void weight_gradient_channels(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  switch (g.c) {
    case 16: return weight_gradient_blocked<16, 16, 1, Round>(g, x, dy, dw, db);
    case 32: return weight_gradient_blocked<32, 8, 2, Round>(g, x, dy, dw, db);
    case 64: return weight_gradient_blocked<64, 8, 2, Round>(g, x, dy, dw, db);
    case 128: return weight_gradient_blocked<128, 8, 2, Round>(g, x, dy, dw, db);
    default: return weight_gradient_blocked<256, 8, 2, Round>(g, x, dy, dw, db);
  }
}

}  // namespace

void forward(const ConvGeometry& g, const float* x, const float* w, bool flipped, const float* bias,
             float* y, bool accumulate, bool bf16) {
  if (bf16) return forward_channels<true>(g, x, w, flipped, bias, y, accumulate);
  forward_channels<false>(g, x, w, flipped, bias, y, accumulate);
}

bool covers_weight_gradient(const ConvGeometry& g, bool bf16) { return covers(g, bf16) && g.c <= 256; }

void weight_gradient(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db, bool bf16) {
  if (bf16) return weight_gradient_channels<true>(g, x, dy, dw, db);
  weight_gradient_channels<false>(g, x, dy, dw, db);
}

#else  // no AVX-512: the lowerings of tensor/conv.cpp take every shape.

bool built() { return false; }

bool covers(const ConvGeometry&, bool) { return false; }

void forward(const ConvGeometry&, const float*, const float*, bool, const float*, float*, bool, bool) {
  std::abort();  // unreachable: covers() is false
}

bool covers_weight_gradient(const ConvGeometry&, bool) { return false; }

void weight_gradient(const ConvGeometry&, const float*, const float*, float*, float*, bool) {
  std::abort();  // unreachable: covers_weight_gradient() is false
}

#endif

}  // namespace winograd
}  // namespace qnn
