// CPU batch normalisation: threads over channels, each channel a few passes over its N planes
// (see tensor/batchnorm.h for the formulas).
#include "tensor/batchnorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tensor/device.h"
#include "tensor/elementwise.h"

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

using Epilogue = BatchNormEpilogue;

// Batch norm's per-channel affine map, x * a + b, as one expression wherever it is evaluated:
// backward recomputes the ReLU's mask from it and must get the very floats forward compared
// (the compiler contracts it into the same fused multiply-add in both places).
inline float affine(float x, float a, float b) { return x * a + b; }

// A channel's planes lie C planes apart, so each pass over a channel is a run of short reads and
// writes in different pages, where the hardware prefetcher (which stays within a 4 KB page) starts
// cold on every plane. Each loop over the images asks for the next image's plane of every tensor
// it reads (Write = 0) or writes (Write = 1, so that the line arrives ready to be written) while
// it works on the current one (reads and writes each took a few percent off the ResNet-20
// training step: docs/cpu-training-step.md).
template <int Write = 0>
inline void prefetch_plane(const Layout& l, const float* base, int64_t img, int64_t c) {
  if (!base || img + 1 >= l.n) return;
  const float* p = base + l.at(img + 1, c);
  for (int64_t i = 0; i < l.inner; i += 16) __builtin_prefetch(p + i, Write);
}

// ReLU that keeps NaN, as tensor/elementwise.h's relu does.
inline float relu_keep_nan(float v) { return v > 0.0f || v != v ? v : 0.0f; }

// relu_backward's rule: the gradient g where the ReLU output y is positive, else 0 (+0.0f), as
// a bit mask rather than a select: GCC leaves a select feeding the double sums unvectorised.
inline float relu_mask(float g, float y) {
  uint32_t bits;
  std::memcpy(&bits, &g, sizeof bits);
  bits &= y > 0.0f ? 0xffffffffu : 0u;
  std::memcpy(&g, &bits, sizeof bits);
  return g;
}

// y = epilogue(x * a_c + b_c [+ residual]) over every plane of channel c.
template <Epilogue E>
void affine_channel(const Layout& l, const float* x, const float* residual, float* y, int64_t c,
                    float a, float b) {
  for (int64_t img = 0; img < l.n; ++img) {
    prefetch_plane(l, x, img, c);
    prefetch_plane(l, residual, img, c);
    prefetch_plane<1>(l, y, img, c);
    const float* xp = x + l.at(img, c);
    float* yp = y + l.at(img, c);
    if constexpr (E == Epilogue::none) {
#pragma omp simd
      for (int64_t i = 0; i < l.inner; ++i) yp[i] = affine(xp[i], a, b);
    } else if constexpr (E == Epilogue::relu) {
#pragma omp simd
      for (int64_t i = 0; i < l.inner; ++i) yp[i] = relu_keep_nan(affine(xp[i], a, b));
    } else {
      const float* rp = residual + l.at(img, c);
#pragma omp simd
      for (int64_t i = 0; i < l.inner; ++i) {
        const float v = affine(xp[i], a, b);  // rounded as batch_norm's output, then added
        yp[i] = relu_keep_nan(v + rp[i]);
      }
    }
  }
}

}  // namespace

namespace {

// save_affine, where given, receives the per-channel map that was applied: [2, C], the scales a
// then the shifts b of y = affine(x, a, b).
Tensor affine_for(const Layout& l, Tensor* save_affine) {
  if (save_affine) *save_affine = Tensor({2, l.c});
  return save_affine ? *save_affine : Tensor();
}

// The CPU forward in training mode: statistics, running-statistics update, then y with the
// epilogue E applied as it is written (residual: x's shape, read only by add_relu).
template <Epilogue E>
Tensor forward_training(const Layout& l, const Tensor& x, const Tensor& residual, const Tensor& gamma,
                        const Tensor& beta, Tensor& running_mean, Tensor& running_var,
                        float momentum, float eps, Tensor& save_mean, Tensor& save_invstd,
                        Tensor* save_affine) {
  const int64_t m = l.count();
  Tensor y(x.shape(), x.device());
  save_mean = Tensor({l.c}, x.device());
  save_invstd = Tensor({l.c}, x.device());
  const float* px = x.data();
  const float* pr = residual.defined() ? residual.data() : nullptr;
  float* py = y.data();
  Tensor applied = affine_for(l, save_affine);
  float* pa = applied.defined() ? applied.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    // One pass: sums of (x - shift) and its square, shift = a value of this channel.
    const double shift = px[l.at(0, c)];
    double s = 0.0, ss = 0.0;
    for (int64_t img = 0; img < l.n; ++img) {
      prefetch_plane(l, px, img, c);
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
    const float af = static_cast<float>(a), bf = static_cast<float>(beta.data()[c] - mean * a);
    if (pa) pa[c] = af, pa[l.c + c] = bf;
    affine_channel<E>(l, px, pr, py, c, af, bf);
  }
  return y;
}

template <Epilogue E>
Tensor forward_eval(const Layout& l, const Tensor& x, const Tensor& residual, const Tensor& gamma,
                    const Tensor& beta, const Tensor& running_mean, const Tensor& running_var,
                    float eps, Tensor* save_affine) {
  Tensor y(x.shape(), x.device());
  const float* pr = residual.defined() ? residual.data() : nullptr;
  Tensor applied = affine_for(l, save_affine);
  float* pa = applied.defined() ? applied.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[c]) + eps);
    const double a = gamma.data()[c] * invstd;
    const double b = beta.data()[c] - running_mean.data()[c] * a;
    const float af = static_cast<float>(a), bf = static_cast<float>(b);
    if (pa) pa[c] = af, pa[l.c + c] = bf;
    affine_channel<E>(l, x.data(), pr, y.data(), c, af, bf);
  }
  return y;
}

// The fused epilogue asked for: ReLU alone, or residual then ReLU.
Epilogue relu_epilogue(const char* op, const Tensor& x, const Tensor& residual) {
  if (!residual.defined()) return Epilogue::relu;
  if (residual.shape() != x.shape() || residual.device() != x.device())
    throw Error(str("[", op, "] residual ", shape_str(residual.shape()), " on ",
                    device_name(residual.device()), " must match x ", shape_str(x.shape()), " on ",
                    device_name(x.device())));
  return Epilogue::add_relu;
}

}  // namespace

Tensor batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   Tensor& running_mean, Tensor& running_var, float momentum,
                                   float eps, Tensor& save_mean, Tensor& save_invstd,
                                   Tensor* batches_tracked) {
  const Layout l = layout("batch_norm", x, gamma, beta);
  check_stats("batch_norm", l, running_mean, running_var);
  QNN_CHECK(l.count() > 1, "training needs more than one value per channel, x is ", shape_str(x.shape()));
  QNN_ON_CUDA(x, cuda::batch_norm_forward_training(x, Tensor(), Epilogue::none, gamma, beta, running_mean,
                                                   running_var, momentum, eps, save_mean, save_invstd,
                                                   nullptr, batches_tracked));
  if (batches_tracked) add_scalar(*batches_tracked, 1.0f);
  return forward_training<Epilogue::none>(l, x, Tensor(), gamma, beta, running_mean, running_var,
                                          momentum, eps, save_mean, save_invstd, nullptr);
}

Tensor batch_norm_relu_forward_training(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                        const Tensor& beta, Tensor& running_mean,
                                        Tensor& running_var, float momentum, float eps,
                                        Tensor& save_mean, Tensor& save_invstd, Tensor* save_affine,
                                        Tensor* batches_tracked) {
  const Layout l = layout("batch_norm_relu", x, gamma, beta);
  check_stats("batch_norm_relu", l, running_mean, running_var);
  QNN_CHECK(l.count() > 1, "training needs more than one value per channel, x is ", shape_str(x.shape()));
  const Epilogue e = relu_epilogue("batch_norm_relu", x, residual);
  if (save_affine) *save_affine = Tensor();
  QNN_ON_CUDA(x, cuda::batch_norm_forward_training(x, residual, e, gamma, beta, running_mean, running_var,
                                                   momentum, eps, save_mean, save_invstd, save_affine,
                                                   batches_tracked));
  if (batches_tracked) add_scalar(*batches_tracked, 1.0f);
  if (e == Epilogue::relu)
    return forward_training<Epilogue::relu>(l, x, residual, gamma, beta, running_mean, running_var,
                                            momentum, eps, save_mean, save_invstd, save_affine);
  return forward_training<Epilogue::add_relu>(l, x, residual, gamma, beta, running_mean, running_var,
                                              momentum, eps, save_mean, save_invstd, save_affine);
}

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               const Tensor& running_mean, const Tensor& running_var, float eps) {
  const Layout l = layout("batch_norm", x, gamma, beta);
  check_stats("batch_norm", l, running_mean, running_var);
  QNN_ON_CUDA(x, cuda::batch_norm_forward_eval(x, Tensor(), Epilogue::none, gamma, beta, running_mean,
                                               running_var, eps, nullptr));
  return forward_eval<Epilogue::none>(l, x, Tensor(), gamma, beta, running_mean, running_var, eps, nullptr);
}

Tensor batch_norm_relu_forward_eval(const Tensor& x, const Tensor& residual, const Tensor& gamma,
                                    const Tensor& beta, const Tensor& running_mean,
                                    const Tensor& running_var, float eps, Tensor* save_affine) {
  const Layout l = layout("batch_norm_relu", x, gamma, beta);
  check_stats("batch_norm_relu", l, running_mean, running_var);
  const Epilogue e = relu_epilogue("batch_norm_relu", x, residual);
  if (save_affine) *save_affine = Tensor();
  QNN_ON_CUDA(x, cuda::batch_norm_forward_eval(x, residual, e, gamma, beta, running_mean, running_var, eps,
                                               save_affine));
  if (e == Epilogue::relu)
    return forward_eval<Epilogue::relu>(l, x, residual, gamma, beta, running_mean, running_var, eps,
                                        save_affine);
  return forward_eval<Epilogue::add_relu>(l, x, residual, gamma, beta, running_mean, running_var, eps,
                                          save_affine);
}

namespace {

// How the CPU backward reads dy (tensor/batchnorm.h): by_affine recomputes the ReLU's input
// affine(x, a, b), which is y before the ReLU (relu(bn(x)) without a residual), so that y is never
// read; by_output_kept writes the masked gradient out in pass 1 and reads it back in pass 2.
using Mask = BatchNormMask;

template <Mask M>
BatchNormGrads backward(const Layout& l, const Tensor& dy, const Tensor& y, const Tensor& x,
                        const Tensor& gamma, const Tensor& mean, const Tensor& invstd,
                        const Tensor& applied, bool training, bool need_dx,
                        const BatchNormGradTargets& into) {
  constexpr bool reads_y = M == Mask::by_output || M == Mask::by_output_kept;
  const int64_t m = l.count();
  BatchNormGrads g;
  g.dgamma = into.dgamma.defined() ? into.dgamma : Tensor({l.c}, x.device());
  g.dbeta = into.dbeta.defined() ? into.dbeta : Tensor({l.c}, x.device());
  const bool add_dgamma = into.dgamma.defined(), add_dbeta = into.dbeta.defined();
  if (need_dx) g.dx = Tensor(x.shape(), x.device());
  if (M == Mask::by_output_kept) g.dy_masked = Tensor(x.shape(), x.device());
  const float* px = x.data();
  const float* pdy = dy.data();
  const float* py = reads_y ? y.data() : nullptr;
  float* pkeep = M == Mask::by_output_kept ? g.dy_masked.data() : nullptr;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < l.c; ++c) {
    const float mu = mean.data()[c];
    const float is = invstd.data()[c];
    const float a = M == Mask::by_affine ? applied.data()[c] : 0.0f;
    const float b = M == Mask::by_affine ? applied.data()[l.c + c] : 0.0f;
    // Pass 1: sum dy and sum dy * (x - mean).
    double s_dy = 0.0, s_dyx = 0.0;
    for (int64_t img = 0; img < l.n; ++img) {
      prefetch_plane(l, px, img, c);
      prefetch_plane(l, pdy, img, c);
      prefetch_plane(l, py, img, c);
      prefetch_plane<1>(l, pkeep, img, c);
      const float* xp = px + l.at(img, c);
      const float* gp = pdy + l.at(img, c);
      const float* yp = reads_y ? py + l.at(img, c) : nullptr;
      float* kp = M == Mask::by_output_kept ? pkeep + l.at(img, c) : nullptr;
#pragma omp simd reduction(+ : s_dy, s_dyx)
      for (int64_t i = 0; i < l.inner; ++i) {
        const float gi = M == Mask::none        ? gp[i]
                         : M == Mask::by_affine ? relu_mask(gp[i], affine(xp[i], a, b))
                                                : relu_mask(gp[i], yp[i]);
        if constexpr (M == Mask::by_output_kept) kp[i] = gi;
        s_dy += gi;
        s_dyx += static_cast<double>(gi) * (xp[i] - mu);
      }
    }
    const double dbeta = s_dy, dgamma = s_dyx * is;
    float& db = g.dbeta.data()[c];
    float& dg = g.dgamma.data()[c];
    db = add_dbeta ? db + static_cast<float>(dbeta) : static_cast<float>(dbeta);  // as add_into rounds
    dg = add_dgamma ? dg + static_cast<float>(dgamma) : static_cast<float>(dgamma);
    if (!need_dx) continue;
    // Pass 2: dx = k * (dy - c1 - (x - mean) * c2), with the batch terms only in training.
    const float k = static_cast<float>(gamma.data()[c] * static_cast<double>(is));
    const float c1 = training ? static_cast<float>(dbeta / m) : 0.0f;
    const float c2 = training ? static_cast<float>(dgamma * is / m) : 0.0f;
    for (int64_t img = 0; img < l.n; ++img) {
      prefetch_plane(l, px, img, c);
      prefetch_plane(l, M == Mask::by_output_kept ? pkeep : pdy, img, c);
      prefetch_plane(l, M == Mask::by_output ? py : nullptr, img, c);
      prefetch_plane<1>(l, g.dx.data(), img, c);
      const float* xp = px + l.at(img, c);
      // The masked gradient where pass 1 kept it, else dy (masked below when M is by_output or
      // by_affine).
      const float* gp = (M == Mask::by_output_kept ? pkeep : pdy) + l.at(img, c);
      const float* yp = M == Mask::by_output ? py + l.at(img, c) : nullptr;
      float* dxp = g.dx.data() + l.at(img, c);
#pragma omp simd
      for (int64_t i = 0; i < l.inner; ++i) {
        const float gi = M == Mask::by_output   ? relu_mask(gp[i], yp[i])
                         : M == Mask::by_affine ? relu_mask(gp[i], affine(xp[i], a, b))
                                                : gp[i];
        dxp[i] = k * (gi - c1 - (xp[i] - mu) * c2);
      }
    }
  }
  return g;
}

// The gradient targets must be [C] on x's device.
void check_targets(const char* op, const Layout& l, const Tensor& x, const BatchNormGradTargets& into) {
  for (const Tensor* t : {&into.dgamma, &into.dbeta})
    if (t->defined() && (t->numel() != l.c || t->device() != x.device()))
      throw Error(str("[", op, "] a gradient target must be [", l.c, "] on ", device_name(x.device()), ", got ",
                      shape_str(t->shape()), " on ", device_name(t->device())));
}

}  // namespace

BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, bool training,
                                   bool need_dx, const BatchNormGradTargets& into) {
  const Layout l = layout("batch_norm_backward", x, gamma, gamma);
  check_stats("batch_norm_backward", l, mean, invstd);
  QNN_CHECK(dy.shape() == x.shape(), "output gradient ", shape_str(dy.shape()), " for x ",
            shape_str(x.shape()));
  check_targets("batch_norm_backward", l, x, into);
  QNN_ON_CUDA(x, cuda::batch_norm_backward(dy, Tensor(), x, gamma, mean, invstd, Tensor(), Mask::none, training,
                                           need_dx, into));
  return backward<Mask::none>(l, dy, Tensor(), x, gamma, mean, invstd, Tensor(), training, need_dx, into);
}

BatchNormGrads batch_norm_relu_backward(const Tensor& dy, const Tensor& y, const Tensor& x,
                                        const Tensor& gamma, const Tensor& mean,
                                        const Tensor& invstd, bool training, bool need_dx,
                                        bool keep_masked, const Tensor& affine,
                                        const BatchNormGradTargets& into) {
  const char* op = "batch_norm_relu_backward";
  const Layout l = layout(op, x, gamma, gamma);
  check_stats(op, l, mean, invstd);
  QNN_CHECK(dy.shape() == x.shape() && y.shape() == x.shape(), "output gradient ",
            shape_str(dy.shape()), " and output ", shape_str(y.shape()), " for x ", shape_str(x.shape()));
  check_targets(op, l, x, into);
  const Mask mask = keep_masked ? Mask::by_output_kept : affine.defined() ? Mask::by_affine : Mask::by_output;
  if (mask == Mask::by_affine)
    QNN_CHECK(affine.shape() == Shape({2, l.c}) && affine.device() == x.device(),
              "the applied affine map must be [2, ", l.c, "] on ", device_name(x.device()), ", got ",
              shape_str(affine.shape()), " on ", device_name(affine.device()));
  QNN_ON_CUDA(x, cuda::batch_norm_backward(dy, y, x, gamma, mean, invstd, affine, mask, training, need_dx, into));
  switch (mask) {
    case Mask::by_output_kept:
      return backward<Mask::by_output_kept>(l, dy, y, x, gamma, mean, invstd, Tensor(), training, need_dx, into);
    case Mask::by_affine:
      return backward<Mask::by_affine>(l, dy, y, x, gamma, mean, invstd, affine, training, need_dx, into);
    default:
      return backward<Mask::by_output>(l, dy, y, x, gamma, mean, invstd, Tensor(), training, need_dx, into);
  }
}

}  // namespace qnn
