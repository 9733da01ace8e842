// Winograd F(4x4, 3x3) on the CPU: the weight gradient (tensor/winograd.h; the forward pass and
// the input gradient are in tensor/winograd.cpp, the shared pieces in tensor/winograd_tiles.h).
// It runs the forward steps transposed: per block of tiles V = B^T d B of the input and
// dM = A dY A^T of the output gradient, then dU[xi] += V[xi]^T dM[xi] into the thread's own sum,
// and at the end dw += G^T dU G over the threads' sums.
//
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics (_mm512_undefined_ps, in the shuffles of transpose16) as (maybe-)uninitialized; the
// warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <omp.h>

#include <cstdlib>

#include "tensor/winograd.h"
#include "tensor/winograd_tiles.h"

namespace qnn {
namespace winograd {

#if defined(__AVX512F__)

namespace {

using namespace winograd_tiles;
using conv_lowering::thread_range;

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
      float* target = dw + (o0 * C + c) * 9;
      separable_transform<kIn, 3, weight_gradient_1d>(
          [&](int i, int j) { return _mm512_loadu_ps(du + ((i * kIn + j) * C + c) * C + o0); },
          [&](int a, int b, __m512 f) {
            const __m512 sum = _mm512_add_ps(_mm512_i32gather_ps(lanes, target + a * 3 + b, 4), f);
            _mm512_i32scatter_ps(target + a * 3 + b, lanes, sum, 4);
          });
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
  // They live in the calling thread's kFlippedSlot, which otherwise holds only backward-data's
  // flipped weights, never needed during a weight gradient.
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
  // Each element adds the threads' sums in thread order, whichever thread does the adding.
#pragma omp parallel for schedule(static) if (part >= conv_lowering::kParallelPack && !omp_in_parallel())
  for (int64_t i = 0; i < part; ++i)
    for (int t = 1; t < team; ++t) partial[i] += partial[t * part + i];
  add_weight_gradient<C>(partial, dw);
  if (db)
    for (int64_t o = 0; o < C; ++o) db[o] += partial[kPositions * C * C + o];
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

bool covers_weight_gradient(const ConvGeometry& g) { return covers(g) && g.c <= 256; }

void weight_gradient(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db, bool bf16) {
  if (bf16) return weight_gradient_channels<true>(g, x, dy, dw, db);
  weight_gradient_channels<false>(g, x, dy, dw, db);
}

#else  // no AVX-512: the weight gradient of tensor/conv_weight.cpp takes every shape.

bool covers_weight_gradient(const ConvGeometry&) { return false; }

void weight_gradient(const ConvGeometry&, const float*, const float*, float*, float*, bool) {
  std::abort();  // unreachable: covers_weight_gradient() is false
}

#endif

}  // namespace winograd
}  // namespace qnn
