// CPU convolution with bf16 operands (see tensor/conv_bf16.h): the lowerings of tensor/conv.cpp
// and tensor/conv_weight.cpp rebuilt around VDPBF16PS, whose 32-bit lanes each take a pair of
// bf16 along the reduction (tensor/gemm_kernel_bf16.h). With K = C*KH*KW and P = Ho*Wo:
//   forward          y_n[O x P] = w[O x K] * col_n[K x P], the reduction paired along the input
//                    channels: pair (c2, u, v) is channels 2 c2 and 2 c2 + 1 at tap (u, v) (the
//                    second zero when C is odd). The paired col_n is read from *pair planes*, the
//                    shifted planes of tensor/im2col.h with one 32-bit word per pixel holding the
//                    two channels, so every row of col_n is a run of P words at a fixed offset,
//                    which the micro-kernel reads through its table of row offsets; at stride 1
//                    on 32x32 maps, from the zero-padded image of pairs instead (forward_padded).
//   backward data    stride 1: the forward pass of dy with the weights flipped in space and
//                    transposed in channels (as in tensor/conv.cpp); otherwise col = w^T * dy_n,
//                    paired along the output channels, then col2im in float.
//   backward weight  dw[o][k] += dy_n[o] . col_n[k], dot products along the pixels, which pair
//                    themselves: adjacent pixels of a row of dy_n and of a row of col_n (bf16,
//                    from shifted planes, or at stride 1 from the zero-padded image) are
//                    adjacent in memory, so both are read as they lie.
// Every operand is rounded to bf16 by VCVTNEPS2BF16 as it is lowered (the weights once per call,
// then packed); each output is a fixed chain of operations, and images are split over threads as
// in the float lowerings, so results do not depend on timing.
#include "tensor/conv_bf16.h"

#include <omp.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv_lowering.h"
#include "tensor/gemm_kernel_bf16.h"

namespace qnn {
namespace conv_bf16 {

#if defined(__AVX512BF16__)

bool covers(const ConvGeometry& g) { return g.stride == 1 || g.stride == 2; }

namespace {

using conv_lowering::kParallelPack;
using conv_lowering::MR;
using conv_lowering::NR;
using conv_lowering::NV;
using conv_lowering::thread_range;

// The weight gradient reads stride-1 images zero-padded (see backward_weight) when the padding
// adds at most 1/kPaddedWeightGradient to a row (measured in the ResNet-20 step: faster than the
// shifted planes at 32x32 and 16x16).
constexpr int kPaddedWeightGradient = 8;

// Per-thread scratch of bf16 pairs (uint32_t) or bf16 (uint16_t) that survives between calls.
// Slots 0 and 1 are the parallel regions' buffers; slot 2 holds the calling thread's rounded
// (uint16_t) and packed (uint32_t) weights while it takes part in those regions.
constexpr int kPackedSlot = 2;
template <typename T>
T* scratch(int which, int64_t size) {
  thread_local std::vector<T> buffers[3];
  std::vector<T>& b = buffers[which];
  if (static_cast<int64_t>(b.size()) < size) b.resize(static_cast<size_t>(size));
  return b.data();
}

// dst[0, n) = the bf16 of src[0, n).
void to_bf16(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = lanes_below(n - i);
    _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i)));
  }
}

// The weights w[0, count) rounded to bf16, in the calling thread's scratch (by all threads when
// large; a conversion, so the result is the same either way).
const uint16_t* rounded_weights(const float* w, int64_t count) {
  constexpr int64_t kChunk = 4096;
  uint16_t* out = scratch<uint16_t>(kPackedSlot, count);
#pragma omp parallel for schedule(static) if (count >= kParallelPack && !omp_in_parallel())
  for (int64_t i = 0; i < count; i += kChunk) to_bf16(w + i, out + i, std::min(kChunk, count - i));
  return out;
}

// A (m rows; the reduction is `channels` x `taps`, with A(i, c, tap) = element(i, c, tap), the
// bits of a bf16) packed into panels of MR rows for micro_kernel_bf16, paired along the channels:
// pair p = c2*taps + tap is the word (A(i, 2 c2, tap), A(i, 2 c2 + 1, tap)), the first element in
// the low half, zero past the channels and the rows. Large weights are packed by all threads.
template <typename Element>
const uint32_t* pack_pairs(int64_t m, int64_t channels, int64_t taps, Element element) {
  const int64_t k2 = (channels + 1) / 2 * taps, panels = (m + MR - 1) / MR;
  uint32_t* packed = scratch<uint32_t>(kPackedSlot, panels * k2 * MR);
#pragma omp parallel for schedule(static) if (2 * m * k2 >= kParallelPack && !omp_in_parallel())
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t p = 0; p < k2; ++p) {
      const int64_t c = p / taps * 2, tap = p % taps;
      for (int64_t r = 0; r < MR; ++r) {
        const int64_t i = q * MR + r;
        const uint32_t first = i < m ? element(i, c, tap) : 0;
        const uint32_t second = i < m && c + 1 < channels ? element(i, c + 1, tap) : 0;
        packed[(q * k2 + p) * MR + r] = first | second << 16;
      }
    }
  return packed;
}

// The geometry whose shifted planes the pair planes of g are: ceil(C/2) "channels" of words.
ConvGeometry paired(const ConvGeometry& g) {
  ConvGeometry p = g;
  p.c = (g.c + 1) / 2;
  return p;
}

// The 16 words (first[i], second[i]) of two runs of floats, rounded to bf16: one conversion of
// both (first in the low 16 halves) and one 16-bit permute that interleaves them.
inline __m512i interleave_pairs(__m512 first, __m512 second) {
  static const __m512i interleave = [] {
    alignas(64) uint16_t index[32];
    for (int i = 0; i < 16; ++i) {
      index[2 * i] = static_cast<uint16_t>(i);
      index[2 * i + 1] = static_cast<uint16_t>(16 + i);
    }
    return _mm512_load_si512(index);
  }();
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(second, first));
}

// Pair planes of one image x [C, H, W]: shifted planes (tensor/im2col.h) of paired(g), where the
// element of pair c2 is the word (x[2 c2][..][..], x[2 c2 + 1][..][..]) of the two channels' values
// at that position: each run of 16 pixels is two source_run loads and interleave_pairs.
void pair_planes(const ConvGeometry& g, const float* x, uint32_t* planes) {
  const int64_t image = g.h * g.w;
  for_each_plane_run(g, (g.c + 1) / 2, [&](int64_t c2, int64_t y, int64_t first, __mmask16 low, __mmask16 high,
                                           __mmask16 mask, int64_t at) {
    const float* first_channel = x + 2 * c2 * image;
    for (int64_t next = 2 * c2 + 2; next < std::min<int64_t>(2 * c2 + 4, g.c); ++next)
      prefetch_source_run(g, x + next * image, y, first);
    const __m512 a = source_run(g, first_channel, y, first, low, high);
    const __m512 b = 2 * c2 + 1 < g.c ? source_run(g, first_channel + image, y, first, low, high)
                                      : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(planes + at, mask, interleave_pairs(a, b));
  });
}

// The zero-padded image of pairs: xp[c2][(r + pad) * Wp + pad + j] = the word of channels 2 c2 and
// 2 c2 + 1 at pixel (r, j), for Wp = W + 2 pad; the border (written once by the caller) stays zero.
void padded_pairs(const ConvGeometry& g, const float* x, uint32_t* xp) {
  const int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad, image = g.h * g.w;
  for (int64_t c2 = 0; c2 < (g.c + 1) / 2; ++c2) {
    const float* first_channel = x + 2 * c2 * image;
    const bool has_second = 2 * c2 + 1 < g.c;
    for (int64_t r = 0; r < g.h; ++r) {
      const float* a = first_channel + r * g.w;
      uint32_t* out = xp + (c2 * hp + r + g.pad) * wp + g.pad;
      for (int64_t j = 0; j < g.w; j += 16) {
        const __mmask16 m = lanes_below(g.w - j);
        const __m512 first = _mm512_maskz_loadu_ps(m, a + j);
        const __m512 second = has_second ? _mm512_maskz_loadu_ps(m, a + image + j) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(out + j, m, interleave_pairs(first, second));
      }
    }
  }
}

// The shifted planes of one image x [C, H, W] in bf16 (same layout and offsets as
// tensor/im2col.h's float planes).
void bf16_planes(const ConvGeometry& g, const float* x, uint16_t* planes) {
  for_each_plane_run(g, g.c, [&](int64_t c, int64_t y, int64_t first, __mmask16 low, __mmask16 high,
                                 __mmask16 mask, int64_t at) {
    if (c + 1 < g.c) prefetch_source_run(g, x + (c + 1) * g.h * g.w, y, first);
    const __m512 run = source_run(g, x + c * g.h * g.w, y, first, low, high);
    _mm256_mask_storeu_epi16(planes + at, mask, (__m256i)_mm512_cvtneps_pbh(run));
  });
}

// forward_pairs at stride 1 when the output rows are whole tiles (32x32 maps): row (c2, u, v) of
// the paired col_n, read along output row i, is the run of the zero-padded image of pairs
// (Hp x Wp words per pair) starting at (i + u) * Wp + v, so the kernel reads it through a table of
// row offsets and stores each tile straight into y (the float twin is forward_implicit in
// tensor/conv.cpp). The image is converted once, where the pair planes would write it KW times.
// (At 16x16, computing the junk columns of a Wp-wide grid and copying the valid ones out was
// measured slower in the training step than the pair planes.)
void forward_padded(const ConvGeometry& g, const float* x, const uint32_t* w_packed, const float* bias,
                    float* y, bool accumulate) {
  const int64_t c2 = (g.c + 1) / 2, hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad, plane = hp * wp;
  const int64_t k2 = c2 * g.kh * g.kw;
  std::vector<int64_t> rows(static_cast<size_t>(k2));
  padded_row_offsets(g, c2, rows.data());
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    uint32_t* xp = scratch<uint32_t>(0, c2 * plane);
    std::fill(xp, xp + c2 * plane, 0u);
    for (int64_t n = begin; n < end; ++n) {
      padded_pairs(g, x + n * g.image_in(), xp);
      float* yn = y + n * g.image_out();
      for (int64_t i = 0; i < g.ho; ++i)
        for (int64_t jr = 0; jr < g.wo; jr += NR)
          for (int64_t ir = 0; ir < g.o; ir += MR)
            kernel::micro_kernel_bf16<MR, NV>(k2, w_packed + ir * k2, xp + i * wp + jr, rows.data(), 0,
                                              yn + ir * g.p() + i * g.wo + jr, g.p(),
                                              static_cast<int>(std::min<int64_t>(MR, g.o - ir)), NR,
                                              accumulate, bias ? bias + ir : nullptr);
    }
  }
}

// y = conv(x, w) + bias (or y += it with `accumulate`) for the whole batch, with w packed by
// pack_pairs along its input channels.
void forward_pairs(const ConvGeometry& g, const float* x, const uint32_t* w_packed, const float* bias,
                   float* y, bool accumulate) {
  if (g.stride == 1 && g.wo % NR == 0) {
    forward_padded(g, x, w_packed, bias, y, accumulate);
    return;
  }
  const ConvGeometry pg = paired(g);
  const int64_t k2 = pg.k(), size = shifted_planes_size(pg);
  std::vector<int64_t> rows(static_cast<size_t>(k2));
  shifted_row_offsets(pg, rows.data());
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    uint32_t* planes = scratch<uint32_t>(0, size);
    for (int64_t n = begin; n < end; ++n) {
      pair_planes(g, x + n * g.image_in(), planes);
      float* yn = y + n * g.image_out();
      for (int64_t jr = 0; jr < g.p(); jr += NR)
        for (int64_t ir = 0; ir < g.o; ir += MR)
          kernel::micro_kernel_bf16<MR, NV>(k2, w_packed + ir * k2, planes + jr, rows.data(), 0,
                                            yn + ir * g.p() + jr, g.p(),
                                            static_cast<int>(std::min<int64_t>(MR, g.o - ir)),
                                            static_cast<int>(std::min<int64_t>(NR, g.p() - jr)),
                                            accumulate, bias ? bias + ir : nullptr);
    }
  }
}

}  // namespace

void forward(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t taps = g.kh * g.kw;
  const uint16_t* w16 = rounded_weights(w, g.o * g.k());
  const uint32_t* a = pack_pairs(g.o, g.c, taps, [&](int64_t o, int64_t c, int64_t tap) {
    return w16[(o * g.c + c) * taps + tap];
  });
  forward_pairs(g, x, a, bias, y, false);
}

bool backward_data(const ConvGeometry& g, const float* dy, const float* w, float* dx, bool accumulate) {
  const int64_t taps = g.kh * g.kw;
  if (g.stride == 1 && g.kh == g.kw && g.pad <= g.kh - 1) {
    // dx[c, y, x] = sum_{o,u,v} w[o, c, KH-1-u, KW-1-v] * dy[o, y + u - (KH-1-pad), x + v - (KW-1-pad)]
    const ConvGeometry t = conv_geometry({g.n, g.o, g.ho, g.wo}, {g.c, g.o, g.kh, g.kw},
                                         ConvParams{1, static_cast<int>(g.kh - 1 - g.pad)});
    const uint16_t* w16 = rounded_weights(w, g.o * g.k());
    const uint32_t* a = pack_pairs(g.c, g.o, taps, [&](int64_t c, int64_t o, int64_t tap) {
      return w16[(o * g.c + c) * taps + taps - 1 - tap];  // tap (u, v) reads (KH-1-u, KW-1-v)
    });
    forward_pairs(t, dy, a, nullptr, dx, accumulate);
    return true;
  }
  if (accumulate) return false;
  // col[K x P] = w^T dy_n, paired along the output channels: A(kk, o) = w[o][kk], and the pairs of
  // dy_n are the pair planes of a 1x1 convolution over dy (row o2 = the words of channels 2 o2,
  // 2 o2 + 1 at every pixel).
  const uint16_t* w16 = rounded_weights(w, g.o * g.k());
  const uint32_t* a = pack_pairs(g.k(), g.o, 1, [&](int64_t kk, int64_t o, int64_t) { return w16[o * g.k() + kk]; });
  const ConvGeometry d{g.n, g.o, g.ho, g.wo, g.k(), 1, 1, g.ho, g.wo, 1, 0};
  const int64_t o2 = (g.o + 1) / 2;
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    uint32_t* pairs = scratch<uint32_t>(0, o2 * g.p());
    float* col = conv_lowering::scratch_data(0, g.k() * g.p());
    for (int64_t n = begin; n < end; ++n) {
      pair_planes(d, dy + n * g.image_out(), pairs);
      for (int64_t jr = 0; jr < g.p(); jr += NR)
        for (int64_t ir = 0; ir < g.k(); ir += MR)
          kernel::micro_kernel_bf16<MR, NV>(o2, a + ir * o2, pairs + jr, nullptr, g.p(), col + ir * g.p() + jr,
                                            g.p(), static_cast<int>(std::min<int64_t>(MR, g.k() - ir)),
                                            static_cast<int>(std::min<int64_t>(NR, g.p() - jr)), false,
                                            nullptr);
      col2im(g, col, dx + n * g.image_in());
    }
  }
  return true;
}

void backward_weight(const ConvGeometry& g, const float* x, const float* dy, float* dw, float* db) {
  // Dot-product tiles of 3 output channels by 8 taps: measured faster than 4 x 6, 4 x 7, 3 x 9,
  // 3 x 10, 2 x 10 and 6 x 4 on ResNet-20's 16x16, 8x8 and strided layers, as fast at 32x32.
  constexpr int MO = 3, NK = 8;
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Thread t's dw [O x K], then its bias sums [O].
  const int64_t part = g.k() * g.o + g.o;
  std::unique_ptr<float[]> partial(new float[static_cast<size_t>(threads * part)]);
  // Stride 1: the rows of col_n are shifted windows of the zero-padded image (Hp x Wp per
  // channel), converted once, where the shifted planes convert it KW times; the output grid is
  // then Wp wide, so dy_n is laid onto that grid with zeros in its Wp - Wo junk columns, which
  // makes their products vanish. Other strides: bf16 shifted planes and dy_n as it lies.
  const bool padded = g.stride == 1 && kPaddedWeightGradient * 2 * g.pad <= g.wo;
  const int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad;
  const int64_t size = padded ? g.c * hp * wp + g.kw : shifted_planes_size(g);
  const int64_t len = padded ? g.ho * wp : g.p();  // pixels per dot product and image
  // Images per group: dot products of at least ~1024 pixels between the lane sums, the group's
  // images (bf16) within 1 MB.
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>((1024 + len - 1) / len, (1 << 19) / size));
  std::vector<int64_t> rows(static_cast<size_t>(g.k()));
  if (padded)
    padded_row_offsets(g, g.c, rows.data());
  else
    shifted_row_offsets(g, rows.data());
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    for (int u = t; u < threads; u += team)
      std::fill(partial.get() + u * part, partial.get() + (u + 1) * part, 0.0f);
    int64_t begin, end;
    thread_range(g.n, t, team, begin, end);
    uint16_t* images = scratch<uint16_t>(0, group * size);
    uint16_t* dy_bf16 = scratch<uint16_t>(1, group * g.o * len);
    if (padded) {  // the padding and the junk columns are written once and stay zero
      std::fill(images, images + group * size, uint16_t{0});
      std::fill(dy_bf16, dy_bf16 + group * g.o * len, uint16_t{0});
    }
    float* mine = partial.get() + t * part;
    for (int64_t n0 = begin; n0 < end; n0 += group) {
      const int count = static_cast<int>(std::min(group, end - n0));
      for (int i = 0; i < count; ++i) {
        const float* xn = x + (n0 + i) * g.image_in();
        const float* dyn = dy + (n0 + i) * g.image_out();
        if (!padded) {
          bf16_planes(g, xn, images + i * size);
          to_bf16(dyn, dy_bf16 + i * g.image_out(), g.image_out());
          continue;
        }
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t r = 0; r < g.h; ++r)
            to_bf16(xn + (c * g.h + r) * g.w, images + i * size + (c * hp + r + g.pad) * wp + g.pad, g.w);
        for (int64_t o = 0; o < g.o; ++o)
          for (int64_t r = 0; r < g.ho; ++r)
            to_bf16(dyn + (o * g.ho + r) * g.wo, dy_bf16 + (i * g.o + o) * len + r * wp, g.wo);
      }
      for (int64_t o = 0; o < g.o; o += MO)
        for (int64_t kk = 0; kk < g.k(); kk += NK)
          kernel::dot_tile_bf16<MO, NK>(len, count, dy_bf16 + o * len, len, g.o * len, images,
                                        rows.data() + kk, size, mine + o * g.k() + kk, g.k(),
                                        static_cast<int>(std::min<int64_t>(MO, g.o - o)),
                                        static_cast<int>(std::min<int64_t>(NK, g.k() - kk)));
    }
    if (db) conv_lowering::add_bias_sums(g, dy, begin, end, mine + g.k() * g.o);
  }
  conv_lowering::add_thread_partials(g, partial.get(), part, threads, false, dw, db);
}

#else  // no AVX-512 BF16 in this build: tensor/conv.cpp rounds the operands and runs float

bool covers(const ConvGeometry&) { return false; }
void forward(const ConvGeometry&, const float*, const float*, const float*, float*) {
  QNN_CHECK(false, "bf16 convolution kernels need AVX-512 BF16");
}
bool backward_data(const ConvGeometry&, const float*, const float*, float*, bool) {
  QNN_CHECK(false, "bf16 convolution kernels need AVX-512 BF16");
  return false;
}
void backward_weight(const ConvGeometry&, const float*, const float*, float*, float*) {
  QNN_CHECK(false, "bf16 convolution kernels need AVX-512 BF16");
}

#endif

}  // namespace conv_bf16
}  // namespace qnn
