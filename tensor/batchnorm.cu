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
// Against the CPU: the same expressions in the same precision, the affine map as one fused
// multiply-add (as g++ -march=native contracts it), but not guaranteed bit for bit: the double
// sums run in another order (which moves the float statistics by at most an ulp, rarely at all)
// and nvcc may fuse other multiply-adds than GCC does. The parity tests allow a few ulps.
#include <cstdint>
#include <initializer_list>

#include "tensor/batchnorm.h"
#include "tensor/channel_sums_cuda.h"
#include "tensor/cuda_runtime.h"
#include "tensor/exact_math.h"

namespace qnn::cuda {

namespace {

// Blocks of the two sums kernels that have finished (tensor/channel_sums_cuda.h).
__device__ unsigned int stats_blocks_done = 0;
__device__ unsigned int grad_blocks_done = 0;

struct StatsOut {
  const float* gamma;
  const float* beta;
  float momentum, eps;
  float *running_mean, *running_var, *save_mean, *save_invstd;
  float* coef;             // [2, C]: a then b
  float* batches_tracked;  // may be null
};

// Forward 1: pairs of sums of d and d^2, d = x - x[0, c, 0] (the CPU's shift); the last block
// computes every channel's statistics and map.
template <int V>
__global__ void stats_kernel(const float* x, ChannelLayout l, int splits, double* partial, StatsOut out) {
  const int s = blockIdx.x;
  const uint32_t c = blockIdx.y;
  const double shift = x[uint64_t(c) * l.inner_v * V];
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
  const double m = static_cast<double>(l.count);
  const bool last = sum_then_finalize(sum, sq, partial, splits, l, &stats_blocks_done, [&](uint32_t ch, double s_total,
                                                                                          double ss_total) {
    const double first = x[uint64_t(ch) * l.inner_v * V];
    const double mean_shifted = s_total / m;
    const double var = fmax(ss_total / m - mean_shifted * mean_shifted, 0.0);
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
  });
  if (last && threadIdx.x == 0 && out.batches_tracked) *out.batches_tracked += 1.0f;
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

// The map x a + b as one rounding, here and wherever backward recomputes it.
__device__ __forceinline__ float affine(float x, float a, float b) { return fma_rn(x, a, b); }

// ReLU that keeps NaN, as tensor/elementwise.h's relu does.
__device__ __forceinline__ float relu_keep_nan(float v) { return v > 0.0f || v != v ? v : 0.0f; }

// Forward 2: y = epilogue(x a_c + b_c [+ residual]).
template <BatchNormEpilogue E, int V>
__global__ void apply_kernel(const float* x, const float* residual, const float* coef, ChannelLayout l, float* y) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < l.total_v; i += gridDim.x * blockDim.x) {
    const uint32_t c = (i / l.inner_v) % l.c;
    const float a = coef[c], b = coef[l.c + c];
    Vec<V> v = load<V>(x, i);
    Vec<V> r{};  // read only by add_relu
    if constexpr (E == BatchNormEpilogue::add_relu) r = load<V>(residual, i);
    for (int j = 0; j < V; ++j) {
      v.v[j] = affine(v.v[j], a, b);  // rounded as batch_norm's output
      if constexpr (E == BatchNormEpilogue::add_relu) v.v[j] = relu_keep_nan(v.v[j] + r.v[j]);
      if constexpr (E == BatchNormEpilogue::relu) v.v[j] = relu_keep_nan(v.v[j]);
    }
    store<V>(y, i, v);
  }
}

// The gradient backward reads at one value: dy itself, or dy where the ReLU passed (y > 0, or
// the recomputed ReLU input x a + b > 0), +0 elsewhere.
template <BatchNormMask M>
__device__ __forceinline__ float masked(float dy, float y, float x, float a, float b) {
  if constexpr (M == BatchNormMask::none) return dy;
  if constexpr (M == BatchNormMask::by_affine) return affine(x, a, b) > 0.0f ? dy : 0.0f;
  return y > 0.0f ? dy : 0.0f;
}

struct GradIn {
  const float *dy, *y, *x, *mean, *affine;  // y and affine as the mask needs
};

struct GradOut {
  const float* gamma;
  const float* invstd;
  bool training;
  float *dgamma, *dbeta;
  bool add_dgamma, add_dbeta;  // add into dgamma / dbeta rather than overwrite
  float* coef;                 // [3, C]: k, c1, c2
  float* kept;                 // by_output_kept: the masked gradient, x's shape
};

// Backward 1: pairs of sums of g and g (x - mean_c) (the difference in float); the last block
// finalizes every channel.
template <BatchNormMask M, int V>
__global__ void grad_sums_kernel(GradIn in, ChannelLayout l, int splits, double* partial, GradOut out) {
  const int s = blockIdx.x;
  const uint32_t c = blockIdx.y;
  const float mu = in.mean[c];
  const float a = M == BatchNormMask::by_affine ? in.affine[c] : 0.0f;
  const float b = M == BatchNormMask::by_affine ? in.affine[l.c + c] : 0.0f;
  uint32_t begin, end;
  split_range(l, splits, s, begin, end);
  double sum = 0.0, sum_x = 0.0;
  for (uint32_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
    const uint32_t at = channel_vector(k, c, l);
    Vec<V> g = load<V>(in.dy, at);
    const Vec<V> x = load<V>(in.x, at);
    Vec<V> y{};  // read only where the mask needs it
    if constexpr (M == BatchNormMask::by_output || M == BatchNormMask::by_output_kept) y = load<V>(in.y, at);
    for (int j = 0; j < V; ++j) {
      g.v[j] = masked<M>(g.v[j], y.v[j], x.v[j], a, b);
      sum += g.v[j];
      sum_x += static_cast<double>(g.v[j]) * (x.v[j] - mu);
    }
    if constexpr (M == BatchNormMask::by_output_kept) store<V>(out.kept, at, g);
  }
  const double m = static_cast<double>(l.count);
  sum_then_finalize(sum, sum_x, partial, splits, l, &grad_blocks_done, [&](uint32_t ch, double s_dy, double s_dyx) {
    const float is = out.invstd[ch];
    const double db = s_dy, dg = s_dyx * is;
    const float dbf = static_cast<float>(db), dgf = static_cast<float>(dg);
    out.dbeta[ch] = out.add_dbeta ? out.dbeta[ch] + dbf : dbf;
    out.dgamma[ch] = out.add_dgamma ? out.dgamma[ch] + dgf : dgf;
    out.coef[ch] = static_cast<float>(out.gamma[ch] * static_cast<double>(is));
    out.coef[l.c + ch] = out.training ? static_cast<float>(db / m) : 0.0f;
    out.coef[2 * l.c + ch] = out.training ? static_cast<float>(dg * is / m) : 0.0f;
  });
}

// Backward 2: dx = k * (g - c1 - (x - mean) * c2), g masked as in the sums (read back from the
// kept copy where there is one).
template <BatchNormMask M, int V>
__global__ void grad_input_kernel(GradIn in, const float* kept, const float* coef, ChannelLayout l, float* dx) {
  for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < l.total_v; i += gridDim.x * blockDim.x) {
    const uint32_t c = (i / l.inner_v) % l.c;
    const float mu = in.mean[c], k = coef[c], c1 = coef[l.c + c], c2 = coef[2 * l.c + c];
    const float a = M == BatchNormMask::by_affine ? in.affine[c] : 0.0f;
    const float b = M == BatchNormMask::by_affine ? in.affine[l.c + c] : 0.0f;
    Vec<V> g = load<V>(M == BatchNormMask::by_output_kept ? kept : in.dy, i);
    const Vec<V> x = load<V>(in.x, i);
    Vec<V> y{};  // read only where the mask needs it
    if constexpr (M == BatchNormMask::by_output) y = load<V>(in.y, i);
    for (int j = 0; j < V; ++j) {
      if constexpr (M != BatchNormMask::by_output_kept) g.v[j] = masked<M>(g.v[j], y.v[j], x.v[j], a, b);
      g.v[j] = k * (g.v[j] - c1 - (x.v[j] - mu) * c2);
    }
    store<V>(dx, i, g);
  }
}

void check_on_gpu(const char* op, const char* what, const Tensor& t) {
  if (t.defined() && !t.is_cuda())
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is on the CPU but x is on the GPU"));
}

bool aligned(const Tensor& t) { return !t.defined() || reinterpret_cast<uintptr_t>(t.data()) % 16 == 0; }

// The layout of x, in vectors of 4 when every tensor streamed allows it (returns V).
int layout_of(const char* op, const Tensor& x, std::initializer_list<const Tensor*> streamed, ChannelLayout& l) {
  const int64_t n = x.size(0), c = x.size(1), inner = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  QNN_CHECK(c <= 65535, op, ": at most 65535 channels on the GPU, x is ", shape_str(x.shape()));
  QNN_CHECK(x.numel() < (int64_t(1) << 31), op, ": at most 2^31 - 1 values on the GPU, x is ", shape_str(x.shape()));
  bool four = inner % 4 == 0;
  for (const Tensor* t : streamed) four = four && aligned(*t);
  const int v = four ? 4 : 1;
  l.c = static_cast<uint32_t>(c);
  l.inner_v = static_cast<uint32_t>(inner / v);
  l.count_v = static_cast<uint32_t>(n * inner / v);
  l.total_v = static_cast<uint32_t>(x.numel() / v);
  l.count = n * inner;
  return v;
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
  grad_sums_kernel<M, V><<<dim3(unsigned(splits), l.c), kThreads, 0, stream()>>>(in, l, splits, partial, out);
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
  Tensor y(x.shape(), Device::CUDA);
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
  const dim3 grid(unsigned(splits), l.c);
  if (v == 4)
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
  Tensor y(x.shape(), Device::CUDA);
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
  if (keep) g.dy_masked = Tensor(x.shape(), Device::CUDA);
  if (need_dx) g.dx = Tensor(x.shape(), Device::CUDA);
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
