// Quantized convolution as tiled im2col + integer GEMM (see qinfer/conv.h).
#include "qinfer/conv.h"

#include <algorithm>
#include <cstring>

#include "tensor/tensor.h"

namespace qnn::qinfer {

namespace {

// Output positions per tile: a multiple of every GEMM register tile (6, 8, 12 rows).
constexpr int64_t kTileRows = 48;

// Copies one tap's C bytes; the channel counts of CIFAR ResNets get fixed-size copies.
inline void copy_channels(uint8_t* dst, const uint8_t* src, int64_t c) {
  switch (c) {
    case 16: std::memcpy(dst, src, 16); break;
    case 32: std::memcpy(dst, src, 32); break;
    case 64: std::memcpy(dst, src, 64); break;
    default: std::memcpy(dst, src, size_t(c));
  }
}

// Rows [m0, m0 + rows) of the im2col matrix into `a` (row stride kp).
void im2col_rows(const uint8_t* x, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value, int64_t m0,
                 int64_t rows, int64_t kp, uint8_t* a) {
  const int64_t c = s.in_channels, oh_n = s.out_size(h), ow_n = s.out_size(w), k = s.kernel * s.kernel * c;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t m = m0 + r, img = m / (oh_n * ow_n), oh = (m / ow_n) % oh_n, ow = m % ow_n;
    uint8_t* row = a + r * kp;
    for (int64_t kh = 0; kh < s.kernel; ++kh) {
      const int64_t ih = oh * s.stride - s.padding + kh;
      for (int64_t kw = 0; kw < s.kernel; ++kw) {
        const int64_t iw = ow * s.stride - s.padding + kw;
        uint8_t* dst = row + (kh * s.kernel + kw) * c;
        if (ih < 0 || ih >= h || iw < 0 || iw >= w) std::memset(dst, pad_value, size_t(c));
        else copy_channels(dst, x + ((img * h + ih) * w + iw) * c, c);
      }
    }
    if (kp > k) std::memset(row + k, 0, size_t(kp - k));  // meets zero weights
  }
}

template <typename Body>
void over_tiles(int64_t positions, int64_t kp, const Body& body) {
  const int64_t tiles = (positions + kTileRows - 1) / kTileRows;
#pragma omp parallel if (tiles > 1)
  {
    std::vector<uint8_t> a(size_t(kTileRows * kp));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) body(t * kTileRows, std::min(kTileRows, positions - t * kTileRows), a.data());
  }
}

void check(const ConvShape& s, const PackedWeights& weights, int64_t h, int64_t w) {
  QNN_CHECK(weights.k == s.kernel * s.kernel * s.in_channels && weights.n == s.out_channels, "conv2d_u8: weights ",
            weights.n, " x ", weights.k, " do not fit ", s.out_channels, " outputs of a ", s.kernel, "x", s.kernel,
            " kernel over ", s.in_channels, " channels");
  QNN_CHECK(s.out_size(h) > 0 && s.out_size(w) > 0, "conv2d_u8: input ", h, "x", w, " is smaller than the kernel");
}

}  // namespace

std::vector<int8_t> conv_weight_nhwc(const std::vector<int8_t>& w, const ConvShape& s) {
  const int64_t kk = s.kernel * s.kernel, ci = s.in_channels;
  QNN_CHECK(int64_t(w.size()) == s.out_channels * ci * kk, "conv_weight_nhwc: ", w.size(), " weights for ",
            s.out_channels, " x ", ci, " x ", kk);
  std::vector<int8_t> out(w.size());
  for (int64_t o = 0; o < s.out_channels; ++o)
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t t = 0; t < kk; ++t) out[(o * kk + t) * ci + c] = w[(o * ci + c) * kk + t];
  return out;
}

void conv2d_u8(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
               const PackedWeights& weights, const Requant& rq, uint8_t* y) {
  check(s, weights, h, w);
  const int64_t positions = n * s.out_size(h) * s.out_size(w), kp = weights.kp, oc = s.out_channels;
  over_tiles(positions, kp, [&](int64_t m0, int64_t rows, uint8_t* a) {
    im2col_rows(x, h, w, s, pad_value, m0, rows, kp, a);
    Requant part = rq;
    if (part.residual) part.residual += m0 * part.residual_ld;
    gemm_u8s8_requant(a, kp, rows, weights, part, y + m0 * oc, oc, false);
  });
}

void conv2d_u8_s32(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                   const PackedWeights& weights, int32_t* acc) {
  check(s, weights, h, w);
  const int64_t positions = n * s.out_size(h) * s.out_size(w), kp = weights.kp, oc = weights.n;
  over_tiles(positions, kp, [&](int64_t m0, int64_t rows, uint8_t* a) {
    im2col_rows(x, h, w, s, pad_value, m0, rows, kp, a);
    gemm_u8s8_s32(a, kp, rows, weights, acc + m0 * oc, oc, false);
  });
}

}  // namespace qnn::qinfer
