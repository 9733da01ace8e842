// CPU convolution (see tensor/conv.h): per image, im2col then one sgemm; images in parallel.
// For image n, with K = C*KH*KW and P = Ho*Wo:
//   forward          y_n[O x P]  = w[O x K] * col_n[K x P]
//   backward data    col[K x P]  = w^T[K x O] * dy_n[O x P], then col2im adds into dx_n
//   backward weight  dw[O x K]  += dy_n[O x P] * col_n^T[P x K]   (per-thread partial sums)
#include "tensor/conv.h"

#include <omp.h>

#include <cstring>
#include <vector>

#include "tensor/gemm.h"

namespace qnn {

namespace {

struct Geometry {
  int64_t n, c, h, w, o, kh, kw, ho, wo;
  int stride, pad;
  int64_t k() const { return c * kh * kw; }
  int64_t p() const { return ho * wo; }
};

Geometry geometry(const Shape& x, const Shape& w, ConvParams p) {
  QNN_CHECK(x.size() == 4 && w.size() == 4, "input ", shape_str(x), " and weight ", shape_str(w),
            " must both be 4-D (NCHW, OIHW)");
  QNN_CHECK(x[1] == w[1], "input ", shape_str(x), " has ", x[1], " channels, weight ", shape_str(w),
            " expects ", w[1]);
  QNN_CHECK(p.stride >= 1 && p.padding >= 0, "stride ", p.stride, " padding ", p.padding);
  Geometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p.stride, p.padding};
  g.ho = conv_out_size(g.h, g.kh, p);
  g.wo = conv_out_size(g.w, g.kw, p);
  QNN_CHECK(g.ho > 0 && g.wo > 0, "kernel ", shape_str(w), " larger than padded input ", shape_str(x));
  return g;
}

// col[(c*KH + u)*KW + v][i*Wo + j] = x[c][i*s + u - pad][j*s + v - pad] (0 outside).
void im2col(const Geometry& g, const float* x, float* col) {
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        float* row = col + ((c * g.kh + u) * g.kw + v) * g.p();
        for (int64_t i = 0; i < g.ho; ++i) {
          const int64_t y = i * g.stride + u - g.pad;
          float* out = row + i * g.wo;
          if (y < 0 || y >= g.h) {
            std::memset(out, 0, g.wo * sizeof(float));
            continue;
          }
          const float* in = x + (c * g.h + y) * g.w;
          for (int64_t j = 0; j < g.wo; ++j) {
            const int64_t xx = j * g.stride + v - g.pad;
            out[j] = (xx >= 0 && xx < g.w) ? in[xx] : 0.0f;
          }
        }
      }
}

// The adjoint of im2col: adds each column entry back to the pixel it was read from.
void col2im(const Geometry& g, const float* col, float* x) {
  std::memset(x, 0, g.c * g.h * g.w * sizeof(float));
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t u = 0; u < g.kh; ++u)
      for (int64_t v = 0; v < g.kw; ++v) {
        const float* row = col + ((c * g.kh + u) * g.kw + v) * g.p();
        for (int64_t i = 0; i < g.ho; ++i) {
          const int64_t y = i * g.stride + u - g.pad;
          if (y < 0 || y >= g.h) continue;
          float* out = x + (c * g.h + y) * g.w;
          for (int64_t j = 0; j < g.wo; ++j) {
            const int64_t xx = j * g.stride + v - g.pad;
            if (xx >= 0 && xx < g.w) out[xx] += row[i * g.wo + j];
          }
        }
      }
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, ConvParams p) {
  const Geometry g = geometry(x.shape(), w.shape(), p);
  QNN_CHECK(!bias.defined() || bias.numel() == g.o, "bias ", shape_str(bias.shape()), " for ", g.o,
            " output channels");
  Tensor y({g.n, g.o, g.ho, g.wo});
  const float* xp = x.data();
  const float* wp = w.data();
  float* yp = y.data();
#pragma omp parallel
  {
    std::vector<float> col(g.k() * g.p());
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.n; ++n) {
      im2col(g, xp + n * g.c * g.h * g.w, col.data());
      float* yn = yp + n * g.o * g.p();
      sgemm(false, false, g.o, g.p(), g.k(), 1.0f, wp, g.k(), col.data(), g.p(), 0.0f, yn, g.p());
      if (bias.defined())
        for (int64_t o = 0; o < g.o; ++o)
          for (int64_t q = 0; q < g.p(); ++q) yn[o * g.p() + q] += bias.data()[o];
    }
  }
  return y;
}

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, ConvParams p) {
  const Geometry g = geometry(x_shape, w.shape(), p);
  QNN_CHECK(dy.shape() == Shape({g.n, g.o, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.o, g.ho, g.wo}));
  Tensor dx(x_shape);
#pragma omp parallel
  {
    std::vector<float> col(g.k() * g.p());
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.n; ++n) {
      sgemm(true, false, g.k(), g.p(), g.o, 1.0f, w.data(), g.k(), dy.data() + n * g.o * g.p(), g.p(),
            0.0f, col.data(), g.p());
      col2im(g, col.data(), dx.data() + n * g.c * g.h * g.w);
    }
  }
  return dx;
}

void conv2d_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db, ConvParams p) {
  const Geometry g = geometry(x.shape(), dw.shape(), p);
  QNN_CHECK(dy.shape() == Shape({g.n, g.o, g.ho, g.wo}), "output gradient ", shape_str(dy.shape()),
            " expected ", shape_str({g.n, g.o, g.ho, g.wo}));
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * g.o * g.k(), 0.0f);
  std::vector<float> partial_bias(static_cast<size_t>(threads) * g.o, 0.0f);
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    std::vector<float> col(g.k() * g.p());
    float* mine = partial.data() + static_cast<size_t>(t) * g.o * g.k();
#pragma omp for schedule(static)
    for (int64_t n = 0; n < g.n; ++n) {
      im2col(g, x.data() + n * g.c * g.h * g.w, col.data());
      const float* dyn = dy.data() + n * g.o * g.p();
      sgemm(false, true, g.o, g.k(), g.p(), 1.0f, dyn, g.p(), col.data(), g.p(), 1.0f, mine, g.k());
      if (db.defined())
        for (int64_t o = 0; o < g.o; ++o)
          for (int64_t q = 0; q < g.p(); ++q) partial_bias[t * g.o + o] += dyn[o * g.p() + q];
    }
  }
  // Fixed summation order over threads: the result does not depend on scheduling.
  for (int t = 0; t < threads; ++t) {
    for (int64_t i = 0; i < g.o * g.k(); ++i) dw.data()[i] += partial[static_cast<size_t>(t) * g.o * g.k() + i];
    if (db.defined())
      for (int64_t o = 0; o < g.o; ++o) db.data()[o] += partial_bias[t * g.o + o];
  }
}

}  // namespace qnn
