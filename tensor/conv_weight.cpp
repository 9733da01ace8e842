// CPU convolution, backward weight (see tensor/conv.h; forward and backward data are in
// tensor/conv.cpp, the shared lowering helpers in tensor/conv_lowering.h).
// For image n, with K = C*KH*KW and P = Ho*Wo:
//   dw[O x K] += dy_n[O x P] * col_n^T[P x K] as dot products along the pixels, col_n read from
//   the padded image (stride 1, 32x32) or shifted planes, never copied out as K x P; at 8x8 and
//   below dw^T[K x O] += col_n[K x P] * dy_n^T[P x O] on the gemm tiles (per-thread sums); wide
//   layers on small maps take a group of images per product; 1x1 layers of 64 channels and up
//   dw[O x C] += dy_n[O x P] * x_n^T[P x C] on the gemm tiles, x_n transposed once
//   (see backward_weight).
// Images are split into one contiguous range per thread (static), and the per-thread partial
// weight gradients are added in thread order, so results do not depend on timing.
// The 3x3, stride-1, same-width layers that tensor/winograd.h covers take its weight gradient
// instead.
//
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics (in the shuffles of winograd_tiles::transpose16, which pixels_major uses) as
// (maybe-)uninitialized; the warning is about the header, not this code.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/conv_bf16.h"
#include "tensor/conv_lowering.h"
#include "tensor/device.h"
#include "tensor/gemm_kernel.h"
#include "tensor/im2col.h"
#include "tensor/winograd.h"
#include "tensor/winograd_tiles.h"

namespace qnn {

using namespace conv_lowering;

namespace {

// Weight gradients of at least this many floats sum a group of images per product (see
// conv2d_backward_weight).
constexpr int64_t kGroupedPartial = 1 << 16;

// partial dw^T[K x O] += col[K x P] * dy^T[P x O] for one image.
template <int TM, int TV>
void weight_gradient_tiles(const ConvGeometry& g, const float* col, const float* dyt, float* partial) {
  constexpr int TN = 16 * TV;
  for (int64_t jr = 0; jr < g.o; jr += TN)
    for (int64_t ir = 0; ir < g.k(); ir += TM)
      kernel::micro_kernel<TM, TV>(g.p(), col + ir * g.p(), g.p(), 1, dyt + jr, g.o,
                                   partial + ir * g.o + jr, g.o,
                                   static_cast<int>(std::min<int64_t>(TM, g.k() - ir)),
                                   static_cast<int>(std::min<int64_t>(TN, g.o - jr)), 1.0f, true,
                                   nullptr);
}

// Output columns per panel of weight_gradient_grouped.
constexpr int64_t kGradientPanel = 4 * NR;

// Where dy^T(row, o) lives in the panel-major layout that weight_gradient_grouped reads: panels of
// kGradientPanel output channels, each a [len x width] row-major block, so that the kernel's rows
// of dy^T are contiguous (a plain [len x O] layout puts them O floats apart, which at 512 channels
// and up maps them onto a few cache sets).
inline int64_t panel_index(int64_t row, int64_t o, int64_t len, int64_t channels) {
  const int64_t j0 = o / kGradientPanel * kGradientPanel;
  return j0 * len + row * std::min(kGradientPanel, channels - j0) + (o - j0);
}

// partial dw^T[K x O] += col[K x len] * dyt[len x O] (= without `accumulate`) for a group of
// images laid side by side (len = images * P), dyt in panels (panel_index). A panel of dyt
// (len x 128, at most len * 512 bytes) stays in L2 while the rows of col go by in tiles of MR,
// each read once per panel from memory and reused from L1 across the panel.
void weight_gradient_grouped(int64_t k, int64_t o, int64_t len, const float* col, const float* dyt,
                             float* partial, bool accumulate) {
  for (int64_t j0 = 0; j0 < o; j0 += kGradientPanel) {
    const int64_t width = std::min(kGradientPanel, o - j0);
    const float* panel = dyt + j0 * len;
    for (int64_t ir = 0; ir < k; ir += MR)
      for (int64_t jr = 0; jr < width; jr += NR)
        kernel::micro_kernel<MR, NV>(len, col + ir * len, len, 1, panel + jr, width,
                                     partial + ir * o + j0 + jr, o,
                                     static_cast<int>(std::min<int64_t>(MR, k - ir)),
                                     static_cast<int>(std::min<int64_t>(NR, width - jr)), 1.0f,
                                     accumulate, nullptr);
  }
}

// partial dw[O x K] += sum over images [begin, end) of dy_n[O x P] * col_n^T[P x K], with col_n
// read as shifted planes (tensor/im2col.h): every entry is a dot product of a row of dy_n with a
// contiguous run of the planes, which kernel::dot_tile computes 4 x 6 at a time, vectorised
// along the pixels. Images are taken in groups so that each dot product runs at least ~1024
// pixels between the lane sums; the planes of a group stay in L2.
void weight_gradient_shifted(const ConvGeometry& g, const float* x, const float* dy, int64_t begin,
                             int64_t end, float* partial) {
  constexpr int MO = 4, NK = 6;
  // Stride 1, wide images: the zero-padded image (as in forward_implicit) is one copy where the
  // shifted planes are three; the output grid is then Wp wide, so dy is copied onto that grid
  // with zeros in the Wp - Wo junk columns, which makes their products vanish. Worth it while
  // the junk is at most 1/16 of a row (measured: faster at 32x32, slower at 16x16).
  const bool padded = g.stride == 1 && 16 * 2 * g.pad <= g.wo;
  const int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad;
  const int64_t size = padded ? g.c * hp * wp + g.kw : shifted_planes_size(g);
  const int64_t len = padded ? g.ho * wp : g.p();  // pixels per dot product and image
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>((1024 + len - 1) / len,
                                                                (1 << 18) / size));
  std::vector<int64_t> rows(static_cast<size_t>(g.k()));
  if (padded)
    padded_row_offsets(g, g.c, rows.data());
  else
    shifted_row_offsets(g, rows.data());
  float* planes = scratch_data(0, group * size);
  float* dy_wide = padded ? scratch_data(1, group * g.o * len) : nullptr;
  if (padded) {  // the padding and junk columns are written once and stay zero
    std::memset(planes, 0, group * size * sizeof(float));
    std::memset(dy_wide, 0, group * g.o * len * sizeof(float));
  }
  for (int64_t n0 = begin; n0 < end; n0 += group) {
    const int count = static_cast<int>(std::min(group, end - n0));
    for (int i = 0; i < count; ++i) {
      const float* xn = x + (n0 + i) * g.image_in();
      if (!padded) {
        shifted_planes(g, xn, planes + i * size);
        continue;
      }
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t r = 0; r < g.h; ++r)
          copy_floats(planes + i * size + (c * hp + r + g.pad) * wp + g.pad, xn + (c * g.h + r) * g.w, g.w);
      const float* dyn = dy + (n0 + i) * g.image_out();
      for (int64_t o = 0; o < g.o; ++o)
        for (int64_t r = 0; r < g.ho; ++r)
          copy_floats(dy_wide + (i * g.o + o) * len + r * wp, dyn + (o * g.ho + r) * g.wo, g.wo);
    }
    const float* a = padded ? dy_wide : dy + n0 * g.image_out();
    const int64_t a_step = padded ? g.o * len : g.image_out();
    for (int64_t o = 0; o < g.o; o += MO)
      for (int64_t kk = 0; kk < g.k(); kk += NK)
        kernel::dot_tile<MO, NK>(len, count, a + o * len, len, a_step, planes, rows.data() + kk, size,
                                 partial + o * g.k() + kk, g.k(),
                                 static_cast<int>(std::min<int64_t>(MO, g.o - o)),
                                 static_cast<int>(std::min<int64_t>(NK, g.k() - kk)));
  }
}

// t[q][c] = image[c][q] for an image of c channels of h x w pixels, q = y*w + x.
void pixels_major(const float* image, int64_t c, int64_t h, int64_t w, float* t) {
#if defined(__AVX512F__)
  if (c % 16 == 0) return winograd_tiles::pad_channels_last<false>(image, c, h, w, 0, h, w, t);
#endif
  constexpr int64_t B = 16;  // blocks of 16 x 16: both sides' lines stay in L1
  for (int64_t c0 = 0; c0 < c; c0 += B)
    for (int64_t q0 = 0; q0 < h * w; q0 += B)
      for (int64_t ch = c0; ch < std::min(c, c0 + B); ++ch)
        for (int64_t q = q0; q < std::min(h * w, q0 + B); ++q) t[q * c + ch] = image[ch * h * w + q];
}

// partial dw[O x C] of a 1x1 layer without padding, over images [begin, end), as the gemm tiles'
// outer products dw += dy_n [O x P] * xt_n [P x C]: xt_n is x_n (at stride s, its pixels s apart,
// the shifted planes of tensor/im2col.h) transposed to pixels-major once per image. The tiles
// broadcast dy_n's rows and read xt_n's; the reduction runs in blocks of 256 pixels, so that a
// tile of xt_n (256 x 32) stays in L1, each block resuming the accumulators where the last one
// stored them: one FMA chain per element, over the thread's images and pixels in order. The
// first block stores, so the partial needs no zeros.
void weight_gradient_pointwise(const ConvGeometry& g, const float* x, const float* dy, int64_t begin,
                               int64_t end, float* partial) {
  constexpr int64_t kBlock = 256;
  float* xt = scratch_data(0, g.p() * g.c);
  float* planes = g.stride == 1 ? nullptr : scratch_data(1, shifted_planes_size(g));
  for (int64_t n = begin; n < end; ++n) {
    const float* xn = x + n * g.image_in();
    if (planes) {
      shifted_planes(g, xn, planes);  // [C][Ho][Wo] for a 1x1 kernel
      xn = planes;
    }
    pixels_major(xn, g.c, g.ho, g.wo, xt);
    const float* dyn = dy + n * g.image_out();
    for (int64_t p0 = 0; p0 < g.p(); p0 += kBlock) {
      const int64_t kb = std::min(kBlock, g.p() - p0);
      for (int64_t jr = 0; jr < g.c; jr += NR)
        for (int64_t ir = 0; ir < g.o; ir += MR)
          kernel::micro_kernel<MR, NV>(kb, dyn + ir * g.p() + p0, g.p(), 1, xt + p0 * g.c + jr, g.c,
                                       partial + ir * g.c + jr, g.c,
                                       static_cast<int>(std::min<int64_t>(MR, g.o - ir)),
                                       static_cast<int>(std::min<int64_t>(NR, g.c - jr)), 1.0f, false,
                                       nullptr, nullptr, n > begin || p0 > 0);
    }
  }
}

// dw += dL/dw, db += dL/dbias in float (see conv2d_backward_weight).
void backward_weight(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // partial[t] holds thread t's dw^T [K x O] (gemm tiles) or dw [O x K] (shifted planes and
  // pointwise), then its bias sums [O].
  const int64_t part = g.k() * g.o + g.o;
  // Not initialised here: each thread zeroes its own part (in parallel, and without a serial
  // memset of what is 19 MB for a 512-channel 3x3 layer on two threads).
  std::unique_ptr<float[]> partial(new float[static_cast<size_t>(threads * part)]);
  auto zero_parts = [&](int t, int team) {
    for (int u = t; u < threads; u += team)
      std::fill(partial.get() + u * part, partial.get() + (u + 1) * part, 0.0f);
  };
  // For the paths whose first product stores rather than adds: zeros only where none will store
  // (a thread without images, or one past the team), and in the bias sums.
  auto zero_unstored = [&](int t, int team, int64_t begin, int64_t end) {
    for (int u = t; u < threads; u += team) {
      float* part_u = partial.get() + u * part;
      std::fill(u == t && begin < end ? part_u + g.k() * g.o : part_u, part_u + part, 0.0f);
    }
  };
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
  // 1x1 layers without padding, 64 channels and more in and out (ImageNet's bottlenecks and
  // strided shortcuts), take weight_gradient_pointwise: measured 1.1-1.8x faster than the other
  // paths on ResNet-50's 1x1 layers at 14x14 and up. It loads and stores each partial tile once
  // per image, P FMAs apart: at 7x7 that pays only where the grouped tiles would transpose the
  // larger operand (layers that widen, 512 -> 2048: 1.6x faster) and the partial stays in the
  // caches (at most 4 MB; 1024 -> 2048, 8 MB, measured 40% slower; 2048 -> 512 10% slower).
  // CIFAR ResNet-20's option-B shortcuts (16 -> 32, 32 -> 64) keep their paths, bit for bit.
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.pad == 0 && g.c >= 64 && g.o >= 64 &&
                         (g.p() >= 64 || (g.o >= g.c && g.o * g.c <= (int64_t{1} << 20)));
  // Shifted planes need enough pixels per image to amortise the lane sums (measured: faster
  // from 16x16 outputs up, slower at 8x8, where im2col and the gemm tiles win; 1x1 stride-1
  // layers give the tiles x_n itself).
  const bool shifted = !direct && g.p() >= 256;
  // Wide layers on small maps (ImageNet's 7x7 and 14x14 stages, the strided 1x1 shortcuts): per
  // image, each tile of the K x O partial would be loaded and stored after only P FMAs per
  // element, and the partial (9 MB for 512 x 4608) streamed from memory once per image. Images
  // are then grouped side by side into one product of reduction length ~512 or more. This sums
  // each group in one FMA chain before adding it to the partial, where the per-image path adds
  // image by image: rounding differs, so it is kept to partials of at least kGroupedPartial
  // floats, which no CIFAR ResNet-20 layer reaches (its largest is 64 x 576).
  const bool grouped = !shifted && (direct ? g.p() < 512 : true) && g.k() * g.o >= kGroupedPartial;
  if (pointwise) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      int64_t begin, end;
      thread_range(g.n, t, team, begin, end);
      zero_unstored(t, team, begin, end);
      weight_gradient_pointwise(g, x.data(), dy.data(), begin, end, partial.get() + t * part);
    }
  } else if (grouped) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      int64_t begin, end;
      thread_range(g.n, t, team, begin, end);
      zero_unstored(t, team, begin, end);  // the first group stores its product
      const int64_t group = std::max<int64_t>(
          1, std::min<int64_t>((512 + g.p() - 1) / g.p(), (int64_t{1} << 21) / (g.k() * g.p())));
      float* col = scratch_data(0, group * g.k() * g.p());
      float* dyt = scratch_data(1, group * g.p() * g.o);
      float* planes = direct ? nullptr : scratch_data(2, shifted_planes_size(g));
      std::vector<int64_t> rows(static_cast<size_t>(g.k()));
      if (!direct) shifted_row_offsets(g, rows.data());
      float* mine = partial.get() + t * part;
      for (int64_t n0 = begin; n0 < end; n0 += group) {
        const int64_t count = std::min(group, end - n0), len = count * g.p();
        for (int64_t i = 0; i < count; ++i) {
          // Row kk of col: image i's row kk of im2col at columns [i*P, (i+1)*P).
          const float* xn = x.data() + (n0 + i) * g.image_in();
          if (!direct) shifted_planes(g, xn, planes);
          for (int64_t kk = 0; kk < g.k(); ++kk)
            copy_floats(col + kk * len + i * g.p(), direct ? xn + kk * g.p() : planes + rows[kk], g.p());
          const float* dyn = dy.data() + (n0 + i) * g.image_out();
          for (int64_t o = 0; o < g.o; ++o)
            for (int64_t q = 0; q < g.p(); ++q)
              dyt[panel_index(i * g.p() + q, o, len, g.o)] = dyn[o * g.p() + q];
        }
        weight_gradient_grouped(g.k(), g.o, len, col, dyt, mine, n0 > begin);
      }
    }
  } else if (!shifted) {
    // dw^T[K x O] += col_n[K x P] * dy_n^T[P x O] on the gemm tiles; col_n is x_n when direct.
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t begin, end;
      thread_range(g.n, t, omp_get_num_threads(), begin, end);
      float* col = direct ? nullptr : scratch_data(0, g.k() * g.p());
      float* dyt = scratch_data(1, g.p() * g.o);
      float* mine = partial.get() + t * part;
      zero_parts(t, omp_get_num_threads());
      for (int64_t n = begin; n < end; ++n) {
        const float* xn = x.data() + n * g.image_in();
        if (!direct) im2col(g, xn, col);
        const float* dyn = dy.data() + n * g.image_out();
        for (int64_t o = 0; o < g.o; ++o)
          for (int64_t q = 0; q < g.p(); ++q) dyt[q * g.o + o] = dyn[o * g.p() + q];
        if (g.o <= 16)
          weight_gradient_tiles<16, 1>(g, direct ? xn : col, dyt, mine);
        else
          weight_gradient_tiles<MR, NV>(g, direct ? xn : col, dyt, mine);
      }
    }
  } else {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t begin, end;
      zero_parts(t, omp_get_num_threads());
#pragma omp barrier
      thread_range(g.n, t, omp_get_num_threads(), begin, end);
      weight_gradient_shifted(g, x.data(), dy.data(), begin, end, partial.get() + t * part);
    }
  }
  // Bias sums, per thread over its images (as a fixed split of the batch).
  if (db.defined()) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num();
      int64_t begin, end;
      thread_range(g.n, t, omp_get_num_threads(), begin, end);
      add_bias_sums(g, dy.data(), begin, end, partial.get() + t * part + g.k() * g.o);
    }
  }
  add_thread_partials(g, partial.get(), part, threads, !shifted && !pointwise, dw.data(),
                      db.defined() ? db.data() : nullptr);
}

}  // namespace

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), dw.shape(), p);
  QNN_CHECK(dy.shape() == Shape({g.n, g.o, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.o, g.ho, g.wo}));
  QNN_CHECK(!db.defined() || db.numel() == g.o, "bias gradient ", shape_str(db.shape()), " for ", g.o,
            " output channels");
  QNN_ON_CUDA(x, cuda::conv2d_backward_weight(x, dy, dw, db, p));
  if (winograd::covers_weight_gradient(g))
    return winograd::weight_gradient(g, x.data(), dy.data(), dw.data(), db.defined() ? db.data() : nullptr,
                                     backend_options().bf16);
  if (!backend_options().bf16) return backward_weight(g, x, dy, dw, db);
  if (conv_bf16::covers(g))
    return conv_bf16::backward_weight(g, x.data(), dy.data(), dw.data(), db.defined() ? db.data() : nullptr);
  // The weights' gradient from the rounded operands; the bias gradient sums dy in float, as the
  // bf16 kernels do.
  Tensor no_bias;
  backward_weight(g, round_to_bf16(x), round_to_bf16(dy), dw, no_bias);
  if (db.defined()) add_bias_sums(g, dy.data(), 0, g.n, db.data());
}

}  // namespace qnn
