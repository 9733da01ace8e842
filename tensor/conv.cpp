// CPU convolution (see tensor/conv.h): each image lowered to a matrix in a per-thread buffer
// (im2col, or the cheaper shifted planes), then the register-blocked micro-kernel of
// tensor/gemm_kernel.h straight on that buffer.
// For image n, with K = C*KH*KW and P = Ho*Wo:
//   forward          y_n[O x P]   = w[O x K] * col_n[K x P]  (+ bias, added as the tile is stored)
//                    with col_n never written out: read from a zero-padded copy of the image
//                    (stride 1, 16x16 and up) or from shifted planes (tensor/im2col.h)
//   backward data    stride 1: dx is itself a stride-1 convolution of dy with the weights flipped
//                    in space and transposed in channels, padding KH-1-pad, so it runs through the
//                    forward path with no col2im;  otherwise col = w^T * dy_n, then col2im
//   backward weight  dw[O x K] += dy_n[O x P] * col_n^T[P x K] as dot products along the pixels,
//                    col_n read from the padded image (stride 1, 32x32) or shifted planes, never
//                    copied out as K x P; at 8x8 and below
//                    dw^T[K x O] += col_n[K x P] * dy_n^T[P x O] on the gemm tiles (per-thread sums)
// Images are split into one contiguous range per thread (static), buffers are thread_local and
// reused across calls, and the per-thread partial weight gradients are added in thread order,
// so results do not depend on timing.
#include "tensor/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "tensor/device.h"
#include "tensor/elementwise.h"
#include "tensor/gemm_kernel.h"
#include "tensor/im2col.h"

namespace qnn {

namespace {

constexpr int MR = 8;
constexpr int NV = 2;
constexpr int NR = 16 * NV;

// Weights of at least this many floats are packed (and flipped, and their partial gradients summed)
// by all threads; below it the threads would cost more than they save.
constexpr int64_t kParallelPack = 1 << 16;
// Reduction block of forward_grouped (see there).
constexpr int64_t kBlockK = 256;
// Weight gradients of at least this many floats sum a group of images per product (see
// conv2d_backward_weight).
constexpr int64_t kGroupedPartial = 1 << 16;

// Per-thread scratch that survives between calls, so the steady state allocates nothing.
// Slots 0-2 are the parallel regions' per-thread buffers; the calling thread keeps packed weights
// in kPackedSlot (and the flipped weights of backward-data in kFlippedSlot) while it takes part
// in those regions.
constexpr int kPackedSlot = 3, kFlippedSlot = 4;
std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[5];
  return buffers[which];
}

float* scratch_data(int which, int64_t size) {
  std::vector<float>& b = scratch(which);
  if (static_cast<int64_t>(b.size()) < size) b.resize(static_cast<size_t>(size));
  return b.data();
}

// Copies A (m x k, A(i, p) = a[i*rs + p*cs]) into panels of MR rows: panel q holds
// packed[(q*k + p)*MR + r] = A(q*MR + r, p), zero for rows past m. The kernel then reads each
// panel with unit stride (rs_a = 1, cs_a = MR). The panels live in the calling thread's scratch
// `slot` (kPackedSlot unless that holds an input), so the steady state neither allocates nor
// page-faults 9 MB per call at 512 channels. Large weights are packed by all threads, one range of
// panels each; a copy, so the result is the same either way.
const float* pack_a(const float* a, int64_t rs, int64_t cs, int64_t m, int64_t k, int slot = kPackedSlot) {
  const int64_t panels = (m + MR - 1) / MR;
  float* packed = scratch_data(slot, panels * k * MR);
#pragma omp parallel for schedule(static) if (m * k >= kParallelPack && !omp_in_parallel())
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t r = 0; r < MR; ++r)
        packed[(q * k + p) * MR + r] = q * MR + r < m ? a[(q * MR + r) * rs + p * cs] : 0.0f;
  return packed;
}

// The contiguous range of [0, total) that thread t of `threads` owns.
void thread_range(int64_t total, int t, int threads, int64_t& begin, int64_t& end) {
  begin = total * t / threads;
  end = total * (t + 1) / threads;
}

// C[m x n] = A_packed[m x k] * B[k x n] (+ row_init per row), B rows of stride ldb.
void multiply_packed(const float* a_packed, int64_t m, int64_t k, const float* b, int64_t n,
                     int64_t ldb, float* c, int64_t ldc, const float* row_init,
                     bool accumulate = false) {
  for (int64_t jr = 0; jr < n; jr += NR)
    for (int64_t ir = 0; ir < m; ir += MR)
      kernel::micro_kernel<MR, NV>(k, a_packed + ir * k, 1, MR, b + jr, ldb, c + ir * ldc + jr, ldc,
                                   static_cast<int>(std::min<int64_t>(MR, m - ir)),
                                   static_cast<int>(std::min<int64_t>(NR, n - jr)), 1.0f, accumulate,
                                   row_init ? row_init + ir : nullptr);
}

// Stride-1 convolution without im2col ("implicit im2col"). The image is copied once into a
// zero-padded plane xp [C][Hp][Wp]; then the output computed on a grid Wp wide (columns
// j >= Wo are junk and dropped) needs B((c,u,v), q) = xp[c*Hp*Wp + u*Wp + v + q]: every row of
// the im2col matrix is a shifted window of xp, which the kernel reads through a table of row
// offsets. The junk columns cost Wp/Wo - 1 extra work (12% at 16x16) and a copy of the valid
// columns into y; the K x P copy is gone. When Wo is a multiple of the tile width (32x32) the
// tiles follow the output rows instead, so neither the junk nor the copy exists.
void forward_implicit(const ConvGeometry& g, const float* x, const float* w_packed,
                      const float* bias, float* y, bool accumulate) {
  const int64_t hp = g.h + 2 * g.pad, wp = g.w + 2 * g.pad, plane = hp * wp, wide = g.ho * wp;
  std::vector<int64_t> rows(static_cast<size_t>(g.k()));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) rows[(c * g.kh + u) * g.kw + v] = c * plane + u * wp + v;
  // Rows a whole number of tiles wide (32x32 and 64x64 outputs) are computed one output row at a
  // time instead of on the wide grid.
  const bool rows_direct = g.wo % NR == 0;
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    // The last window reads kw - 1 floats past the planes: keep them zero.
    float* xp = scratch_data(0, g.c * plane + g.kw);
    float* y_wide = rows_direct ? nullptr : scratch_data(1, g.o * wide);
    std::memset(xp, 0, (g.c * plane + g.kw) * sizeof(float));
    for (int64_t n = begin; n < end; ++n) {
      const float* xn = x + n * g.image_in();
      for (int64_t c = 0; c < g.c; ++c)
        for (int64_t i = 0; i < g.h; ++i)
          copy_floats(xp + c * plane + (i + g.pad) * wp + g.pad, xn + (c * g.h + i) * g.w, g.w);
      float* yn = y + n * g.image_out();
      if (rows_direct) {
        // Output row i is columns [i*Wp, i*Wp + Wo) of the wide grid: whole tiles, stored
        // straight into y (no junk columns computed, nothing copied).
        for (int64_t i = 0; i < g.ho; ++i)
          for (int64_t jr = 0; jr < g.wo; jr += NR)
            for (int64_t ir = 0; ir < g.o; ir += MR)
              kernel::micro_kernel<MR, NV>(g.k(), w_packed + ir * g.k(), 1, MR, xp + i * wp + jr, 0,
                                           yn + ir * g.p() + i * g.wo + jr, g.p(),
                                           static_cast<int>(std::min<int64_t>(MR, g.o - ir)), NR,
                                           1.0f, accumulate, bias ? bias + ir : nullptr, rows.data());
        continue;
      }
      for (int64_t jr = 0; jr < wide; jr += NR)
        for (int64_t ir = 0; ir < g.o; ir += MR)
          kernel::micro_kernel<MR, NV>(g.k(), w_packed + ir * g.k(), 1, MR, xp + jr, 0,
                                       y_wide + ir * wide + jr, wide,
                                       static_cast<int>(std::min<int64_t>(MR, g.o - ir)),
                                       static_cast<int>(std::min<int64_t>(NR, wide - jr)), 1.0f,
                                       false, bias ? bias + ir : nullptr, rows.data());
      for (int64_t o = 0; o < g.o; ++o)
        for (int64_t i = 0; i < g.ho; ++i) {
          float* out = yn + (o * g.ho + i) * g.wo;
          const float* in = y_wide + o * wide + i * wp;
          if (!accumulate) {
            copy_floats(out, in, g.wo);
            continue;
          }
#pragma omp simd
          for (int64_t j = 0; j < g.wo; ++j) out[j] += in[j];
        }
    }
  }
}

// The same product with col_n read from shifted planes (tensor/im2col.h): row (c, u, v) of col_n
// is P contiguous floats at a fixed offset into the planes, which the kernel reads through its
// table of row offsets. Any stride, no junk columns, and the planes copy the image about 3 times
// where a 3x3 im2col copies it 9 times.
void forward_shifted(const ConvGeometry& g, const float* x, const float* w_packed,
                     const float* bias, float* y, bool accumulate) {
  const int64_t size = shifted_planes_size(g);
  std::vector<int64_t> rows(static_cast<size_t>(g.k()));
  shifted_row_offsets(g, rows.data());
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    float* planes = scratch_data(0, size);
    for (int64_t n = begin; n < end; ++n) {
      shifted_planes(g, x + n * g.image_in(), planes);
      float* yn = y + n * g.image_out();
      for (int64_t jr = 0; jr < g.p(); jr += NR)
        for (int64_t ir = 0; ir < g.o; ir += MR)
          kernel::micro_kernel<MR, NV>(g.k(), w_packed + ir * g.k(), 1, MR, planes + jr, 0,
                                       yn + ir * g.p() + jr, g.p(),
                                       static_cast<int>(std::min<int64_t>(MR, g.o - ir)),
                                       static_cast<int>(std::min<int64_t>(NR, g.p() - jr)), 1.0f,
                                       accumulate, bias ? bias + ir : nullptr, rows.data());
    }
  }
}

// Small maps whose P columns fill the last tile poorly (7x7: 49 columns on two 32-wide tiles,
// 23% of the work dropped; 14x14: 196 on seven, 12%): the column matrices of a group of images
// are written out side by side, col[K x images*P] (rows taken from the shifted planes, or from
// x_n for 1x1 stride 1), so that the tiles run across image boundaries and only the group's last
// one is partial. The product lands in a [O x images*P] buffer and is copied (or added) into
// y. Each output is still one chain of FMAs over K in order, as on the other paths.
void forward_grouped(const ConvGeometry& g, const float* x, const float* w_packed,
                     const float* bias, float* y, bool accumulate) {
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
  // The fewest images whose columns fill their tiles to within 1/16 (7x7: 5 images, 245 columns
  // on 256; 14x14: 2), within 8 MB of columns: more would only add cache traffic (measured slower
  // on two threads at 14x14, whose caches the two column buffers share).
  const int64_t most_images = std::max<int64_t>(1, (int64_t{1} << 21) / (g.k() * g.p()));
  int64_t group = 1;
  while (group < most_images && 16 * ((group * g.p() + NR - 1) / NR * NR) > 17 * group * g.p()) ++group;
  std::vector<int64_t> rows(static_cast<size_t>(g.k()));
  if (!direct) shifted_row_offsets(g, rows.data());
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    const int64_t most = std::min(group, std::max<int64_t>(end - begin, 1));
    float* planes = direct ? nullptr : scratch_data(0, shifted_planes_size(g));
    float* col = scratch_data(1, most * g.k() * g.p());
    float* y_wide = scratch_data(2, most * g.o * g.p());
    for (int64_t n0 = begin; n0 < end; n0 += group) {
      const int64_t count = std::min(group, end - n0), len = count * g.p();
      for (int64_t i = 0; i < count; ++i) {
        const float* xn = x + (n0 + i) * g.image_in();
        if (!direct) shifted_planes(g, xn, planes);
        for (int64_t kk = 0; kk < g.k(); ++kk)
          copy_floats(col + kk * len + i * g.p(), direct ? xn + kk * g.p() : planes + rows[kk], g.p());
      }
      // k in blocks of kBlockK: a block of the weights (O x kBlockK, 512 KB at 512 channels)
      // stays in L2 and the block of a column tile (kBlockK x 32) in L1, where the whole k would
      // stream all the weights (9 MB for 512 x 4608) once per column tile. Each block resumes the
      // accumulators where the previous one stored them: the FMA chain is unchanged.
      for (int64_t k0 = 0; k0 < g.k(); k0 += kBlockK) {
        const int64_t kb = std::min(kBlockK, g.k() - k0);
        const bool last = k0 + kb == g.k();
        for (int64_t jr = 0; jr < len; jr += NR)
          for (int64_t ir = 0; ir < g.o; ir += MR)
            kernel::micro_kernel<MR, NV>(kb, w_packed + ir * g.k() + k0 * MR, 1, MR, col + k0 * len + jr,
                                         len, y_wide + ir * len + jr, len,
                                         static_cast<int>(std::min<int64_t>(MR, g.o - ir)),
                                         static_cast<int>(std::min<int64_t>(NR, len - jr)), 1.0f, false,
                                         last && bias ? bias + ir : nullptr, nullptr, k0 > 0);
      }
      for (int64_t i = 0; i < count; ++i)
        for (int64_t o = 0; o < g.o; ++o) {
          float* out = y + (n0 + i) * g.image_out() + o * g.p();
          const float* in = y_wide + o * len + i * g.p();
          if (!accumulate) {
            copy_floats(out, in, g.p());
            continue;
          }
#pragma omp simd
          for (int64_t j = 0; j < g.p(); ++j) out[j] += in[j];
        }
    }
  }
}

// y = conv(x, w) + bias for the whole batch; w_packed is pack_a of w viewed as [O x K].
// With `accumulate`, y += conv(x, w) + bias instead: each result is added to y as it is stored,
// exactly as add_into would add it afterwards.
void forward_images(const ConvGeometry& g, const float* x, const float* w_packed, const float* bias,
                    float* y, bool accumulate = false) {
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;  // col_n is x_n
  // Below 256 columns, where the partial last tile wastes over 1/16 of the work, group the
  // images (ImageNet's 7x7 and 14x14 maps; none of CIFAR ResNet-20's, whose 64 and 256 fill
  // their tiles).
  // A 1x1 layer reads x_n in place, where grouping copies it: there only a quarter of the work
  // wasted pays for the copy (measured: faster at 7x7, slower at 14x14).
  const int64_t padded_columns = (g.p() + NR - 1) / NR * NR;
  const bool poorly_tiled = direct ? 4 * padded_columns > 5 * g.p() : 16 * padded_columns > 17 * g.p();
  if (g.n > 1 && g.p() < 256 && poorly_tiled) {
    forward_grouped(g, x, w_packed, bias, y, accumulate);
    return;
  }
  // Implicit im2col pays for Wp - Wo junk columns per output row: worth it while that is at most
  // an eighth of the row (measured: faster at 32x32 and 16x16, slower at 8x8).
  if (g.stride == 1 && !direct && 8 * 2 * g.pad <= g.wo) {
    forward_implicit(g, x, w_packed, bias, y, accumulate);
    return;
  }
  // Otherwise (strided, or small images where the junk columns would cost too much) shifted
  // planes: measured faster than im2col at every such ResNet-20 shape.
  if (!direct) {
    forward_shifted(g, x, w_packed, bias, y, accumulate);
    return;
  }
  // 1x1, stride 1, no padding: col_n is x_n itself.
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    for (int64_t n = begin; n < end; ++n)
      multiply_packed(w_packed, g.o, g.k(), x + n * g.image_in(), g.p(), g.p(), y + n * g.image_out(),
                      g.p(), bias, accumulate);
  }
}

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
// images laid side by side (len = images * P), dyt in panels (panel_index). A panel of dyt (len x 128, at most len * 512
// bytes) stays in L2 while the rows of col go by in tiles of MR, each read once per panel from
// memory and reused from L1 across the panel.
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
  if (padded) {
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t u = 0; u < g.kh; ++u)
        for (int64_t v = 0; v < g.kw; ++v) rows[(c * g.kh + u) * g.kw + v] = c * hp * wp + u * wp + v;
  } else {
    shifted_row_offsets(g, rows.data());
  }
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

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), p);
  QNN_CHECK(!bias.defined() || bias.numel() == g.o, "bias ", shape_str(bias.shape()), " for ", g.o,
            " output channels");
  QNN_ON_CUDA(x, cuda::conv2d_forward(x, w, bias, p));
  Tensor y({g.n, g.o, g.ho, g.wo});
  const float* w_packed = pack_a(w.data(), g.k(), 1, g.o, g.k());
  forward_images(g, x.data(), w_packed, bias.defined() ? bias.data() : nullptr, y.data());
  return y;
}

namespace {

// dx = conv2d_backward_data(dy, w), or dx += it with `accumulate` (stride-1 path only).
// Returns false, leaving dx alone, when accumulate is asked on the col2im path.
bool backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx,
                   bool accumulate) {
  if (g.stride == 1 && g.kh == g.kw && g.pad <= g.kh - 1) {
    // dx[c, y, x] = sum_{o,u,v} w[o, c, KH-1-u, KW-1-v] * dy[o, y + u - (KH-1-pad), x + v - (KW-1-pad)]
    const ConvGeometry t = conv_geometry({g.n, g.o, g.ho, g.wo}, {g.c, g.o, g.kh, g.kw},
                                         ConvParams{1, static_cast<int>(g.kh - 1 - g.pad)});
    // A(c, (o*KH + u)*KW + v) = w[o][c][KH-1-u][KW-1-v], packed directly.
    float* flipped = scratch_data(kFlippedSlot, g.c * t.k());
    const float* wp = w.data();
#pragma omp parallel for schedule(static) if (g.c * t.k() >= kParallelPack && !omp_in_parallel())
    for (int64_t c = 0; c < g.c; ++c)
      for (int64_t o = 0; o < g.o; ++o)
        for (int64_t u = 0; u < g.kh; ++u)
          for (int64_t v = 0; v < g.kw; ++v)
            flipped[c * t.k() + (o * g.kh + u) * g.kw + v] =
                wp[((o * g.c + c) * g.kh + (g.kh - 1 - u)) * g.kw + (g.kw - 1 - v)];
    const float* a = pack_a(flipped, t.k(), 1, g.c, t.k());
    forward_images(t, dy.data(), a, nullptr, dx.data(), accumulate);
    return true;
  }
  if (accumulate) return false;
  // General case: col = w^T dy_n (A(kk, o) = w[o*K + kk]), then col2im.
  const float* a = pack_a(w.data(), 1, g.k(), g.k(), g.o);
#pragma omp parallel
  {
    int64_t begin, end;
    thread_range(g.n, omp_get_thread_num(), omp_get_num_threads(), begin, end);
    float* col = scratch_data(0, g.k() * g.p());
    for (int64_t n = begin; n < end; ++n) {
      multiply_packed(a, g.k(), g.o, dy.data() + n * g.image_out(), g.p(), g.p(), col, g.p(),
                      nullptr);
      col2im(g, col, dx.data() + n * g.image_in());
    }
  }
  return true;
}

ConvGeometry backward_data_geometry(const Tensor& dy, const Tensor& w, const Shape& x_shape,
                                    ConvParams p) {
  const ConvGeometry g = conv_geometry(x_shape, w.shape(), p);
  QNN_CHECK(dy.shape() == Shape({g.n, g.o, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.o, g.ho, g.wo}));
  return g;
}

}  // namespace

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p) {
  const ConvGeometry g = backward_data_geometry(dy, w, x_shape, p);
  QNN_ON_CUDA(dy, cuda::conv2d_backward_data(dy, w, x_shape, p));
  Tensor dx(x_shape);
  backward_data(g, dy, w, dx, false);
  return dx;
}

void conv2d_backward_data_add(const Tensor& dy, const Tensor& w, Tensor& dx, ConvParams p) {
  const ConvGeometry g = backward_data_geometry(dy, w, dx.shape(), p);
  QNN_CHECK(dx.device() == dy.device(), "dx on ", device_name(dx.device()), ", dy on ",
            device_name(dy.device()));
  if (dy.is_cuda() || !backward_data(g, dy, w, dx, true))
    add_into(dx, conv2d_backward_data(dy, w, dx.shape(), p));
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), dw.shape(), p);
  QNN_CHECK(dy.shape() == Shape({g.n, g.o, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.o, g.ho, g.wo}));
  QNN_CHECK(!db.defined() || db.numel() == g.o, "bias gradient ", shape_str(db.shape()), " for ", g.o,
            " output channels");
  QNN_ON_CUDA(x, cuda::conv2d_backward_weight(x, dy, dw, db, p));
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  // partial[t] holds thread t's dw^T [K x O] (gemm tiles) or dw [O x K] (shifted planes), then its
  // bias sums [O].
  const int64_t part = g.k() * g.o + g.o;
  // Not initialised here: each thread zeroes its own part (in parallel, and without a serial
  // memset of what is 19 MB for a 512-channel 3x3 layer on two threads).
  std::unique_ptr<float[]> partial(new float[static_cast<size_t>(threads * part)]);
  auto zero_parts = [&](int t, int team) {
    for (int u = t; u < threads; u += team) std::fill(partial.get() + u * part, partial.get() + (u + 1) * part, 0.0f);
  };
  const bool direct = g.kh == 1 && g.kw == 1 && g.stride == 1 && g.pad == 0;
  // Shifted planes need enough pixels per image to amortise the lane sums (measured: faster
  // from 16x16 outputs up, slower at 8x8, where im2col and the gemm tiles win; 1x1 stride-1
  // layers give the tiles x_n itself). 1x1 layers that widen (ImageNet bottlenecks' expansions and shortcuts): the gemm tiles
  // would read dy transposed with a stride of O floats, which at 256 to 2048 channels thrashes
  // the caches (measured 3-4x slower than dot products over x's own rows); those that narrow
  // keep the tiles where they measured faster, and so do 7x7 maps, where 49 pixels fill the dot
  // products' vectors poorly and the grouped tiles below measured faster. Only ImageNet widths
  // (128 output channels and up) switch: CIFAR-width 1x1 layers (at most 64, as in option-B
  // shortcuts) keep their path, bit for bit.
  const bool pointwise_wide = g.kh == 1 && g.kw == 1 && g.p() >= 64 && g.o >= 128 &&
                              (g.o >= g.k() || (2 * g.o >= g.k() && g.p() >= 256));
  const bool shifted = (!direct && g.p() >= 256) || pointwise_wide;
  // Wide layers on small maps (ImageNet's 7x7 and 14x14 stages, the strided 1x1 shortcuts): per
  // image, each tile of the K x O partial would be loaded and stored after only P FMAs per
  // element, and the partial (9 MB for 512 x 4608) streamed from memory once per image. Images
  // are then grouped side by side into one product of reduction length ~512 or more. This sums
  // each group in one FMA chain before adding it to the partial, where the per-image path adds
  // image by image: rounding differs, so it is kept to partials of at least kGroupedPartial
  // floats, which no CIFAR ResNet-20 layer reaches (its largest is 64 x 576).
  const bool grouped = !shifted && (direct ? g.p() < 512 : true) && g.k() * g.o >= kGroupedPartial;
  if (grouped) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), team = omp_get_num_threads();
      int64_t begin, end;
      thread_range(g.n, t, team, begin, end);
      // The first group stores its product rather than adding it, so the gradient part needs
      // zeros only where no group will store (a thread without images, or one past the team).
      for (int u = t; u < threads; u += team) {
        float* part_u = partial.get() + u * part;
        std::fill(u == t && begin < end ? part_u + g.k() * g.o : part_u, part_u + part, 0.0f);
      }
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
            for (int64_t q = 0; q < g.p(); ++q) dyt[panel_index(i * g.p() + q, o, len, g.o)] = dyn[o * g.p() + q];
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
      float* bias_sum = partial.get() + t * part + g.k() * g.o;
      for (int64_t n = begin; n < end; ++n)
        for (int64_t o = 0; o < g.o; ++o) {
          const float* row = dy.data() + n * g.image_out() + o * g.p();
          float s = 0.0f;
          for (int64_t q = 0; q < g.p(); ++q) s += row[q];
          bias_sum[o] += s;
        }
    }
  }
  // Fixed summation order over threads: the result does not depend on scheduling. Every element
  // adds the threads' partials in thread order, whichever thread does the adding, so large
  // gradients are summed by all threads, a range of output channels each.
  float* dwp = dw.data();
  // The transposed partials (gemm tiles) are read in blocks of 16 channels by 256 taps: the 256
  // cache lines of a block stay in L1 while its 16 rows of dw are written.
  constexpr int64_t OB = 16, KB = 256;
#pragma omp parallel for schedule(static) num_threads(threads) if (g.o * g.k() >= kParallelPack)
  for (int64_t ob = 0; ob < g.o; ob += OB) {
    const int64_t oe = std::min(g.o, ob + OB);
    for (int64_t kb = 0; kb < g.k(); kb += KB) {
      const int64_t ke = std::min(g.k(), kb + KB);
      for (int t = 0; t < threads; ++t) {
        const float* mine = partial.get() + t * part;
        for (int64_t o = ob; o < oe; ++o) {
          float* row = dwp + o * g.k();
          if (!shifted)
            for (int64_t kk = kb; kk < ke; ++kk) row[kk] += mine[kk * g.o + o];
          else
            for (int64_t kk = kb; kk < ke; ++kk) row[kk] += mine[o * g.k() + kk];
        }
      }
    }
  }
  if (db.defined())
    for (int t = 0; t < threads; ++t)
      for (int64_t o = 0; o < g.o; ++o) db.data()[o] += partial[t * part + g.k() * g.o + o];
}

}  // namespace qnn
