// The register-blocked micro-kernel under sgemm and the convolutions.
//
// It computes one small tile of C, MR rows by NR = 16*NV columns, as a sum of k outer products
//   acc[r][j] = sum_{p < k} A(r, p) * B(p, j)
// then stores  C[r][j] = alpha * acc[r][j] (+ C[r][j] when `accumulate`) (+ row_init[r] when given).
// A is read through two strides, A(r, p) = a[r * rs_a + p * cs_a], so a row-major matrix, its
// transpose and a packed panel all work without copying; B is read as rows of contiguous floats,
// B(p, j) = b[p * ldb + j], or b[b_rows[p] + j] when a table of row offsets is given (rows
// that are shifted windows of one image: the implicit im2col of tensor/conv.cpp). This is the classic GotoBLAS/BLIS register blocking (Goto & van de
// Geijn, "Anatomy of high-performance matrix multiplication", 2008): the MR x NR accumulators
// live in vector registers for the whole k loop, and each step loads NV vectors of B, broadcasts
// MR scalars of A and issues MR*NV fused multiply-adds. With AVX-512 (32 zmm registers) tiles of
// 8x32 or 12x32 keep 16-24 accumulators and stay FMA-bound on Zen 4 (one 512-bit FMA per cycle).
//
// With `prefetch` > 0, each step also asks for the lines `prefetch` floats past the row of B it
// reads to be brought into L2: callers walking B tile by tile pass the distance to a later tile,
// so that its rows, which lie a whole row of B apart and are too many streams for the hardware
// prefetcher to follow, arrive from memory before the kernel needs them. A hint only: no value
// changes, and addresses past B are never dereferenced.
//
// With `resume`, the accumulators start from C's tile instead of zero (alpha must be 1): a product
// split along k into consecutive calls, each resuming where the last stored, then performs exactly
// the FMA chain of one call over the whole k (storing and reloading a float accumulator is exact),
// so k can be blocked for the caches without changing a bit. Pass row_init only on the last call,
// and never `accumulate` together with `resume`.
//
// Partial tiles: only mr <= MR rows and nr <= NR columns are read from B and written to C (masked
// loads and stores), so callers never pad their matrices. Each element of C is always produced by
// the same sequence of FMAs in p order, whatever tile or thread computes it: results are
// bit-identical across thread counts and partitions.
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace qnn {
namespace kernel {

#if defined(__AVX512F__)

// Mask selecting the valid lanes of vector v of a tile row with nr valid columns.
inline __mmask16 lane_mask(int nr, int v) {
  const int valid = nr - 16 * v;
  if (valid >= 16) return 0xFFFF;
  if (valid <= 0) return 0;
  return static_cast<__mmask16>((1u << valid) - 1u);
}

template <int MR, int NV>
inline void micro_kernel(int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                         int64_t ldb, float* c, int64_t ldc, int mr, int nr, float alpha,
                         bool accumulate, const float* row_init, const int64_t* b_rows = nullptr,
                         bool resume = false, int64_t prefetch = 0) {
  __mmask16 mask[NV];
  for (int v = 0; v < NV; ++v) mask[v] = lane_mask(nr, v);
  // Accumulators; every loop over them is fully unrolled so they stay in registers.
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v)
      acc[r][v] = resume && r < mr ? _mm512_maskz_loadu_ps(mask[v], c + r * ldc + 16 * v) : _mm512_setzero_ps();
  // Rows past mr re-read the last valid row: their results are computed and then dropped.
  int64_t row_offset[MR];
  for (int r = 0; r < MR; ++r) row_offset[r] = (r < mr ? r : mr - 1) * rs_a;

  // The k loop, in two copies: the one without prefetches carries no trace of them (an extra live
  // register in the loop measured slower on the paths that never prefetch).
  auto multiply = [&](auto with_prefetch) {
    for (int64_t p = 0; p < k; ++p) {
      const float* bp = b_rows ? b + b_rows[p] : b + p * ldb;
      if constexpr (decltype(with_prefetch)::value) {
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(bp + prefetch + 16 * v), _MM_HINT_T1);
      }
      __m512 bv[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_maskz_loadu_ps(mask[v], bp + 16 * v);
      const float* ap = a + p * cs_a;
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r) {
        const __m512 ar = _mm512_set1_ps(ap[row_offset[r]]);
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
      }
    }
  };
  if (prefetch > 0)
    multiply(std::true_type{});
  else
    multiply(std::false_type{});

  const __m512 alpha_v = _mm512_set1_ps(alpha);
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= mr) break;
    float* cr = c + r * ldc;
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      __m512 out = _mm512_mul_ps(acc[r][v], alpha_v);
      if (accumulate) out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], cr + 16 * v));
      if (row_init) out = _mm512_add_ps(out, _mm512_set1_ps(row_init[r]));
      _mm512_mask_storeu_ps(cr + 16 * v, mask[v], out);
    }
  }
}

// The weight-gradient kernel: MO x NK dot products over `groups` blocks of length len,
//   out[r*ldo + t] += sum_{g < groups} sum_{q < len} a[g*a_step + r*lda + q] * b[g*b_step + b_rows[t] + q]
// vectorised along q (16 floats a step, or 32 bf16 for the bf16 twin; the tail masked), one
// accumulator per product, the lanes summed once at the end. Rows past mo and columns past nk
// repeat the last valid ones and are dropped. The order of operations depends only on the
// sizes, never on the caller's threads.
// Sum of the 16 lanes, in a fixed order (the masked forms name every source, so no
// undefined vectors are involved).
inline float lane_sum(__m512 v) {
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0xEE));  // + other 256-bit half
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, 0x55));  // + other 128-bit quarter
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, 0x4E));         // + other pair
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, 0xB1));         // + neighbour
  return _mm512_cvtss_f32(v);
}

// The float lanes of dot_tile: 16 floats a step, multiplied and added with FMA. (The bf16 twin,
// 32 bf16 a step with VDPBF16PS, is kernel::Bf16Lanes in tensor/gemm_kernel_bf16.h.)
struct FloatLanes {
  using Element = float;
  using Vector = __m512;
  static constexpr int kStep = 16;
  using Mask = __mmask16;
  static Mask mask(int64_t n) { return lane_mask(static_cast<int>(std::min<int64_t>(16, n)), 0); }
  static Vector load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static __m512 multiply_add(__m512 acc, Vector a, Vector b) { return _mm512_fmadd_ps(a, b, acc); }
};

// dot_tile over the lanes of `Lanes` (FloatLanes, or kernel::Bf16Lanes).
template <typename Lanes, int MO, int NK>
inline void dot_tile_lanes(int64_t len, int groups, const typename Lanes::Element* a, int64_t lda, int64_t a_step,
                           const typename Lanes::Element* b, const int64_t* b_rows, int64_t b_step, float* out,
                           int64_t ldo, int mo, int nk) {
  __m512 acc[MO][NK];
#pragma GCC unroll 32
  for (int r = 0; r < MO; ++r)
#pragma GCC unroll 32
    for (int t = 0; t < NK; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t a_off[MO], b_off[NK];
  for (int r = 0; r < MO; ++r) a_off[r] = (r < mo ? r : mo - 1) * lda;
  for (int t = 0; t < NK; ++t) b_off[t] = b_rows[t < nk ? t : nk - 1];
  for (int g = 0; g < groups; ++g) {
    const typename Lanes::Element* ag = a + g * a_step;
    const typename Lanes::Element* bg = b + g * b_step;
    for (int64_t q = 0; q < len; q += Lanes::kStep) {
      const typename Lanes::Mask m = Lanes::mask(len - q);
      typename Lanes::Vector av[MO];
#pragma GCC unroll 32
      for (int r = 0; r < MO; ++r) av[r] = Lanes::load(m, ag + a_off[r] + q);
#pragma GCC unroll 32
      for (int t = 0; t < NK; ++t) {
        const typename Lanes::Vector bv = Lanes::load(m, bg + b_off[t] + q);
#pragma GCC unroll 32
        for (int r = 0; r < MO; ++r) acc[r][t] = Lanes::multiply_add(acc[r][t], av[r], bv);
      }
    }
  }
  // Fixed bounds, fully unrolled: the accumulators then stay in registers in the loop above.
#pragma GCC unroll 32
  for (int r = 0; r < MO; ++r)
#pragma GCC unroll 32
    for (int t = 0; t < NK; ++t)
      if (r < mo && t < nk) out[r * ldo + t] += lane_sum(acc[r][t]);
}

template <int MO, int NK>
inline void dot_tile(int64_t len, int groups, const float* a, int64_t lda, int64_t a_step,
                     const float* b, const int64_t* b_rows, int64_t b_step, float* out, int64_t ldo,
                     int mo, int nk) {
  dot_tile_lanes<FloatLanes, MO, NK>(len, groups, a, lda, a_step, b, b_rows, b_step, out, ldo, mo, nk);
}

#else  // portable fallback: the same tile loop in plain C++ (the compiler may vectorise it)

template <int MR, int NV>
inline void micro_kernel(int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                         int64_t ldb, float* c, int64_t ldc, int mr, int nr, float alpha,
                         bool accumulate, const float* row_init, const int64_t* b_rows = nullptr,
                         bool resume = false, int64_t /*prefetch*/ = 0) {
  constexpr int NR = 16 * NV;
  float acc[MR][NR] = {};
  if (resume)
    for (int r = 0; r < mr; ++r)
      for (int j = 0; j < nr; ++j) acc[r][j] = c[r * ldc + j];
  for (int64_t p = 0; p < k; ++p) {
    const float* bp = b_rows ? b + b_rows[p] : b + p * ldb;
    float bv[NR] = {};
    for (int j = 0; j < nr; ++j) bv[j] = bp[j];
    for (int r = 0; r < mr; ++r) {
      const float ar = a[r * rs_a + p * cs_a];
      for (int j = 0; j < NR; ++j) acc[r][j] += ar * bv[j];
    }
  }
  for (int r = 0; r < mr; ++r)
    for (int j = 0; j < nr; ++j) {
      float out = acc[r][j] * alpha;
      if (accumulate) out += c[r * ldc + j];
      if (row_init) out += row_init[r];
      c[r * ldc + j] = out;
    }
}

template <int MO, int NK>
inline void dot_tile(int64_t len, int groups, const float* a, int64_t lda, int64_t a_step,
                     const float* b, const int64_t* b_rows, int64_t b_step, float* out, int64_t ldo,
                     int mo, int nk) {
  for (int r = 0; r < mo; ++r)
    for (int t = 0; t < nk; ++t) {
      float lanes[16] = {};
      for (int g = 0; g < groups; ++g) {
        const float* ar = a + g * a_step + r * lda;
        const float* bt = b + g * b_step + b_rows[t];
        for (int64_t q = 0; q < len; ++q) lanes[q % 16] += ar[q] * bt[q];
      }
      float sum = 0.0f;
      for (float l : lanes) sum += l;
      out[r * ldo + t] += sum;
    }
}

#endif

}  // namespace kernel
}  // namespace qnn
