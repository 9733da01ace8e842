// CUDA batch normalisation, the twin of tensor/batchnorm.cpp (formulas in tensor/batchnorm.h):
// Ioffe and Szegedy, "Batch Normalization" (2015), with PyTorch's conventions (biased variance
// to normalise, unbiased for the running variance, running = (1 - m) running + m batch).
//
// Our own kernels rather than cuDNN's cudnnBatchNormalization*: they reproduce the CPU's exact
// formulas (the shifted one-pass statistics in double, the same float rounding of the per-channel
// coefficients), are deterministic, fuse the ReLU and the residual that follow batch norm in a
// ResNet, and keep the backward's inputs to x and the saved per-channel values.
//
// A training step's batch norm is two kernels forward and two backward:
//   forward  1. statistics: per-channel sums (tensor/channel_sums_cuda.h) of d = x - x[0, c, 0],
//               the CPU's shift, and of d^2; the grid's last block computes every channel's
//               statistics, running statistics and affine map (a_c, b_c) of y = x a_c + b_c,
//               and counts the batch;
//            2. apply: y = x a_c + b_c, then the epilogue (ReLU, or residual then ReLU).
//   backward 1. sums of g and g (x - mean_c), g being dy masked by the ReLU where forward applied
//               one (the masked g also written out when the residual needs it); the last block
//               finalizes dbeta and dgamma (added straight into the parameters' gradients) and
//               the coefficients (k, c1, c2) of dx;
//            2. dx = k_c (g - c1_c - (x - mean_c) c2_c).
// Nothing leaves the device and all scratch comes from the caching allocator, so the passes can
// be captured in a CUDA graph.
//
// Channels-last x (NHWC, tensor/tensor.h) is also two kernels each way: sums kernels of their own
// (stats_kernel_cl, grad_sums_kernel_cl) give each block a range of rows and a slice of channels
// (tensor/channel_sums_cuda.h); the element passes are the same kernels, finding a value's
// channel as its index modulo C, with vectors of 4 holding 4 channels of one pixel. Same
// formulas (batchnorm_math_cuda.h), same shift; the sums run in another order.
//
// Against the CPU: the same expressions in the same precision, the affine map as one fused
// multiply-add (as g++ -march=native contracts it), but not guaranteed bit for bit: the double
// sums run in another order (which moves the float statistics by at most an ulp, rarely at all)
// and nvcc may fuse other multiply-adds than GCC does. The parity tests allow a few ulps.
#include <cstdint>
#include <initializer_list>

#include "tensor/batchnorm.h"
#include "tensor/batchnorm_math_cuda.h"
#include "tensor/channel_sums_cuda.h"
#include "tensor/cuda_runtime.h"
#include "tensor/exact_math.h"

namespace qnn::cuda {

namespace {

// Blocks of the two sums kernels that have finished (tensor/channel_sums_cuda.h).
__device__ unsigned int stats_blocks_done = 0;
__device__ unsigned int grad_blocks_done = 0;

// Forward 1: pairs of sums of d and d^2; the last block computes every channel's statistics and
// map, and counts the batch.
template <int V>
__global__ void stats_kernel(const float* x, ChannelLayout l, int splits, double* partial, StatsOut out) {
  const int s = blockIdx.x;
  const uint32_t c = blockIdx.y;
  const double shift = x[channel_start(c, l, V)];
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
template <int V>
__global__ void stats_kernel_cl(const float* x, ChannelLayout l, int splits, double* partial, StatsOut out) {
  const SliceThread t = slice_thread(l, splits);
  double sum[V] = {}, sq[V] = {};
  if (t.active) {
    double shift[V];
    for (int j = 0; j < V; ++j) shift[j] = x[t.group * V + j];
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

// Evaluation: coef = (a, b) from the running statistics.
__global__ void eval_coef_kernel(const float* gamma, const float* beta, const float* running_mean,
                                 const float* running_var, float eps, uint32_t channels, float* coef) {
  const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= channels) return;
  const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
  const double a = gamma[c] * invstd;
  coef[c] = static_cast<float>(a);
  coef[channels + c] = static_cast<float>(beta[c] - running_mean[c] * a);
}

// Forward 2: y = epilogue(x a_c + b_c [+ residual]).
template <BatchNormEpilogue E, int V>
__global__ void apply_kernel(const float* x, const float* residual, const float* coef, ChannelLayout l, float* y) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < l.total_v; i += gridDim.x * blockDim.x) {
    const uint32_t c0 = first_channel(i, l, V);
    Vec<V> v = load<V>(x, i);
    Vec<V> r{};  // read only by add_relu
    if constexpr (E == BatchNormEpilogue::add_relu) r = load<V>(residual, i);
    for (int j = 0; j < V; ++j) {
      const uint32_t c = lane_channel(c0, j, l);
      v.v[j] = affine(v.v[j], coef[c], coef[l.c + c]);  // rounded as batch_norm's output
      if constexpr (E == BatchNormEpilogue::add_relu) v.v[j] = relu_keep_nan(v.v[j] + r.v[j]);
      if constexpr (E == BatchNormEpilogue::relu) v.v[j] = relu_keep_nan(v.v[j]);
    }
    store<V>(y, i, v);
  }
}

// Backward 1: pairs of sums of g and g (x - mean_c) (the difference in float); the last block
// finalizes every channel.
template <BatchNormMask M, int V>
__global__ void grad_sums_kernel(GradIn in, ChannelLayout l, int splits, double* partial, GradOut out) {
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
template <BatchNormMask M, int V>
__global__ void grad_sums_kernel_cl(GradIn in, ChannelLayout l, int splits, double* partial, GradOut out) {
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
// kept copy where there is one).
template <BatchNormMask M, int V>
__global__ void grad_input_kernel(GradIn in, const float* kept, const float* coef, ChannelLayout l, float* dx) {
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

void check_on_gpu(const char* op, const char* what, const Tensor& t) {
  if (t.defined() && !t.is_cuda())
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is on the CPU but x is on the GPU"));
}

bool aligned(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

// The layout of x, in vectors of 4 when every tensor streamed allows it (returns V). Every
// tensor streamed must be in x's memory format.
int layout_of(const char* op, const Tensor& x, std::initializer_list<const Tensor*> streamed, ChannelLayout& l) {
  const int64_t n = x.size(0), c = x.size(1), inner = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  QNN_CHECK(c <= 65535, op, ": at most 65535 channels on the GPU, x is ", shape_str(x.shape()));
  QNN_CHECK(x.numel() < (int64_t(1) << 31), op, ": at most 2^31 - 1 values on the GPU, x is ", shape_str(x.shape()));
  for (const Tensor* t : streamed)
    QNN_CHECK(!t->defined() || t->format() == x.format(), op, ": x is ",
              x.is_channels_last() ? "channels-last" : "contiguous", " but another input is not (",
              shape_str(t->shape()), ")");
  l.channels_last = x.is_channels_last();
  bool four = (l.channels_last ? c : inner) % 4 == 0;
  for (const Tensor* t : streamed) four = four && aligned(*t);
  const int v = four ? 4 : 1;
  l.c = static_cast<uint32_t>(c);
  l.inner_v = static_cast<uint32_t>(inner / v);
  l.count_v = static_cast<uint32_t>(l.channels_last ? n * inner : n * inner / v);
  l.total_v = static_cast<uint32_t>(x.numel() / v);
  l.count = n * inner;
  l.groups = static_cast<uint32_t>(c / v);
  l.slice = l.groups < uint32_t(kThreads) ? l.groups : uint32_t(kThreads);
  return v;
}

// The grid of the sums kernels: (splits, C) blocks, channels-last (splits, slices).
dim3 sums_grid(const ChannelLayout& l, int splits) {
  return dim3(unsigned(splits), l.channels_last ? (l.groups + l.slice - 1) / l.slice : l.c);
}

// Scratch of `doubles` doubles from the caching allocator (two floats each).
Tensor double_scratch(int64_t doubles) { return Tensor({2 * doubles}, Device::CUDA); }

template <BatchNormEpilogue E>
void launch_apply(int v, const float* x, const float* residual, const float* coef, const ChannelLayout& l, float* y) {
  const unsigned blocks = blocks_for(l.total_v);
  if (v == 4)
    apply_kernel<E, 4><<<blocks, kThreads, 0, stream()>>>(x, residual, coef, l, y);
  else
    apply_kernel<E, 1><<<blocks, kThreads, 0, stream()>>>(x, residual, coef, l, y);
}

// y = epilogue(x a_c + b_c [+ residual]) with the map in coef.
void apply(BatchNormEpilogue e, int v, const Tensor& x, const Tensor& residual, const Tensor& coef,
           const ChannelLayout& l, Tensor& y) {
  const float* r = residual.defined() ? residual.data() : nullptr;
  using E = BatchNormEpilogue;
  switch (e) {
    case E::none: launch_apply<E::none>(v, x.data(), r, coef.data(), l, y.data()); break;
    case E::relu: launch_apply<E::relu>(v, x.data(), r, coef.data(), l, y.data()); break;
    case E::add_relu: launch_apply<E::add_relu>(v, x.data(), r, coef.data(), l, y.data()); break;
  }
  QNN_LAUNCH_CHECK("batch_norm normalise, x ", shape_str(x.shape()));
}

// The [2, C] map: the caller's save_affine when it wants it, else scratch.
Tensor coefficients(const ChannelLayout& l, Tensor* save_affine) {
  Tensor coef({2, int64_t(l.c)}, Device::CUDA);
  if (save_affine) *save_affine = coef;
  return coef;
}

template <BatchNormMask M, int V>
void launch_backward(const GradIn& in, const ChannelLayout& l, int splits, double* partial, const GradOut& out,
                     bool need_dx, float* dx) {
  if (l.channels_last)
    grad_sums_kernel_cl<M, V><<<sums_grid(l, splits), kThreads, 0, stream()>>>(in, l, splits, partial, out);
  else
    grad_sums_kernel<M, V><<<sums_grid(l, splits), kThreads, 0, stream()>>>(in, l, splits, partial, out);
  QNN_LAUNCH_CHECK("batch_norm_backward sums, ", l.c, " channels of ", l.count, " values");
  if (!need_dx) return;
  grad_input_kernel<M, V><<<blocks_for(l.total_v), kThreads, 0, stream()>>>(in, out.kept, out.coef, l, dx);
  QNN_LAUNCH_CHECK("batch_norm_backward dx, ", l.c, " channels of ", l.count, " values");
}

template <BatchNormMask M>
void launch_backward(int v, const GradIn& in, const ChannelLayout& l, int splits, double* partial, const GradOut& out,
                     bool need_dx, float* dx) {
  if (v == 4)
    launch_backward<M, 4>(in, l, splits, partial, out, need_dx, dx);
  else
    launch_backward<M, 1>(in, l, splits, partial, out, need_dx, dx);
}

// A gradient target (checked by tensor/batchnorm.cpp), or a fresh [C] tensor.
Tensor target(const Tensor& given, const ChannelLayout& l) {
  return given.defined() ? given : Tensor({int64_t(l.c)}, Device::CUDA);
}

}  // namespace

Tensor batch_norm_forward_training(const Tensor& x, const Tensor& residual, BatchNormEpilogue epilogue,
                                   const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                                   Tensor& running_var, float momentum, float eps, Tensor& save_mean,
                                   Tensor& save_invstd, Tensor* save_affine, Tensor* batches_tracked) {
  const char* op = "batch_norm";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var, &residual})
    check_on_gpu(op, "an input", *t);
  if (batches_tracked) check_on_gpu(op, "num_batches_tracked", *batches_tracked);
  ChannelLayout l;
  const int v = layout_of(op, x, {&x, &residual}, l);
  Tensor y = Tensor::empty_like(x);
  save_mean = Tensor({int64_t(l.c)}, Device::CUDA);
  save_invstd = Tensor({int64_t(l.c)}, Device::CUDA);
  Tensor coef = coefficients(l, save_affine);
  if (l.c == 0) return y;
  const int splits = channel_splits(l);
  Tensor partial = double_scratch(int64_t(l.c) * splits * 2);
  double* pp = reinterpret_cast<double*>(partial.data());
  const StatsOut out{gamma.data(),        beta.data(),         momentum,         eps,
                     running_mean.data(), running_var.data(),  save_mean.data(), save_invstd.data(),
                     coef.data(),         batches_tracked ? batches_tracked->data() : nullptr};
  const dim3 grid = sums_grid(l, splits);
  if (l.channels_last && v == 4)
    stats_kernel_cl<4><<<grid, kThreads, 0, stream()>>>(x.data(), l, splits, pp, out);
  else if (l.channels_last)
    stats_kernel_cl<1><<<grid, kThreads, 0, stream()>>>(x.data(), l, splits, pp, out);
  else if (v == 4)
    stats_kernel<4><<<grid, kThreads, 0, stream()>>>(x.data(), l, splits, pp, out);
  else
    stats_kernel<1><<<grid, kThreads, 0, stream()>>>(x.data(), l, splits, pp, out);
  QNN_LAUNCH_CHECK("batch_norm statistics, x ", shape_str(x.shape()));
  apply(epilogue, v, x, residual, coef, l, y);
  return y;
}

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& residual, BatchNormEpilogue epilogue,
                               const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                               const Tensor& running_var, float eps, Tensor* save_affine) {
  const char* op = "batch_norm";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var, &residual})
    check_on_gpu(op, "an input", *t);
  ChannelLayout l;
  const int v = layout_of(op, x, {&x, &residual}, l);
  Tensor y = Tensor::empty_like(x);
  Tensor coef = coefficients(l, save_affine);
  if (l.c == 0) return y;
  eval_coef_kernel<<<blocks_for(l.c), kThreads, 0, stream()>>>(gamma.data(), beta.data(), running_mean.data(),
                                                                running_var.data(), eps, l.c, coef.data());
  QNN_LAUNCH_CHECK("batch_norm eval coefficients, x ", shape_str(x.shape()));
  if (x.numel() > 0) apply(epilogue, v, x, residual, coef, l, y);
  return y;
}

BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, const Tensor& affine,
                                   BatchNormMask mask, bool training, bool need_dx,
                                   const BatchNormGradTargets& into) {
  const char* op = "batch_norm_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dy, &y, &gamma, &mean, &invstd, &affine})
    check_on_gpu(op, "an input", *t);
  BatchNormGrads g;
  ChannelLayout l;
  const bool keep = mask == BatchNormMask::by_output_kept;
  if (keep) g.dy_masked = Tensor::empty_like(x);
  if (need_dx) g.dx = Tensor::empty_like(x);
  const int v = layout_of(op, x, {&dy, &y, &x, &g.dx, &g.dy_masked}, l);
  g.dgamma = target(into.dgamma, l);
  g.dbeta = target(into.dbeta, l);
  if (l.c == 0) return g;
  const int splits = channel_splits(l);
  Tensor partial = double_scratch(int64_t(l.c) * splits * 2);
  Tensor coef({3 * int64_t(l.c)}, Device::CUDA);
  const bool by_y = mask == BatchNormMask::by_output || keep;
  const GradIn in{dy.data(), by_y ? y.data() : nullptr, x.data(), mean.data(),
                  mask == BatchNormMask::by_affine ? affine.data() : nullptr};
  const GradOut out{gamma.data(),    invstd.data(),      training,    g.dgamma.data(),
                    g.dbeta.data(),  into.dgamma.defined(), into.dbeta.defined(), coef.data(),
                    keep ? g.dy_masked.data() : nullptr};
  double* pp = reinterpret_cast<double*>(partial.data());
  float* dx = need_dx ? g.dx.data() : nullptr;
  using M = BatchNormMask;
  switch (mask) {
    case M::none: launch_backward<M::none>(v, in, l, splits, pp, out, need_dx, dx); break;
    case M::by_output: launch_backward<M::by_output>(v, in, l, splits, pp, out, need_dx, dx); break;
    case M::by_affine: launch_backward<M::by_affine>(v, in, l, splits, pp, out, need_dx, dx); break;
    case M::by_output_kept: launch_backward<M::by_output_kept>(v, in, l, splits, pp, out, need_dx, dx); break;
  }
  return g;
}

}  // namespace qnn::cuda
