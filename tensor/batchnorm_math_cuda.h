// The per-value and per-channel arithmetic of the CUDA batch norm (tensor/batchnorm.cu): what its
// kernels read and write, the affine map and the ReLU masks, and the finalization of each
// channel's sums into statistics and gradients, written once for the NCHW and the channels-last
// kernels. Only the CUDA batch norm's kernels (tensor/batchnorm_kernels_cuda.h) include this.
//
// T is the stored element type of the activations (x, residual, y, dy, dx and the kept masked
// gradient): float, or uint16_t holding bf16 bits (tensor/bf16.h). Values of type T are widened
// to float when read (load, to_float) and rounded once when stored; everything per channel (gamma,
// beta, statistics, coefficients, dgamma, dbeta) is float, every sum double, whatever T is.
#pragma once
#include <cstdint>

#include "tensor/batchnorm.h"
#include "tensor/channel_sums_cuda.h"
#include "tensor/exact_math.h"

namespace qnn::cuda {

struct StatsOut {
  const float* gamma;
  const float* beta;
  float momentum, eps;
  float *running_mean, *running_var, *save_mean, *save_invstd;
  float* coef;             // [2, C]: a then b
  float* batches_tracked;  // may be null
};

// Forward 1's end, in the grid's last block: channel ch's statistics from its sums of d and d^2,
// d = x - x[0, ch, 0] (the CPU's shift), its running statistics and its map.
template <class T>
__device__ inline void finalize_stats(uint32_t ch, double s_total, double ss_total, const T* x,
                                      const ChannelLayout& l, int v, const StatsOut& out) {
  const double m = static_cast<double>(l.count);
  const double first = to_float(x[channel_start(ch, l, v)]);
  const double mean_shifted = s_total / m;
  const double d = ss_total / m - mean_shifted * mean_shifted;
  const double var = d < 0.0 ? 0.0 : d;  // as the CPU's std::max(d, 0.0): a NaN stays NaN (fmax would drop it)
  const double mean = first + mean_shifted;
  const double invstd = 1.0 / sqrt(var + out.eps);
  out.save_mean[ch] = static_cast<float>(mean);
  out.save_invstd[ch] = static_cast<float>(invstd);
  out.running_mean[ch] = static_cast<float>((1.0 - out.momentum) * out.running_mean[ch] + out.momentum * mean);
  out.running_var[ch] =
      static_cast<float>((1.0 - out.momentum) * out.running_var[ch] + out.momentum * var * m / (m - 1));
  const double a = out.gamma[ch] * invstd;
  out.coef[ch] = static_cast<float>(a);
  out.coef[l.c + ch] = static_cast<float>(out.beta[ch] - mean * a);
}

// The map x a + b as one rounding, here and wherever backward recomputes it.
__device__ __forceinline__ float affine(float x, float a, float b) { return fma_rn(x, a, b); }

// ReLU that keeps NaN, as tensor/elementwise.h's relu does.
__device__ __forceinline__ float relu_keep_nan(float v) { return v > 0.0f || v != v ? v : 0.0f; }

// Channel of lane j of the vector whose first channel is c0: c0 + j channels-last, else c0.
__device__ __forceinline__ uint32_t lane_channel(uint32_t c0, int j, const ChannelLayout& l) {
  return l.channels_last ? c0 + j : c0;
}

// The gradient backward reads at one value: dy itself, or dy where the ReLU passed (y > 0, or
// the recomputed ReLU input x a + b > 0), +0 elsewhere.
template <BatchNormMask M>
__device__ __forceinline__ float masked(float dy, float y, float x, float a, float b) {
  if constexpr (M == BatchNormMask::none) return dy;
  if constexpr (M == BatchNormMask::by_affine) return affine(x, a, b) > 0.0f ? dy : 0.0f;
  return y > 0.0f ? dy : 0.0f;
}

template <class T>
struct GradIn {
  const T *dy, *y, *x;         // x's element type; y as the mask needs
  const float *mean, *affine;  // affine as the mask needs
};

template <class T>
struct GradOut {
  const float* gamma;
  const float* invstd;
  bool training;
  float *dgamma, *dbeta;
  bool add_dgamma, add_dbeta;  // add into dgamma / dbeta rather than overwrite
  float* coef;                 // [3, C]: k, c1, c2
  T* kept;                     // by_output_kept: the masked gradient, x's shape and type
};

// Backward 1's end, in the grid's last block: channel ch's dbeta and dgamma (added into the
// targets or stored) and dx's coefficients from its sums of g and g (x - mean).
template <class T>
__device__ inline void finalize_grad(uint32_t ch, double s_dy, double s_dyx, const ChannelLayout& l,
                                     const GradOut<T>& out) {
  const double m = static_cast<double>(l.count);
  const float is = out.invstd[ch];
  const double db = s_dy, dg = s_dyx * is;
  const float dbf = static_cast<float>(db), dgf = static_cast<float>(dg);
  out.dbeta[ch] = out.add_dbeta ? out.dbeta[ch] + dbf : dbf;
  out.dgamma[ch] = out.add_dgamma ? out.dgamma[ch] + dgf : dgf;
  out.coef[ch] = static_cast<float>(out.gamma[ch] * static_cast<double>(is));
  out.coef[l.c + ch] = out.training ? static_cast<float>(db / m) : 0.0f;
  out.coef[2 * l.c + ch] = out.training ? static_cast<float>(dg * is / m) : 0.0f;
}

// The masked gradients of vector `at` (the kept copy written where asked) added to the two sums:
// one pair per lane (A = V, lanes of different channels), or one pair for all (A = 1); mean, a
// and b are the lanes' channels' values. The masked g is dy or +0, so a bf16 kept copy holds it
// exactly.
template <BatchNormMask M, int V, int A, class T>
__device__ __forceinline__ void add_grad_terms(const GradIn<T>& in, uint32_t at, const float (&mu)[V],
                                               const float (&a)[V], const float (&b)[V], T* kept,
                                               double (&sum)[A], double (&sum_x)[A]) {
  Vec<V> g = load<V>(in.dy, at);
  const Vec<V> x = load<V>(in.x, at);
  Vec<V> y{};  // read only where the mask needs it
  if constexpr (M == BatchNormMask::by_output || M == BatchNormMask::by_output_kept) y = load<V>(in.y, at);
  for (int j = 0; j < V; ++j) {
    g.v[j] = masked<M>(g.v[j], y.v[j], x.v[j], a[j], b[j]);
    sum[A == 1 ? 0 : j] += g.v[j];
    sum_x[A == 1 ? 0 : j] += static_cast<double>(g.v[j]) * (x.v[j] - mu[j]);
  }
  if constexpr (M == BatchNormMask::by_output_kept) store<V>(kept, at, g);
}

// The per-channel values the gradient terms of channel c need.
template <BatchNormMask M, class T>
__device__ __forceinline__ void grad_channel(const GradIn<T>& in, uint32_t c, uint32_t channels, float& mu, float& a,
                                             float& b) {
  mu = in.mean[c];
  a = M == BatchNormMask::by_affine ? in.affine[c] : 0.0f;
  b = M == BatchNormMask::by_affine ? in.affine[channels + c] : 0.0f;
}

}  // namespace qnn::cuda
