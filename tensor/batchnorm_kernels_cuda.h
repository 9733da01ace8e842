// The kernels of the CUDA batch norm (tensor/batchnorm.cu launches them; only it includes this):
// forward statistics and apply, evaluation coefficients, backward sums and dx, each in an NCHW
// form and, for the sums, a channels-last form (tensor/channel_sums_cuda.h).
//
// Every kernel that streams activations is templated on their stored element type T (float, or
// uint16_t holding bf16 bits) and on the vector width V (4 or 1). load<V> reads V values of type
// T widened to float (one 16-byte load of 4 floats, one 8-byte load of 4 bf16), store<V> writes V
// floats rounded to T (tensor/bf16.h's bf16_bits: to nearest, ties to even). Between the two the
// arithmetic is the float kernels' whatever T is, so T = float compiles to what it always did and
// T = bf16 computes the same float and double values from the bf16 inputs, rounded once at the
// store. Per-channel tensors are float for both.
#pragma once
#include <cstdint>

#include "tensor/batchnorm.h"
#include "tensor/batchnorm_math_cuda.h"
#include "tensor/channel_sums_cuda.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

// Blocks of the two sums kernels that have finished (tensor/channel_sums_cuda.h).
__device__ unsigned int stats_blocks_done = 0;
__device__ unsigned int grad_blocks_done = 0;

// Forward 1: pairs of sums of d and d^2; the last block computes every channel's statistics and
// map, and counts the batch.
template <class T, int V>
__global__ void stats_kernel(const T* x, ChannelLayout l, int splits, double* partial, StatsOut out) {
  const int s = blockIdx.x;
  const uint32_t c = blockIdx.y;
  const double shift = to_float(x[channel_start(c, l, V)]);
  uint32_t begin, end;
  split_range(l, splits, s, begin, end);
  double sum = 0.0, sq = 0.0;
  for (uint32_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
    const Vec<V> v = load<V>(x, channel_vector(k, c, l));
    for (int j = 0; j < V; ++j) {
      const double d = v.v[j] - shift;
      sum += d;
      sq += d * d;
    }
  }
  const bool last = sum_then_finalize(sum, sq, partial, splits, l, &stats_blocks_done,
                                      [&](uint32_t ch, double a, double b) { finalize_stats(ch, a, b, x, l, V, out); });
  if (last && threadIdx.x == 0 && out.batches_tracked) *out.batches_tracked += 1.0f;
}

// Forward 1 on channels-last x: the same sums, each block a range of rows of a slice of channels.
template <class T, int V>
__global__ void stats_kernel_cl(const T* x, ChannelLayout l, int splits, double* partial, StatsOut out) {
  const SliceThread t = slice_thread(l, splits);
  double sum[V] = {}, sq[V] = {};
  if (t.active) {
    double shift[V];
    for (int j = 0; j < V; ++j) shift[j] = to_float(x[t.group * V + j]);
    for (uint32_t row = t.row0; row < t.end; row += t.row_step) {
      const Vec<V> v = load<V>(x, row * l.groups + t.group);
      for (int j = 0; j < V; ++j) {
        const double d = v.v[j] - shift[j];
        sum[j] += d;
        sq[j] += d * d;
      }
    }
  }
  if (!slice_sums_and_count<V>(sum, sq, t, partial, splits, &stats_blocks_done)) return;
  finalize_channels(partial, splits, l,
                    [&](uint32_t ch, double a, double b) { finalize_stats(ch, a, b, x, l, V, out); });
  if (threadIdx.x == 0 && out.batches_tracked) *out.batches_tracked += 1.0f;
}

// Evaluation: coef = (a, b) from the running statistics (per channel: float whatever x's type).
__global__ void eval_coef_kernel(const float* gamma, const float* beta, const float* running_mean,
                                 const float* running_var, float eps, uint32_t channels, float* coef) {
  const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
  const double a = gamma[c] * invstd;
  coef[c] = static_cast<float>(a);
  coef[channels + c] = static_cast<float>(beta[c] - running_mean[c] * a);
}

// Forward 2: y = epilogue(x a_c + b_c [+ residual]), computed in float and rounded to T once.
template <BatchNormEpilogue E, class T, int V>
__global__ void apply_kernel(const T* x, const T* residual, const float* coef, ChannelLayout l, T* y) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < l.total_v; i += gridDim.x * blockDim.x) {
    const uint32_t c0 = first_channel(i, l, V);
    Vec<V> v = load<V>(x, i);
    Vec<V> r{};  // read only by add_relu
    if constexpr (E == BatchNormEpilogue::add_relu) r = load<V>(residual, i);
    for (int j = 0; j < V; ++j) {
      const uint32_t c = lane_channel(c0, j, l);
      v.v[j] = affine(v.v[j], coef[c], coef[l.c + c]);  // rounded as batch_norm's float output
      if constexpr (E == BatchNormEpilogue::add_relu) v.v[j] = relu_keep_nan(v.v[j] + r.v[j]);
      if constexpr (E == BatchNormEpilogue::relu) v.v[j] = relu_keep_nan(v.v[j]);
    }
    store<V>(y, i, v);
  }
}

// Backward 1: pairs of sums of g and g (x - mean_c) (the difference in float); the last block
// finalizes every channel.
template <BatchNormMask M, class T, int V>
__global__ void grad_sums_kernel(GradIn<T> in, ChannelLayout l, int splits, double* partial, GradOut<T> out) {
  const uint32_t c = blockIdx.y;
  float mu[V], a[V], b[V];
  grad_channel<M>(in, c, l.c, mu[0], a[0], b[0]);
  for (int j = 1; j < V; ++j) mu[j] = mu[0], a[j] = a[0], b[j] = b[0];
  uint32_t begin, end;
  split_range(l, splits, blockIdx.x, begin, end);
  double sum[1] = {0.0}, sum_x[1] = {0.0};
  for (uint32_t k = begin + threadIdx.x; k < end; k += blockDim.x)
    add_grad_terms<M, V, 1>(in, channel_vector(k, c, l), mu, a, b, out.kept, sum, sum_x);
  sum_then_finalize(sum[0], sum_x[0], partial, splits, l, &grad_blocks_done,
                    [&](uint32_t ch, double s_dy, double s_dyx) { finalize_grad(ch, s_dy, s_dyx, l, out); });
}

// Backward 1 on channels-last x: the same sums, each block a range of rows of a slice of channels.
template <BatchNormMask M, class T, int V>
__global__ void grad_sums_kernel_cl(GradIn<T> in, ChannelLayout l, int splits, double* partial, GradOut<T> out) {
  const SliceThread t = slice_thread(l, splits);
  double sum[V] = {}, sum_x[V] = {};
  if (t.active) {
    float mu[V], a[V], b[V];
    for (int j = 0; j < V; ++j) grad_channel<M>(in, t.group * V + j, l.c, mu[j], a[j], b[j]);
    for (uint32_t row = t.row0; row < t.end; row += t.row_step)
      add_grad_terms<M, V, V>(in, row * l.groups + t.group, mu, a, b, out.kept, sum, sum_x);
  }
  if (!slice_sums_and_count<V>(sum, sum_x, t, partial, splits, &grad_blocks_done)) return;
  finalize_channels(partial, splits, l,
                    [&](uint32_t ch, double s_dy, double s_dyx) { finalize_grad(ch, s_dy, s_dyx, l, out); });
}

// Backward 2: dx = k * (g - c1 - (x - mean) * c2), g masked as in the sums (read back from the
// kept copy where there is one), computed in float and rounded to T once.
template <BatchNormMask M, class T, int V>
__global__ void grad_input_kernel(GradIn<T> in, const T* kept, const float* coef, ChannelLayout l, T* dx) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < l.total_v; i += gridDim.x * blockDim.x) {
    const uint32_t c0 = first_channel(i, l, V);
    Vec<V> g = load<V>(M == BatchNormMask::by_output_kept ? kept : in.dy, i);
    const Vec<V> x = load<V>(in.x, i);
    Vec<V> y{};  // read only where the mask needs it
    if constexpr (M == BatchNormMask::by_output) y = load<V>(in.y, i);
    for (int j = 0; j < V; ++j) {
      const uint32_t c = lane_channel(c0, j, l);
      float mu, a, b;
      grad_channel<M>(in, c, l.c, mu, a, b);
      if constexpr (M != BatchNormMask::by_output_kept) g.v[j] = masked<M>(g.v[j], y.v[j], x.v[j], a, b);
      g.v[j] = coef[c] * (g.v[j] - coef[l.c + c] - (x.v[j] - mu) * coef[2 * l.c + c]);
    }
    store<V>(dx, i, g);
  }
}

}  // namespace

}  // namespace qnn::cuda
