// CPU convolution, forward and backward data (see tensor/conv.h; the weight gradient is in
// tensor/conv_weight.cpp): each image lowered to a matrix in a per-thread buffer (a zero-padded
// copy of the image, or the cheaper shifted planes of tensor/im2col.h), then the
// register-blocked micro-kernel of tensor/gemm_kernel.h straight on that buffer.
// For image n, with K = C*KH*KW and P = Ho*Wo:
//   forward          y_n[O x P]   = w[O x K] * col_n[K x P]  (+ bias, added as the tile is stored)
//                    with col_n never written out: read from a zero-padded copy of the image
//                    (stride 1, 16x16 and up) or from shifted planes (tensor/im2col.h)
//   backward data    stride 1: dx is itself a stride-1 convolution of dy with the weights flipped
//                    in space and transposed in channels, padding KH-1-pad, so it runs through the
//                    forward path with no col2im;  otherwise col = w^T * dy_n, then col2im
// Images are split into one contiguous range per thread (static) and buffers are thread_local
// and reused across calls, so results do not depend on timing.
// 3x3 layers at stride 1 and padding 1 that keep their width of 16 to 512 channels (most of a
// ResNet's) do not come here, in either precision: they run as Winograd F(4x4, 3x3),
// tensor/winograd.h.
#include "tensor/conv.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv_bf16.h"
#include "tensor/conv_lowering.h"
#include "tensor/device.h"
#include "tensor/elementwise.h"
#include "tensor/gemm_kernel.h"
#include "tensor/im2col.h"
#include "tensor/winograd.h"

namespace qnn {

using namespace conv_lowering;

namespace {

// Reduction block of forward_grouped (see there).
constexpr int64_t kBlockK = 256;

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
  padded_row_offsets(g, g.c, rows.data());
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

}  // namespace

WeightForm conv2d_weight_form(DType images, MemoryFormat images_format) {
  const BackendOptions& o = backend_options();
  const bool krsc = images_format == MemoryFormat::channels_last && o.cudnn && o.krsc_filters;
  return {images, krsc ? MemoryFormat::channels_last : MemoryFormat::contiguous};
}

Tensor conv2d_weight_for([[maybe_unused]] const Tensor& x, const Tensor& w) {
  QNN_ON_CUDA(x, cuda::conv2d_weight_for(x, w));
  return w;
}

void conv2d_backward_weight_into_form(const Tensor& x, const Tensor& dy, Tensor& dw_form, ConvParams p) {
  QNN_ON_CUDA(x, cuda::conv2d_backward_weight_into_form(x, dy, dw_form, p));
  Tensor no_bias;
  conv2d_backward_weight(x, dy, dw_form, no_bias, p);  // the CPU's form is the float32 weight itself
}

// Without a CUDA backend these only refuse (their arguments unused there).
void refresh_weight_forms([[maybe_unused]] const Tensor& values, [[maybe_unused]] const Tensor& segments,
                          [[maybe_unused]] int64_t count, [[maybe_unused]] bool krsc, [[maybe_unused]] Tensor& forms,
                          [[maybe_unused]] Tensor& form_grads) {
  QNN_ON_CUDA(values, cuda::refresh_weight_forms(values, segments, count, krsc, forms, form_grads));
  throw Error("[refresh_weight_forms] weight forms live on the GPU; the parameters are on the CPU");
}

void fold_weight_form_grads([[maybe_unused]] Tensor& grads, [[maybe_unused]] const Tensor& segments,
                            [[maybe_unused]] int64_t count, [[maybe_unused]] bool krsc,
                            [[maybe_unused]] const Tensor& form_grads) {
  QNN_ON_CUDA(grads, cuda::fold_weight_form_grads(grads, segments, count, krsc, form_grads));
  throw Error("[fold_weight_form_grads] weight forms live on the GPU; the gradients are on the CPU");
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const ConvGeometry g = conv_geometry(x.shape(), w.shape(), p);
  QNN_CHECK(!bias.defined() || bias.numel() == g.o, "bias ", shape_str(bias.shape()), " for ", g.o,
            " output channels");
  QNN_ON_CUDA(x, cuda::conv2d_forward(x, w, bias, p));
  Tensor y({g.n, g.o, g.ho, g.wo});
  const float* b = bias.defined() ? bias.data() : nullptr;
  if (g.k() == 0) {  // no input channels: empty sums, the bias alone
    for (int64_t n = 0; n < g.n; ++n)
      for (int64_t o = 0; o < g.o; ++o) std::fill_n(y.data() + (n * g.o + o) * g.p(), g.p(), b ? b[o] : 0.0f);
  } else if (winograd::covers(g)) {
    winograd::forward(g, x.data(), w.data(), false, b, y.data(), false, backend_options().bf16);
  } else if (backend_options().bf16 && conv_bf16::covers(g)) {
    conv_bf16::forward(g, x.data(), w.data(), b, y.data());
  } else if (backend_options().bf16) {
    forward_images(g, round_to_bf16(x).data(), pack_a(round_to_bf16(w).data(), g.k(), 1, g.o, g.k()), b, y.data());
  } else {
    forward_images(g, x.data(), pack_a(w.data(), g.k(), 1, g.o, g.k()), b, y.data());
  }
  return y;
}

namespace {

// dx = conv2d_backward_data(dy, w), or dx += it with `accumulate` (stride-1 path only), in float.
// Returns false, leaving dx alone, when accumulate is asked on the col2im path.
bool backward_data_float(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx,
                         bool accumulate) {
  if (g.stride == 1 && g.kh == g.kw && g.pad <= g.kh - 1) {
    // dx[c, y, x] = sum_{o,u,v} w[o, c, KH-1-u, KW-1-v] * dy[o, y + u - (KH-1-pad), x + v - (KW-1-pad)]
    const ConvGeometry t = conv_geometry({g.n, g.o, g.ho, g.wo}, {g.c, g.o, g.kh, g.kw},
                                         ConvParams{1, static_cast<int>(g.kh - 1 - g.pad)});
    if (g.kh == 1) {  // nothing to flip: A(c, o) = w[o][c], w^T, packed straight from w
      forward_images(t, dy.data(), pack_a(w.data(), 1, g.c, g.c, g.o), nullptr, dx.data(), accumulate);
      return true;
    }
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

// The Winograd layers (in both precisions), else backward_data_float, or with `--precision bf16`
// its bf16 twin (tensor/conv_bf16.h).
bool backward_data(const ConvGeometry& g, const Tensor& dy, const Tensor& w, Tensor& dx, bool accumulate) {
  const bool bf16 = backend_options().bf16;
  if (winograd::covers(g)) {  // stride 1, padding 1, C = O: g is its own transposed geometry
    winograd::forward(g, dy.data(), w.data(), true, nullptr, dx.data(), accumulate, bf16);
    return true;
  }
  if (!bf16) return backward_data_float(g, dy, w, dx, accumulate);
  if (conv_bf16::covers(g)) return conv_bf16::backward_data(g, dy.data(), w.data(), dx.data(), accumulate);
  return backward_data_float(g, round_to_bf16(dy), round_to_bf16(w), dx, accumulate);
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
  QNN_ON_CUDA(dy, cuda::conv2d_backward_data_add(dy, w, dx, p));
  if (!backward_data(g, dy, w, dx, true)) add_into(dx, conv2d_backward_data(dy, w, dx.shape(), p));
}

}  // namespace qnn
