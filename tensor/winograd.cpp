// Winograd F(4x4, 3x3) convolution on the CPU, forward and input gradient (tensor/winograd.h for
// the algorithm, tensor/winograd_tiles.h for the matrices and the shared pieces, the weight
// gradient in tensor/winograd_weight.cpp).
//
// Each thread copies an image into a zero-padded channels-last buffer P[Hp][Wp][C] (16x16
// transposes in registers); the 6x6 input tiles are then 36 vector loads each. Per block of Tb
// tiles (from one or more images of the thread's share of the batch):
//   1. input transform   V[xi][t][c] = (B^T d_t B)[xi]          for every tile t of the block
//   2. 36 products       M[xi][t][o] = sum_c V[xi][t][c] U[xi][c][o]  (outer_product_tile)
//   3. output transform  y_t = A^T M_t A (+ bias), transposed back to [O][H][W] as it is stored
// Tb is chosen so that V and M stay in the core's L2 cache between the three steps. The weights
// are transformed once per call, U[xi][c][o] = (G g_oc G^T)[xi], by all threads.
// docs/winograd.md explains the choices and the numerics.
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

#include "tensor/winograd_tiles.h"

namespace qnn {
namespace winograd {

#if defined(__AVX512F__)

bool built() { return true; }

bool covers(const ConvGeometry& g) {
  const bool channels = g.c == g.o && (g.c == 16 || g.c == 32 || g.c == 64 || g.c == 128 || g.c == 256 || g.c == 512);
  return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && channels && g.h >= 8 && g.w >= 8;
}

namespace {

using namespace winograd_tiles;
using conv_lowering::thread_range;

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
      separable_transform<3, kIn, weight_1d>(
          [&](int a, int b) { return f[a * 3 + b]; },
          [&](int r, int s, __m512 v) { _mm512_storeu_ps(u + ((r * kIn + s) * ci + i) * co + j0, v); });
    }
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
  separable_transform<kIn, kOut, output_1d>(
      [&](int i, int j) { return _mm512_loadu_ps(m + (i * kIn + j) * S + ob); },
      [&](int a, int b, __m512 v) { out[a * kOut + b] = v; });
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
        // The line that the next row of tiles will write here, 16 planes apart: asked for now
        // so that it is in cache by then (the hardware prefetcher does not cross the pages).
        if (y0 + kOut + a < g.h) __builtin_prefetch(at + kOut * g.w, 1);
      }
    }
  }
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

}  // namespace

void forward(const ConvGeometry& g, const float* x, const float* w, bool flipped, const float* bias,
             float* y, bool accumulate, bool bf16) {
  if (bf16) return forward_channels<true>(g, x, w, flipped, bias, y, accumulate);
  forward_channels<false>(g, x, w, flipped, bias, y, accumulate);
}

#else  // no AVX-512: the lowerings of tensor/conv.cpp take every shape.

bool built() { return false; }

bool covers(const ConvGeometry&) { return false; }

void forward(const ConvGeometry&, const float*, const float*, bool, const float*, float*, bool, bool) {
  std::abort();  // unreachable: covers() is false
}

#endif

}  // namespace winograd
}  // namespace qnn
