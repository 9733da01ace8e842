// CPU batch normalisation: threads over channels, each channel a few passes over its N planes
// (see tensor/batchnorm.h for the formulas).
#include "tensor/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "tensor/device.h"

namespace qnn {

namespace {

// x viewed as [N, C, inner]: inner = H*W for images, 1 for [N, C].
struct Layout {
  int64_t n, c, inner;
  int64_t count() const { return n * inner; }  // M, values per channel
  int64_t at(int64_t img, int64_t ch) const { return (img * c + ch) * inner; }
};

Layout layout(const char* op, const Tensor& x, const Tensor& gamma, const Tensor& beta) {
  if (x.dim() != 4 && x.dim() != 2)
    throw Error(str("[", op, "] expected x of shape [N, C, H, W] or [N, C], got ", shape_str(x.shape())));
  const Layout l{x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1};
  const Shape per_channel{l.c};
  if (gamma.shape() != per_channel || beta.shape() != per_channel)
    throw Error(str("[", op, "] x ", shape_str(x.shape()), " has ", l.c,
                    " channels: gamma and beta must be [", l.c, "], got ", shape_str(gamma.shape()),
                    " and ", shape_str(beta.shape())));
  return l;
}

void check_stats(const char* op, const Layout& l, const Tensor& mean, const Tensor& var) {
  const Shape per_channel{l.c};
  if (mean.shape() != per_channel || var.shape() != per_channel)
    throw Error(str("[", op, "] statistics must be [", l.c, "], got ", shape_str(mean.shape()),
                    " and ", shape_str(var.shape())));
}

// y = x * a_c + b_c over every plane of channel c.
void affine_channel(const Layout& l, const float* x, float* y, int64_t c, float a, float b) {
  for (int64_t img = 0; img < l.n; ++img) {
    const float* xp = x + l.at(img, c);
    float* yp = y + l.at(img, c);
#pragma omp simd
    for (int64_t i = 0; i < l.inner; ++i) yp[i] = xp[i] * a + b;
  }
}

}  // namespace

Tensor batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   Tensor& running_mean, Tensor& running_var, float momentum,
                                   float eps, Tensor& save_mean, Tensor& save_invstd) {
  const Layout l = layout("batch_norm", x, gamma, beta);
  check_stats("batch_norm", l, running_mean, running_var);
  const int64_t m = l.count();
  QNN_CHECK(m > 1, "training needs more than one value per channel, x is ", shape_str(x.shape()));
  QNN_ON_CUDA(x, cuda::batch_norm_forward_training(x, gamma, beta, running_mean, running_var, momentum,
                                                   eps, save_mean, save_invstd));
  Tensor y(x.shape(), x.device());
  save_mean = Tensor({l.c}, x.device());
  save_invstd = Tensor({l.c}, x.device());
  const float* px = x.data();
  float* py = y.data();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    // One pass: sums of (x - shift) and its square, shift = a value of this channel.
    const double shift = px[l.at(0, c)];
    double s = 0.0, ss = 0.0;
    for (int64_t img = 0; img < l.n; ++img) {
      const float* xp = px + l.at(img, c);
#pragma omp simd reduction(+ : s, ss)
      for (int64_t i = 0; i < l.inner; ++i) {
        const double d = xp[i] - shift;
        s += d;
        ss += d * d;
      }
    }
    const double mean_shifted = s / m;
    const double var = std::max(ss / m - mean_shifted * mean_shifted, 0.0);
    const double mean = shift + mean_shifted;
    const double invstd = 1.0 / std::sqrt(var + eps);
    save_mean.data()[c] = static_cast<float>(mean);
    save_invstd.data()[c] = static_cast<float>(invstd);
    float& rm = running_mean.data()[c];
    float& rv = running_var.data()[c];
    rm = static_cast<float>((1.0 - momentum) * rm + momentum * mean);
    rv = static_cast<float>((1.0 - momentum) * rv + momentum * var * m / (m - 1));
    const double a = gamma.data()[c] * invstd;
    affine_channel(l, px, py, c, static_cast<float>(a), static_cast<float>(beta.data()[c] - mean * a));
  }
  return y;
}

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               const Tensor& running_mean, const Tensor& running_var, float eps) {
  const Layout l = layout("batch_norm", x, gamma, beta);
  check_stats("batch_norm", l, running_mean, running_var);
  QNN_ON_CUDA(x, cuda::batch_norm_forward_eval(x, gamma, beta, running_mean, running_var, eps));
  Tensor y(x.shape(), x.device());
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[c]) + eps);
    const double a = gamma.data()[c] * invstd;
    const double b = beta.data()[c] - running_mean.data()[c] * a;
    affine_channel(l, x.data(), y.data(), c, static_cast<float>(a), static_cast<float>(b));
  }
  return y;
}

BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, bool training,
                                   bool need_dx) {
  const Layout l = layout("batch_norm_backward", x, gamma, gamma);
  check_stats("batch_norm_backward", l, mean, invstd);
  QNN_CHECK(dy.shape() == x.shape(), "output gradient ", shape_str(dy.shape()), " for x ",
            shape_str(x.shape()));
  QNN_ON_CUDA(x, cuda::batch_norm_backward(dy, x, gamma, mean, invstd, training, need_dx));
  const int64_t m = l.count();
  BatchNormGrads g;
  g.dgamma = Tensor({l.c}, x.device());
  g.dbeta = Tensor({l.c}, x.device());
  if (need_dx) g.dx = Tensor(x.shape(), x.device());
  const float* px = x.data();
  const float* pdy = dy.data();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    const float mu = mean.data()[c];
    const float is = invstd.data()[c];
    // Pass 1: sum dy and sum dy * (x - mean).
    double s_dy = 0.0, s_dyx = 0.0;
    for (int64_t img = 0; img < l.n; ++img) {
      const float* xp = px + l.at(img, c);
      const float* gp = pdy + l.at(img, c);
#pragma omp simd reduction(+ : s_dy, s_dyx)
      for (int64_t i = 0; i < l.inner; ++i) {
        s_dy += gp[i];
        s_dyx += static_cast<double>(gp[i]) * (xp[i] - mu);
      }
    }
    const double dbeta = s_dy, dgamma = s_dyx * is;
    g.dbeta.data()[c] = static_cast<float>(dbeta);
    g.dgamma.data()[c] = static_cast<float>(dgamma);
    if (!need_dx) continue;
    // Pass 2: dx = k * (dy - c1 - (x - mean) * c2), with the batch terms only in training.
    const float k = static_cast<float>(gamma.data()[c] * static_cast<double>(is));
    const float c1 = training ? static_cast<float>(dbeta / m) : 0.0f;
    const float c2 = training ? static_cast<float>(dgamma * is / m) : 0.0f;
    for (int64_t img = 0; img < l.n; ++img) {
      const float* xp = px + l.at(img, c);
      const float* gp = pdy + l.at(img, c);
      float* dxp = g.dx.data() + l.at(img, c);
#pragma omp simd
      for (int64_t i = 0; i < l.inner; ++i) dxp[i] = k * (gp[i] - c1 - (xp[i] - mu) * c2);
    }
  }
  return g;
}

}  // namespace qnn
