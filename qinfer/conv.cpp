// Quantized convolution as tiled im2col + integer GEMM (see qinfer/conv.h).
#include "qinfer/conv.h"

#include <algorithm>
#include <cstring>

#include "qinfer/conv_direct.h"
#include "tensor/tensor.h"

namespace qnn::qinfer {

namespace {

ConvAlgorithm chosen_algorithm = ConvAlgorithm::Auto;

// Output positions per tile: a multiple of every GEMM register tile (6, 8, 12 rows).
constexpr int64_t kTileRows = 48;

// Copies n bytes; the sizes of CIFAR ResNets' 3x3 taps get fixed-size copies the compiler inlines.
inline void copy_bytes(uint8_t* dst, const uint8_t* src, int64_t n) {
  switch (n) {
    case 48: std::memcpy(dst, src, 48); break;
    case 96: std::memcpy(dst, src, 96); break;
    case 192: std::memcpy(dst, src, 192); break;
    case 9: std::memcpy(dst, src, 9); break;  // the stem: 3 taps of 3 colour channels
    case 3: std::memcpy(dst, src, 3); break;
    case 16: std::memcpy(dst, src, 16); break;
    case 32: std::memcpy(dst, src, 32); break;
    case 64: std::memcpy(dst, src, 64); break;
    default: std::memcpy(dst, src, size_t(n));
  }
}

// Rows [m0, m0 + rows) of the im2col matrix into `a` (row stride kp). The kw taps of one kh are
// adjacent pixels of NHWC, so a row inside the image is `kernel` copies of kernel * C bytes.
void im2col_rows(const uint8_t* x, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value, int64_t m0,
                 int64_t rows, int64_t kp, uint8_t* a) {
  const int64_t c = s.in_channels, oh_n = s.out_size(h), ow_n = s.out_size(w), k = s.kernel * s.kernel * c;
  const int64_t span = s.kernel * c;
  int64_t img = m0 / (oh_n * ow_n), oh = (m0 / ow_n) % oh_n, ow = m0 % ow_n;
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = a + r * kp;
    const int64_t iw0 = ow * s.stride - s.padding;
    const bool inside_w = iw0 >= 0 && iw0 + s.kernel <= w;
    for (int64_t kh = 0; kh < s.kernel; ++kh) {
      const int64_t ih = oh * s.stride - s.padding + kh;
      uint8_t* dst = row + kh * span;
      if (ih < 0 || ih >= h) {
        std::memset(dst, pad_value, size_t(span));
      } else if (inside_w) {
        copy_bytes(dst, x + ((img * h + ih) * w + iw0) * c, span);
      } else {
        for (int64_t kw = 0; kw < s.kernel; ++kw) {
          const int64_t iw = iw0 + kw;
          if (iw < 0 || iw >= w) std::memset(dst + kw * c, pad_value, size_t(c));
          else copy_bytes(dst + kw * c, x + ((img * h + ih) * w + iw) * c, c);
        }
      }
    }
    if (kp > k) std::memset(row + k, 0, size_t(kp - k));  // meets zero weights
    if (++ow == ow_n) {
      ow = 0;
      if (++oh == oh_n) {
        oh = 0;
        ++img;
      }
    }
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

void set_conv_algorithm(ConvAlgorithm algorithm) { chosen_algorithm = algorithm; }
ConvAlgorithm conv_algorithm() { return chosen_algorithm; }

void conv2d_u8(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
               const PackedWeights& weights, const Requant& rq, uint8_t* y) {
  check(s, weights, h, w);
  if (chosen_algorithm == ConvAlgorithm::Auto && direct_conv_fits(s) && active_gemm_path() == GemmPath::Vnni) {
    conv2d_u8_direct(x, n, h, w, s, pad_value, weights, rq, y);
    return;
  }
  const int64_t oh_n = s.out_size(h), ow_n = s.out_size(w), kp = weights.kp, oc = s.out_channels,
                c = s.in_channels;
  if (c % 4 != 0 || s.kernel > ARows::kMaxSegments) {
    over_tiles(n * oh_n * ow_n, kp, [&](int64_t m0, int64_t rows, uint8_t* a) {
      im2col_rows(x, h, w, s, pad_value, m0, rows, kp, a);
      Requant part = rq;
      if (part.residual) part.residual += m0 * part.residual_ld;
      gemm_u8s8_requant(a, kp, rows, weights, part, y + m0 * oc, oc, false);
    });
    return;
  }
  // The GEMM reads the positions whose taps all lie inside the image in place: kernel rows of
  // kernel * C contiguous bytes (implicit im2col). The others (the border) go through im2col.
  auto first_inside = [&](int64_t) { return (s.padding + s.stride - 1) / s.stride; };
  auto last_inside = [&](int64_t size, int64_t out) {
    const int64_t room = size - s.kernel + s.padding;
    return room < 0 ? int64_t(-1) : std::min(out - 1, room / s.stride);
  };
  const int64_t oh_lo = first_inside(h), oh_hi = last_inside(h, oh_n), ow_lo = first_inside(w),
                ow_hi = last_inside(w, ow_n);
  const int64_t out_rows = n * oh_n;
#pragma omp parallel if (out_rows > 1)
  {
    std::vector<uint8_t> a(size_t(ow_n * kp));
    // Output positions [m, m + count) through an im2col panel.
    auto through_panel = [&](int64_t m, int64_t count) {
      if (count <= 0) return;
      im2col_rows(x, h, w, s, pad_value, m, count, kp, a.data());
      Requant part = rq;
      if (part.residual) part.residual += m * part.residual_ld;
      gemm_u8s8_requant_rows(ARows::dense(a.data(), kp, kp), count, weights, part, y + m * oc, oc);
    };
#pragma omp for schedule(static)
    for (int64_t row = 0; row < out_rows; ++row) {
      const int64_t img = row / oh_n, oh = row % oh_n, m0 = row * ow_n;
      if (oh < oh_lo || oh > oh_hi || ow_lo > ow_hi) {
        through_panel(m0, ow_n);
        continue;
      }
      through_panel(m0, ow_lo);
      through_panel(m0 + ow_hi + 1, ow_n - ow_hi - 1);
      ARows in_place;
      in_place.segments = int(s.kernel);
      in_place.seg_len = s.kernel * c;
      in_place.row_stride = s.stride * c;
      for (int64_t kh = 0; kh < s.kernel; ++kh)
        in_place.seg[kh] = x + ((img * h + oh * s.stride - s.padding + kh) * w + ow_lo * s.stride - s.padding) * c;
      Requant part = rq;
      if (part.residual) part.residual += (m0 + ow_lo) * part.residual_ld;
      gemm_u8s8_requant_rows(in_place, ow_hi - ow_lo + 1, weights, part, y + (m0 + ow_lo) * oc, oc);
    }
  }
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

void conv2d_u8_s32_tiles(const uint8_t* x, int64_t n, int64_t h, int64_t w, const ConvShape& s, uint8_t pad_value,
                         const PackedWeights& weights, const AccumulatorConsumer& consume) {
  check(s, weights, h, w);
  const int64_t positions = n * s.out_size(h) * s.out_size(w), kp = weights.kp;
  over_tiles(positions, kp, [&](int64_t m0, int64_t rows, uint8_t* a) {
    thread_local std::vector<int32_t> acc;
    acc.resize(size_t(kTileRows * weights.n));
    im2col_rows(x, h, w, s, pad_value, m0, rows, kp, a);
    gemm_u8s8_s32(a, kp, rows, weights, acc.data(), weights.n, false);
    consume(m0, rows, acc.data());
  });
}

}  // namespace qnn::qinfer
