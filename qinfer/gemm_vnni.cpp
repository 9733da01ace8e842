// The AVX-512 VNNI path of the integer GEMM (qinfer/gemm.h). vpdpbusd multiplies 4 u8 by 4 s8
// per s32 lane and adds the 4 products to the lane exactly (no s16 saturation, unlike the
// vpmaddubsw sequence of AVX2), so its accumulators equal the scalar path's.
//
// Register tile: MR rows x NB blocks of 16 output channels. For each group of 4 k, NB weight
// vectors (16 channels x 4 k, the packed layout) are loaded once, and for each row the row's 4
// activation bytes are broadcast to every lane and multiplied into its NB accumulators; so
// every vpdpbusd does 64 multiply-adds and the weights are read once per MR rows. The
// requantization runs on the accumulators in registers and stores u8 (masked for the last
// channels), in the scalar path's float operations (qinfer/requant_avx512.h). 4-bit weights are
// widened in registers as they are loaded (WeightLoader). Compiled with a target attribute, so
// a build without -march=native has this path too; it runs only where vnni_supported().
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics (_mm512_undefined_ps and the like) as maybe-uninitialized when AVX-512 comes from a
// target attribute instead of -march; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <algorithm>
#include <cstring>

#include "qinfer/gemm.h"
#include "qinfer/requant_avx512.h"

namespace qnn::qinfer::kernels {

namespace {

// A tile of fewer than 8 accumulators would wait on vpdpbusd's latency (each adds to the one
// before); it splits k over KS sets of accumulators instead and adds them at the end (integer
// sums: the order does not matter).
template <int MR, int NB>
constexpr int k_splits() {
  return MR * NB >= 8 ? 1 : MR * NB >= 4 ? 2 : 4;
}

// The 64 weight bytes of one (16-channel block, k group): a plain load for 8-bit weights; for
// 4-bit ones 32 bytes of codes widened in registers (qinfer/gemm.h's layout: low nibbles are
// bytes 0-31, high nibbles bytes 32-63): alpha * code is (y << (alpha - 1)) & 15 alpha for the
// low nibble and (y >> (5 - alpha)) & 15 alpha for the high one (16-bit shifts; the bits that
// cross from the neighbouring byte fall outside the mask), then beta is added bytewise (the sum
// is the s8 weight, so nothing wraps).
template <int kBits>
struct WeightLoader {
  __m128i low_shift, high_shift;
  __m512i mask;
  const int8_t* beta;  // the 64 beta bytes of block 0 of the tile
  QNN_VNNI WeightLoader(const PackedWeights& w, int64_t block0) {
    low_shift = _mm_cvtsi32_si128(w.alpha - 1);
    high_shift = _mm_cvtsi32_si128(5 - w.alpha);
    mask = _mm512_set1_epi8(char(15 * w.alpha));
    beta = kBits == 4 ? w.beta.data() + block0 * 64 : nullptr;
  }
  // Bytes per (block, k group) in the packing.
  static constexpr int64_t kGroupBytes = kBits == 4 ? 32 : 64;
  QNN_VNNI __m512i load(const int8_t* p, int block) const {
    if constexpr (kBits == 8) {
      return _mm512_loadu_si512(p);
    } else {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      const __m512i codes = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_sll_epi16(y, low_shift)),
                                               _mm256_srl_epi16(y, high_shift), 1);
      return _mm512_add_epi8(_mm512_and_si512(codes, mask), _mm512_loadu_si512(beta + block * 64));
    }
  }
};

template <int MR, int NB, bool kRequant, int kBits>
QNN_VNNI void tile(const ARows& a, int rows, const PackedWeights& w, int64_t block0, const Requant& rq,
                   uint8_t* out, int64_t ldo, int32_t* c32, int64_t ldc) {
  constexpr int KS = k_splits<MR, NB>();
  __m512i acc[MR][NB], part[KS > 1 ? KS - 1 : 1][MR][NB];
  #pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
    #pragma GCC unroll 16
    for (int b = 0; b < NB; ++b) {
      acc[r][b] = _mm512_setzero_si512();
      #pragma GCC unroll 4
      for (int s = 0; s < KS - 1; ++s) part[s][r][b] = _mm512_setzero_si512();
    }
  const int64_t groups = w.kp / 4;
  const WeightLoader<kBits> loader(w, block0);
  constexpr int64_t kGroupBytes = WeightLoader<kBits>::kGroupBytes;
  const int8_t* wp = w.data.data() + block0 * groups * kGroupBytes;
  const int64_t seg_groups = a.seg_len / 4;
  for (int seg = 0; seg < a.segments; ++seg) {
    const uint8_t* ar[MR];
    #pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) ar[r] = a.seg[seg] + std::min(r, rows - 1) * a.row_stride;  // rows past the end repeat the last
    const int8_t* ws = wp + seg * seg_groups * kGroupBytes;
    int64_t g = 0;
    if constexpr (KS > 1) {
      for (; g + KS <= seg_groups; g += KS) {
        #pragma GCC unroll 4
        for (int s = 0; s < KS; ++s) {
          __m512i wv[NB];
          #pragma GCC unroll 16
          for (int b = 0; b < NB; ++b) wv[b] = loader.load(ws + (b * groups + g + s) * kGroupBytes, b);
          #pragma GCC unroll 16
          for (int r = 0; r < MR; ++r) {
            int32_t four;
            std::memcpy(&four, ar[r] + (g + s) * 4, 4);
            const __m512i av = _mm512_set1_epi32(four);
            #pragma GCC unroll 16
            for (int b = 0; b < NB; ++b) {
              if (s == 0) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], av, wv[b]);
              else part[s > 0 ? s - 1 : 0][r][b] = _mm512_dpbusd_epi32(part[s > 0 ? s - 1 : 0][r][b], av, wv[b]);
            }
          }
        }
      }
    }
    for (; g < seg_groups; ++g) {
      __m512i wv[NB];
      #pragma GCC unroll 16
      for (int b = 0; b < NB; ++b) wv[b] = loader.load(ws + (b * groups + g) * kGroupBytes, b);
      #pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        int32_t four;
        std::memcpy(&four, ar[r] + g * 4, 4);
        const __m512i av = _mm512_set1_epi32(four);
        #pragma GCC unroll 16
        for (int b = 0; b < NB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], av, wv[b]);
      }
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < MR; ++r)
    #pragma GCC unroll 16
    for (int b = 0; b < NB; ++b)
      #pragma GCC unroll 4
      for (int s = 0; s < KS - 1; ++s) acc[r][b] = _mm512_add_epi32(acc[r][b], part[s][r][b]);
  if constexpr (!kRequant) {
    #pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      if (r >= rows) break;
      #pragma GCC unroll 16
      for (int b = 0; b < NB; ++b) {
        const int64_t c0 = (block0 + b) * 16;
        if (c0 >= w.n) break;
        const __mmask16 mask = w.n - c0 >= 16 ? __mmask16(0xffff) : __mmask16((1u << (w.n - c0)) - 1);
        _mm512_mask_storeu_epi32(c32 + r * ldc + c0, mask, acc[r][b]);
      }
    }
    return;
  }
  #pragma GCC unroll 16
  for (int b = 0; b < NB; ++b) {
    const int64_t c0 = (block0 + b) * 16;
    if (c0 >= w.n) break;
    const RequantBlock block(rq, c0, w.n);
    #pragma GCC unroll 16
    for (int r = 0; r < rows && r < MR; ++r)
      block.store(acc[r][b], rq.residual ? rq.residual + r * rq.residual_ld + c0 : nullptr, out + r * ldo + c0);
  }
}

// Rows of the register tile for NB channel blocks: MR * NB accumulators + NB weights + 1 in 32
// registers. GCC keeps the raw-accumulator variant's tile in registers only when it is smaller.
template <int NB, bool kRequant>
constexpr int rows_for() {
  if (!kRequant) return NB <= 2 ? 8 : 4;
  return NB == 1 ? 8 : NB == 2 ? 12 : NB == 3 ? 8 : 6;
}

// Tiles of MR rows while they fill, then smaller tiles for the rest (8, 4, 2, 1 rows), so a
// short run of rows (a convolution's border columns, an 8-wide feature map) computes few
// duplicate rows.
template <int NB, bool kRequant, int kBits>
QNN_VNNI void run_blocks(const ARows& a, int64_t rows, const PackedWeights& w, int64_t block0, const Requant& rq,
                         uint8_t* out, int64_t ldo, int32_t* c32, int64_t ldc) {
  constexpr int MR = rows_for<NB, kRequant>();
  for (int64_t m = 0; m < rows;) {
    const int64_t left = rows - m;
    Requant part = rq;
    if (part.residual) part.residual += m * part.residual_ld;
    const ARows am = a.advanced(m);
    uint8_t* o = out ? out + m * ldo : nullptr;
    int32_t* c = c32 ? c32 + m * ldc : nullptr;
    int done;
    if (left >= MR) done = (tile<MR, NB, kRequant, kBits>(am, MR, w, block0, part, o, ldo, c, ldc), MR);
    else if (MR > 8 && left >= 8) done = (tile<8, NB, kRequant, kBits>(am, 8, w, block0, part, o, ldo, c, ldc), 8);
    else if (MR > 4 && left >= 4) done = (tile<4, NB, kRequant, kBits>(am, 4, w, block0, part, o, ldo, c, ldc), 4);
    else if (left >= 2) done = (tile<2, NB, kRequant, kBits>(am, 2, w, block0, part, o, ldo, c, ldc), 2);
    else done = (tile<1, NB, kRequant, kBits>(am, 1, w, block0, part, o, ldo, c, ldc), 1);
    m += done;
  }
}

template <bool kRequant, int kBits>
QNN_VNNI void run_width(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out, int64_t ldo,
                  int32_t* c32, int64_t ldc) {
  const int64_t blocks = w.np / 16;
  for (int64_t b = 0; b < blocks;) {
    const int64_t left = blocks - b;
    if (left >= 4) { run_blocks<4, kRequant, kBits>(a, rows, w, b, rq, out, ldo, c32, ldc); b += 4; }
    else if (left == 3) { run_blocks<3, kRequant, kBits>(a, rows, w, b, rq, out, ldo, c32, ldc); b += 3; }
    else if (left == 2) { run_blocks<2, kRequant, kBits>(a, rows, w, b, rq, out, ldo, c32, ldc); b += 2; }
    else { run_blocks<1, kRequant, kBits>(a, rows, w, b, rq, out, ldo, c32, ldc); b += 1; }
  }
}

template <bool kRequant>
QNN_VNNI void run(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out, int64_t ldo,
                  int32_t* c32, int64_t ldc) {
  if (w.bits == 4) run_width<kRequant, 4>(a, rows, w, rq, out, ldo, c32, ldc);
  else run_width<kRequant, 8>(a, rows, w, rq, out, ldo, c32, ldc);
}

}  // namespace

void requant_vnni(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out, int64_t ldo) {
  run<true>(a, rows, w, rq, out, ldo, nullptr, 0);
}

QNN_VNNI void widen_vnni(const PackedWeights& w, int8_t* out, int64_t first_group, int64_t last_group) {
  // Group i is (16-channel block i / (kp / 4), k group i % (kp / 4)): 64 bytes of out.
  if (w.bits == 8) {
    std::memcpy(out + first_group * 64, w.data.data() + first_group * 64, size_t((last_group - first_group) * 64));
    return;
  }
  const WeightLoader<4> loader(w, 0);
  const int64_t groups = w.kp / 4;
  for (int64_t i = first_group; i < last_group; ++i)
    _mm512_storeu_si512(out + i * 64, loader.load(w.data.data() + i * 32, int(i / groups)));
}

void s32_vnni(const ARows& a, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc) {
  run<false>(a, rows, w, Requant{}, nullptr, 0, c, ldc);
}

}  // namespace qnn::qinfer::kernels
