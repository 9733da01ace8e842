// The direct 3x3 convolution with output pixels in the vector lanes (see qinfer/conv_direct.h).
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics as (maybe-)uninitialized when AVX-512 comes from a target attribute (see
// qinfer/gemm_vnni.cpp); the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "qinfer/conv_direct.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "qinfer/requant_avx512.h"
#include "tensor/tensor.h"

namespace qnn::qinfer {

namespace {

constexpr int64_t kLanes = 16;  // output positions per zmm, and output channels per block

// Dwords per lane-layout row: the pixels, one padding dword in front, and room for the last
// strip's 16-lane loads at kw = 2 (they read past w; those lanes are never stored).
int64_t lane_row_length(int64_t w) { return (w + kLanes - 1) / kLanes * kLanes + kLanes; }

// r[c] lane p -> o[p] lane c for a 16 x 16 matrix of dwords: 4 x 4 transposes inside each
// 128-bit lane (vpunpck), then a 4 x 4 transpose of the 128-bit lanes (vshufi32x4).
QNN_VNNI inline void transpose16(const __m512i r[16], __m512i o[16]) {
  __m512i p[4][4];  // p[q][j]: 128-bit lane L holds pixel 4L + j, channels 4q .. 4q+3
  #pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {
    const __m512i a = _mm512_unpacklo_epi32(r[4 * q], r[4 * q + 1]), b = _mm512_unpackhi_epi32(r[4 * q], r[4 * q + 1]);
    const __m512i c = _mm512_unpacklo_epi32(r[4 * q + 2], r[4 * q + 3]),
                  d = _mm512_unpackhi_epi32(r[4 * q + 2], r[4 * q + 3]);
    p[q][0] = _mm512_unpacklo_epi64(a, c);
    p[q][1] = _mm512_unpackhi_epi64(a, c);
    p[q][2] = _mm512_unpacklo_epi64(b, d);
    p[q][3] = _mm512_unpackhi_epi64(b, d);
  }
  #pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i x0 = _mm512_shuffle_i32x4(p[0][j], p[1][j], 0x44), x1 = _mm512_shuffle_i32x4(p[0][j], p[1][j], 0xEE);
    const __m512i y0 = _mm512_shuffle_i32x4(p[2][j], p[3][j], 0x44), y1 = _mm512_shuffle_i32x4(p[2][j], p[3][j], 0xEE);
    o[j] = _mm512_shuffle_i32x4(x0, y0, 0x88);       // pixel j
    o[4 + j] = _mm512_shuffle_i32x4(x0, y0, 0xDD);   // pixel 4 + j
    o[8 + j] = _mm512_shuffle_i32x4(x1, y1, 0x88);   // pixel 8 + j
    o[12 + j] = _mm512_shuffle_i32x4(x1, y1, 0xDD);  // pixel 12 + j
  }
}

// Input rows ih0 .. ih0 + rows - 1 of one NHWC image of 4G channels into the lane layout t (rows
// outside the image are all padding): t[(r * G + g) * row_len + 1 + iw] = x[ih0 + r][iw][4g .. 4g+3].
// C = 3 (RGB, G = 1): each pixel's 3 bytes and one byte of the next pixel, which meets a zero
// weight.
template <int G, int64_t C = 4 * G>
QNN_VNNI void to_lanes(const uint8_t* image, int64_t h, int64_t w, int64_t ih0, int64_t rows, uint8_t pad_value,
                       int64_t row_len, uint32_t* t) {
  static_assert(C == 4 * G || (C == 3 && G == 1), "pixels of 4G channels, or RGB");
  const __m512i pad = _mm512_set1_epi32(int32_t(pad_value * 0x01010101u));
  // G = 4: four pixels per zmm (in0 .. in3 hold pixels 0-3, 4-7, 8-11, 12-15). vpermt2d with
  // `pair01` gathers group 0 of pixels 0-7 of (in0, in1) into lanes 0-7 and group 1 into lanes
  // 8-15; the 128-bit shuffles then join the halves of the two register pairs.
  const __m512i pair01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
  const __m512i pair23 = _mm512_add_epi32(pair01, _mm512_set1_epi32(2));
  for (int64_t r = 0; r < rows; ++r) {
    uint32_t* row = t + r * G * row_len;
    for (int64_t i = 0; i < G * row_len; i += kLanes) _mm512_storeu_si512(row + i, pad);
    const int64_t ih = ih0 + r;
    if (ih < 0 || ih >= h) continue;
    const uint8_t* src = image + ih * w * C;
    if constexpr (C == 3) {
      // 4 bytes at 3 iw: the row's last pixel would read past the row (past the image for the
      // last row), so it is copied by itself.
      const __m512i offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                 _mm512_set1_epi32(3));
      for (int64_t iw = 0; iw < w - 1; iw += kLanes) {
        const int64_t count = std::min(kLanes, w - 1 - iw);
        const __mmask16 valid = __mmask16((1u << count) - 1);
        _mm512_mask_storeu_epi32(row + 1 + iw, valid, _mm512_mask_i32gather_epi32(pad, valid, offsets, src + 3 * iw, 1));
      }
      uint32_t last = 0;
      std::memcpy(&last, src + 3 * (w - 1), 3);
      row[w] = last;
    } else if constexpr (G == 4) {
      int64_t iw = 0;
      for (; iw + kLanes <= w; iw += kLanes) {
        const uint8_t* p = src + iw * C;
        const __m512i in0 = _mm512_loadu_si512(p), in1 = _mm512_loadu_si512(p + 64),
                      in2 = _mm512_loadu_si512(p + 128), in3 = _mm512_loadu_si512(p + 192);
        const __m512i a01 = _mm512_permutex2var_epi32(in0, pair01, in1),
                      b01 = _mm512_permutex2var_epi32(in2, pair01, in3);
        const __m512i a23 = _mm512_permutex2var_epi32(in0, pair23, in1),
                      b23 = _mm512_permutex2var_epi32(in2, pair23, in3);
        uint32_t* dst = row + 1 + iw;
        _mm512_storeu_si512(dst, _mm512_shuffle_i64x2(a01, b01, 0x44));
        _mm512_storeu_si512(dst + row_len, _mm512_shuffle_i64x2(a01, b01, 0xEE));
        _mm512_storeu_si512(dst + 2 * row_len, _mm512_shuffle_i64x2(a23, b23, 0x44));
        _mm512_storeu_si512(dst + 3 * row_len, _mm512_shuffle_i64x2(a23, b23, 0xEE));
      }
      for (; iw < w; ++iw)
        for (int64_t g = 0; g < G; ++g) std::memcpy(row + g * row_len + 1 + iw, src + iw * C + 4 * g, 4);
    } else {
      // Wider pixels (G = 8, 16): 16 pixels as the rows of a 16 x 16 dword matrix (8 dwords of
      // a 32-channel pixel zero-extended), transposed: row g is group g of the 16 pixels.
      for (int64_t iw = 0; iw < w; iw += kLanes) {
        const int64_t count = std::min(kLanes, w - iw);
        __m512i in[kLanes], out[kLanes];
        #pragma GCC unroll 16
        for (int64_t p = 0; p < kLanes; ++p) {
          if (p >= count) in[p] = pad;
          else if constexpr (G == 16) in[p] = _mm512_loadu_si512(src + (iw + p) * C);
          else in[p] = _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + (iw + p) * C)));
        }
        transpose16(in, out);
        #pragma GCC unroll 16
        for (int64_t g = 0; g < G; ++g) _mm512_storeu_si512(row + g * row_len + 1 + iw, out[g]);
      }
    }
  }
}

// acc[c] lane p = the sum over taps and input channels for output channel c of a 16-channel
// block (weights) and output position p of a strip. kTwoRows = false: lanes are pixels ow0 ..
// ow0+15 of one output row, t points at the lane layout's row for input row oh - 1, column ow0.
// kTwoRows (maps 8 wide): lanes 0-7 are output row oh, lanes 8-15 row oh + 1, whose input rows
// are S G lane-layout rows further on. Stride S = 2: output pixel ow reads input column 2 ow +
// kw - 1, lane-layout dword 2 ow + kw, so the 16 lanes are the even dwords of two loads (vpermt2d);
// t points at column 2 ow0.
template <int G, bool kTwoRows, int S>
QNN_VNNI inline __attribute__((always_inline)) void accumulate(const uint32_t* t, int64_t row_len,
                                                               const int8_t* weights, __m512i acc[kLanes]) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  #pragma GCC unroll 16
  for (int c = 0; c < kLanes; ++c) acc[c] = _mm512_setzero_si512();
  #pragma GCC unroll 3
  for (int kh = 0; kh < 3; ++kh)
    #pragma GCC unroll 3
    for (int kw = 0; kw < 3; ++kw)
      #pragma GCC unroll 4
      for (int g = 0; g < G; ++g) {
        const uint32_t* at = t + (kh * G + g) * row_len + kw;
        __m512i a;
        if constexpr (S == 2 && kTwoRows)
          a = _mm512_permutex2var_epi32(_mm512_loadu_si512(at), even, _mm512_loadu_si512(at + S * G * row_len));
        else if constexpr (S == 2)
          a = _mm512_permutex2var_epi32(_mm512_loadu_si512(at), even, _mm512_loadu_si512(at + kLanes));
        else if constexpr (kTwoRows)
          a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(at))),
                                 _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at + G * row_len)), 1);
        else
          a = _mm512_loadu_si512(at);
        // The packed layout (qinfer/gemm.h) keeps k-group (kh * 3 + kw) * G + g of a block's 16
        // channels as 16 consecutive dwords.
        const int8_t* wg = weights + ((kh * 3 + kw) * G + g) * 64;
        #pragma GCC unroll 16
        for (int c = 0; c < kLanes; ++c) {
          // acc[c] += a x broadcast(channel c's 4 weights), the broadcast from memory inside the
          // instruction ({1to16}), which GCC does not form from _mm512_set1_epi32 itself.
          asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc[c]) : "v"(a), "m"(*reinterpret_cast<const int32_t*>(wg + 4 * c)));
        }
      }
}

// Output channels 16 cb .. 16 cb + 15 of `count` consecutive output positions (a strip, see
// accumulate), requantized: out and residual point at the first position, channel 16 cb.
template <int G, bool kTwoRows, int S>
QNN_VNNI void strip(const uint32_t* t, int64_t row_len, int count, const int8_t* weights, const Requant& rq,
                    int64_t cb, int64_t n, const uint8_t* residual, uint8_t* out) {
  __m512i acc[kLanes], rows[kLanes];
  accumulate<G, kTwoRows, S>(t, row_len, weights, acc);
  transpose16(acc, rows);
  const kernels::RequantBlock block(rq, cb * kLanes, n);
  #pragma GCC unroll 16
  for (int p = 0; p < kLanes; ++p) {
    if (p >= count) break;
    block.store(rows[p], residual ? residual + p * rq.residual_ld : nullptr, out + p * n);
  }
}

// The same strip's raw accumulators: out[p * ldo + c] for p < count, c < 16.
template <int G, bool kTwoRows, int S>
QNN_VNNI void strip_s32(const uint32_t* t, int64_t row_len, int count, const int8_t* weights, int32_t* out,
                        int64_t ldo) {
  __m512i acc[kLanes], rows[kLanes];
  accumulate<G, kTwoRows, S>(t, row_len, weights, acc);
  transpose16(acc, rows);
  #pragma GCC unroll 16
  for (int p = 0; p < kLanes; ++p) {
    if (p >= count) break;
    _mm512_storeu_si512(out + p * ldo, rows[p]);
  }
}

// The convolution over images of C channels (4G, or 3 with G = 1): requantized into y when
// `consume` is null, else the raw accumulators handed to it one strip row (one output row, two
// on 8-wide maps) at a time.
template <int G, int S, int64_t C = 4 * G>
QNN_VNNI void run(const uint8_t* x, int64_t n, int64_t h, int64_t w, uint8_t pad_value, const PackedWeights& weights,
                  const Requant& rq, uint8_t* y, const AccumulatorConsumer* consume) {
  const int64_t oc = weights.n, blocks = oc / kLanes, block_bytes = weights.kp * kLanes;
  const int64_t oh_n = (h - 1) / S + 1, ow_n = (w - 1) / S + 1;  // (size + 2 - 3) / S + 1
  const bool two_rows = ow_n == kLanes / 2;
  const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // Bands of output rows per image: one when there are images enough for the threads.
  const int64_t bands = std::min(oh_n, std::max<int64_t>(1, (threads + n - 1) / n)), items = n * bands;
  // Rows long enough for the strips' loads (S x the strips' pixels + 2 dwords, and a load past).
  const int64_t row_len = lane_row_length(std::max(w, S * ((ow_n + kLanes - 1) / kLanes * kLanes) + 2)),
                band_rows = (oh_n + bands - 1) / bands;
  // 4-bit weights are widened to s8 once per call (the kernel broadcasts them from memory), into
  // the calling thread's scratch of the layer's size (64 x 576 bytes at most for CIFAR ResNets),
  // while the model keeps them packed.
  thread_local std::vector<int8_t> widened;
  if (weights.bits != 8 && widened.size() < size_t(weights.np * weights.kp)) widened.resize(size_t(weights.np * weights.kp));
  int8_t* wide = weights.bits == 8 ? nullptr : widened.data();
#pragma omp parallel if (items > 1)
  {
    if (wide) {  // the threads widen a share each; the loop's end waits for the whole layer
      const int64_t groups = weights.np / 16 * weights.kp / 4, parts = omp_get_num_threads();
#pragma omp for schedule(static)
      for (int64_t part = 0; part < parts; ++part)
        kernels::widen_vnni(weights, wide, groups * part / parts, groups * (part + 1) / parts);
    }
    // The band's input rows and one more below (a two-row strip's second row past the band), and
    // a strip row's accumulators: per-thread buffers kept from call to call.
    thread_local std::vector<uint32_t> lanes;
    thread_local std::vector<int32_t> acc;
    if (lanes.size() < size_t((S * band_rows + 3) * G * row_len)) lanes.resize(size_t((S * band_rows + 3) * G * row_len));
    if (consume && acc.size() < size_t(2 * ow_n * oc)) acc.resize(size_t(2 * ow_n * oc));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t img = item / bands, band = item % bands;
      const int64_t oh0 = band * oh_n / bands, oh1 = (band + 1) * oh_n / bands;
      // Input rows S oh0 - 1 .. S oh1 + 1: those of the band's output rows and of the one after.
      to_lanes<G, C>(x + img * h * w * C, h, w, S * oh0 - 1, S * (oh1 - oh0) + 3, pad_value, row_len, lanes.data());
      for (int64_t oh = oh0; oh < oh1; oh += two_rows ? 2 : 1) {
        const uint32_t* t = lanes.data() + S * (oh - oh0) * G * row_len;
        const int64_t row_m = (img * oh_n + oh) * ow_n, row_count = two_rows ? std::min<int64_t>(2, oh1 - oh) * ow_n : ow_n;
        for (int64_t ow0 = 0; ow0 < ow_n; ow0 += kLanes) {
          const int64_t m = row_m + ow0;
          const int count = int(two_rows ? row_count : std::min(kLanes, ow_n - ow0));
          const uint8_t* res = rq.residual ? rq.residual + m * rq.residual_ld : nullptr;
          for (int64_t cb = 0; cb < blocks; ++cb) {
            const int8_t* wb = (wide ? wide : weights.data.data()) + cb * block_bytes;
            if (consume) {
              int32_t* ab = acc.data() + ow0 * oc + cb * kLanes;
              if (two_rows) strip_s32<G, true, S>(t, row_len, count, wb, ab, oc);
              else strip_s32<G, false, S>(t + S * ow0, row_len, count, wb, ab, oc);
              continue;
            }
            const uint8_t* rb = res ? res + cb * kLanes : nullptr;
            uint8_t* ob = y + m * oc + cb * kLanes;
            if (two_rows) strip<G, true, S>(t, row_len, count, wb, rq, cb, oc, rb, ob);
            else strip<G, false, S>(t + S * ow0, row_len, count, wb, rq, cb, oc, rb, ob);
          }
        }
        if (consume) (*consume)(row_m, row_count, acc.data());
      }
    }
  }
}

}  // namespace

bool direct_conv_fits(const ConvShape& s) {
  return (s.in_channels == 16 || s.in_channels == 32 || s.in_channels == 64) && s.out_channels > 0 &&
         s.out_channels % kLanes == 0 && s.kernel == 3 && (s.stride == 1 || s.stride == 2) && s.padding == 1;
}

void conv2d_u8_direct(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                      const PackedWeights& weights, const Requant& rq, uint8_t* y) {
  QNN_CHECK(direct_conv_fits(s) && weights.n == s.out_channels && weights.k == 9 * s.in_channels,
            "conv2d_u8_direct: needs a 3x3 convolution of stride 1 or 2 and padding 1 from 16, 32 or 64 channels to "
            "a multiple of 16, found ",
            s.in_channels, " -> ", s.out_channels, " channels, kernel ", s.kernel, ", stride ", s.stride,
            ", padding ", s.padding);
  QNN_CHECK(vnni_supported(), "conv2d_u8_direct: this CPU lacks AVX-512 VNNI");
  QNN_CHECK(rq.lo >= 0 && rq.hi <= 255 && rq.lo <= rq.hi, "conv2d_u8_direct: bad output range [", rq.lo, ", ", rq.hi, "]");
  switch (s.in_channels) {
    case 16:
      if (s.stride == 2) run<4, 2>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      else run<4, 1>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      break;
    case 32:
      if (s.stride == 2) run<8, 2>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      else run<8, 1>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      break;
    default:
      if (s.stride == 2) run<16, 2>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      else run<16, 1>(x, n, h, w, pad_value, weights, rq, y, nullptr);
      break;
  }
}

bool direct_rgb_fits(const ConvShape& s) {
  return s.in_channels == 3 && s.out_channels > 0 && s.out_channels % kLanes == 0 && s.kernel == 3 && s.stride == 1 &&
         s.padding == 1;
}

std::vector<int8_t> rgb_weights_as_4_channels(const std::vector<int8_t>& w_nhwc, const ConvShape& s) {
  QNN_CHECK(direct_rgb_fits(s) && int64_t(w_nhwc.size()) == s.out_channels * 27, "rgb_weights_as_4_channels: ",
            w_nhwc.size(), " weights for a 3x3 convolution from 3 to ", s.out_channels, " channels");
  std::vector<int8_t> out(size_t(s.out_channels * 36), 0);
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t t = 0; t < 9; ++t)
      for (int64_t c = 0; c < 3; ++c) out[(o * 9 + t) * 4 + c] = w_nhwc[(o * 9 + t) * 3 + c];
  return out;
}

void conv2d_rgb_s32_direct(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                           const PackedWeights& weights, const AccumulatorConsumer& consume) {
  QNN_CHECK(direct_rgb_fits(s) && weights.n == s.out_channels && weights.k == 36,
            "conv2d_rgb_s32_direct: needs a 3x3 convolution of stride 1 and padding 1 from 3 channels (weights of 4 "
            "channels, k = 36) to a multiple of 16, found ",
            s.in_channels, " -> ", s.out_channels, " channels (k = ", weights.k, "), kernel ", s.kernel, ", stride ",
            s.stride, ", padding ", s.padding);
  QNN_CHECK(vnni_supported(), "conv2d_rgb_s32_direct: this CPU lacks AVX-512 VNNI");
  run<1, 1, 3>(x, n, h, w, pad_value, weights, Requant{}, nullptr, &consume);
}

}  // namespace qnn::qinfer
