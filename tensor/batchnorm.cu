// CUDA batch normalisation, the twin of tensor/batchnorm.cpp (formulas in tensor/batchnorm.h):
// Ioffe and Szegedy, "Batch Normalization" (2015), with PyTorch's conventions (biased variance
// to normalise, unbiased for the running variance, running = (1 - m) running + m batch). This
// file holds the host side: checks, layouts, launches. The kernels are in
// tensor/batchnorm_kernels_cuda.h, their per-value arithmetic in tensor/batchnorm_math_cuda.h.
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
// bf16 activations (DType::bf16, `--precision bf16`): x, residual, y, dy, dx and the kept masked
// gradient may all be bf16 (all of them or none: a mix is refused), while gamma, beta, the running
// and saved statistics, the map, dgamma and dbeta stay float32. The kernels are templated on the
// stored type (float, or uint16_t holding bf16 bits): each bf16 value is widened to float as it
// is read (vectors of 4 are one 8-byte load, so V = 4 needs 8-byte alignment rather than 16), the
// arithmetic is the float kernels' (the same float expressions, the same double sums), and each
// output value is rounded to bf16 once, as it is stored (tensor/bf16.h: to nearest, ties to even).
// So a bf16 result is the float result for the bf16 inputs, rounded; the fused add_relu rounds
// relu(bn(x) + residual) once, where the unfused ops would also round bn(x). The masked gradient
// g (dy or +0) is exact in bf16. For float32 the widening and the rounding are the identity.
//
// Against the CPU: the same expressions in the same precision, the affine map as one fused
// multiply-add (as g++ -march=native contracts it), but not guaranteed bit for bit: the double
// sums run in another order (which moves the float statistics by at most an ulp, rarely at all)
// and nvcc may fuse other multiply-adds than GCC does. The parity tests allow a few ulps.
#include <cstdint>
#include <initializer_list>

#include "tensor/batchnorm.h"
#include "tensor/batchnorm_kernels_cuda.h"
#include "tensor/batchnorm_math_cuda.h"
#include "tensor/channel_sums_cuda.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

// The elements of a streamed tensor as the kernels' type T (x's type, which layout_of has checked
// every streamed tensor has); null for an undefined tensor. Per-channel tensors go through data().
template <class T>
const T* values(const Tensor& t) {
  return t.defined() ? static_cast<const T*>(t.raw()) : nullptr;
}
template <class T>
T* mutable_values(Tensor& t) {
  return t.defined() ? static_cast<T*>(t.raw()) : nullptr;
}

void check_on_gpu(const char* op, const char* what, const Tensor& t) {
  if (t.defined() && !t.is_cuda())
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is on the CPU but x is on the GPU"));
}

// A per-channel tensor (gamma, beta, statistics, map, gradient target, batch count): on the GPU,
// and float32 whatever x's type.
void check_per_channel(const char* op, const char* what, const Tensor& t) {
  check_on_gpu(op, what, t);
  if (t.defined() && t.dtype() != DType::f32)
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is ", dtype_name(t.dtype()),
                    ": per-channel tensors are float32 whatever x's type"));
}

// A tensor of x's shape that the kernels stream, named for the errors.
struct Streamed {
  const char* name;
  const Tensor* t;
};

// Whether t's first element starts a vector of 4 (16 bytes of float, 8 of bf16): every vector
// then lies on its own size, since vectors start a multiple of 4 elements further on.
bool aligned(const Tensor& t) {
  return !t.defined() || reinterpret_cast<uintptr_t>(t.raw()) % (4 * dtype_size(t.dtype())) == 0;
}

// The layout of x, in vectors of 4 when every tensor streamed allows it (returns V). Every
// tensor streamed must be in x's memory format and of x's element type.
int layout_of(const char* op, const Tensor& x, std::initializer_list<Streamed> streamed, ChannelLayout& l) {
  const int64_t n = x.size(0), c = x.size(1), inner = x.dim() == 4 ? x.size(2) * x.size(3) : 1;
  QNN_CHECK(c <= 65535, op, ": at most 65535 channels on the GPU, x is ", shape_str(x.shape()));
  QNN_CHECK(x.numel() < (int64_t(1) << 31), op, ": at most 2^31 - 1 values on the GPU, x is ", shape_str(x.shape()));
  for (const Streamed& s : streamed) {
    if (!s.t->defined()) continue;
    QNN_CHECK(s.t->format() == x.format(), op, ": x is ", x.is_channels_last() ? "channels-last" : "contiguous",
              " but ", s.name, " ", shape_str(s.t->shape()), " is not");
    if (s.t->dtype() != x.dtype())
      throw Error(str("[", op, "] x is ", dtype_name(x.dtype()), " but ", s.name, " ", shape_str(s.t->shape()), " is ",
                      dtype_name(s.t->dtype()), ": x, residual, y, dy and dx must share one element type"));
  }
  l.channels_last = x.is_channels_last();
  bool four = (l.channels_last ? c : inner) % 4 == 0;
  for (const Streamed& s : streamed) four = four && aligned(*s.t);
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

// Forward 1 for x of type T.
template <class T>
void launch_stats(int v, const Tensor& x, const ChannelLayout& l, int splits, double* pp, const StatsOut& o) {
  const dim3 grid = sums_grid(l, splits);
  const T* px = values<T>(x);
  if (l.channels_last && v == 4)
    stats_kernel_cl<T, 4><<<grid, kThreads, 0, stream()>>>(px, l, splits, pp, o);
  else if (l.channels_last)
    stats_kernel_cl<T, 1><<<grid, kThreads, 0, stream()>>>(px, l, splits, pp, o);
  else if (v == 4)
    stats_kernel<T, 4><<<grid, kThreads, 0, stream()>>>(px, l, splits, pp, o);
  else
    stats_kernel<T, 1><<<grid, kThreads, 0, stream()>>>(px, l, splits, pp, o);
  QNN_LAUNCH_CHECK("batch_norm statistics, x ", shape_str(x.shape()));
}

template <BatchNormEpilogue E, class T>
void launch_apply(int v, const T* x, const T* residual, const float* coef, const ChannelLayout& l, T* y) {
  const unsigned blocks = blocks_for(l.total_v);
  if (v == 4)
    apply_kernel<E, T, 4><<<blocks, kThreads, 0, stream()>>>(x, residual, coef, l, y);
  else
    apply_kernel<E, T, 1><<<blocks, kThreads, 0, stream()>>>(x, residual, coef, l, y);
}

// y = epilogue(x a_c + b_c [+ residual]) with the map in coef, for x of type T.
template <class T>
void apply(BatchNormEpilogue e, int v, const Tensor& x, const Tensor& residual, const Tensor& coef,
           const ChannelLayout& l, Tensor& y) {
  const T* px = values<T>(x);
  const T* r = values<T>(residual);
  T* py = mutable_values<T>(y);
  using E = BatchNormEpilogue;
  switch (e) {
    case E::none: launch_apply<E::none>(v, px, r, coef.data(), l, py); break;
    case E::relu: launch_apply<E::relu>(v, px, r, coef.data(), l, py); break;
    case E::add_relu: launch_apply<E::add_relu>(v, px, r, coef.data(), l, py); break;
  }
  QNN_LAUNCH_CHECK("batch_norm normalise, x ", shape_str(x.shape()));
}

void apply(BatchNormEpilogue e, int v, const Tensor& x, const Tensor& residual, const Tensor& coef,
           const ChannelLayout& l, Tensor& y) {
  if (x.is_bf16())
    apply<uint16_t>(e, v, x, residual, coef, l, y);
  else
    apply<float>(e, v, x, residual, coef, l, y);
}

// The [2, C] map: the caller's save_affine when it wants it, else scratch.
Tensor coefficients(const ChannelLayout& l, Tensor* save_affine) {
  Tensor coef({2, int64_t(l.c)}, Device::CUDA);
  if (save_affine) *save_affine = coef;
  return coef;
}

template <BatchNormMask M, class T, int V>
void launch_backward(const GradIn<T>& gi, const ChannelLayout& l, int splits, double* partial, const GradOut<T>& go,
                     bool need_dx, T* dx) {
  if (l.channels_last)
    grad_sums_kernel_cl<M, T, V><<<sums_grid(l, splits), kThreads, 0, stream()>>>(gi, l, splits, partial, go);
  else
    grad_sums_kernel<M, T, V><<<sums_grid(l, splits), kThreads, 0, stream()>>>(gi, l, splits, partial, go);
  QNN_LAUNCH_CHECK("batch_norm_backward sums, ", l.c, " channels of ", l.count, " values");
  if (!need_dx) return;
  grad_input_kernel<M, T, V><<<blocks_for(l.total_v), kThreads, 0, stream()>>>(gi, go.kept, go.coef, l, dx);
  QNN_LAUNCH_CHECK("batch_norm_backward dx, ", l.c, " channels of ", l.count, " values");
}

template <BatchNormMask M, class T>
void launch_backward(int v, const GradIn<T>& gi, const ChannelLayout& l, int splits, double* partial,
                     const GradOut<T>& go, bool need_dx, T* dx) {
  if (v == 4)
    launch_backward<M, T, 4>(gi, l, splits, partial, go, need_dx, dx);
  else
    launch_backward<M, T, 1>(gi, l, splits, partial, go, need_dx, dx);
}

// Backward's two passes for x of type T (dy, y, dx and the kept gradient of that type too).
template <class T>
void backward(BatchNormMask mask, int v, const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& gamma,
              const Tensor& mean, const Tensor& invstd, const Tensor& affine, bool training, bool need_dx,
              const BatchNormGradTargets& into, const ChannelLayout& l, BatchNormGrads& g) {
  const int splits = channel_splits(l);
  Tensor partial = double_scratch(int64_t(l.c) * splits * 2);
  Tensor coef({3 * int64_t(l.c)}, Device::CUDA);
  using M = BatchNormMask;
  const bool keep = mask == M::by_output_kept;
  const bool by_y = mask == M::by_output || keep;
  const GradIn<T> gi{values<T>(dy), by_y ? values<T>(y) : nullptr, values<T>(x), mean.data(),
                     mask == M::by_affine ? affine.data() : nullptr};
  const GradOut<T> go{gamma.data(),    invstd.data(),      training,    g.dgamma.data(),
                      g.dbeta.data(),  into.dgamma.defined(), into.dbeta.defined(), coef.data(),
                      keep ? mutable_values<T>(g.dy_masked) : nullptr};
  double* pp = reinterpret_cast<double*>(partial.data());
  T* dx = need_dx ? mutable_values<T>(g.dx) : nullptr;
  switch (mask) {
    case M::none: launch_backward<M::none>(v, gi, l, splits, pp, go, need_dx, dx); break;
    case M::by_output: launch_backward<M::by_output>(v, gi, l, splits, pp, go, need_dx, dx); break;
    case M::by_affine: launch_backward<M::by_affine>(v, gi, l, splits, pp, go, need_dx, dx); break;
    case M::by_output_kept: launch_backward<M::by_output_kept>(v, gi, l, splits, pp, go, need_dx, dx); break;
  }
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
  check_per_channel(op, "gamma", gamma);
  check_per_channel(op, "beta", beta);
  check_per_channel(op, "running_mean", running_mean);
  check_per_channel(op, "running_var", running_var);
  check_on_gpu(op, "residual", residual);
  if (batches_tracked) check_per_channel(op, "num_batches_tracked", *batches_tracked);
  ChannelLayout l;
  const int v = layout_of(op, x, {{"x", &x}, {"residual", &residual}}, l);
  Tensor y = Tensor::empty_like(x);
  save_mean = Tensor({int64_t(l.c)}, Device::CUDA);
  save_invstd = Tensor({int64_t(l.c)}, Device::CUDA);
  Tensor coef = coefficients(l, save_affine);
  if (l.c == 0) return y;
  const int splits = channel_splits(l);
  Tensor partial = double_scratch(int64_t(l.c) * splits * 2);
  double* pp = reinterpret_cast<double*>(partial.data());
  const StatsOut o{gamma.data(),        beta.data(),         momentum,         eps,
                   running_mean.data(), running_var.data(),  save_mean.data(), save_invstd.data(),
                   coef.data(),         batches_tracked ? batches_tracked->data() : nullptr};
  if (x.is_bf16())
    launch_stats<uint16_t>(v, x, l, splits, pp, o);
  else
    launch_stats<float>(v, x, l, splits, pp, o);
  apply(epilogue, v, x, residual, coef, l, y);
  return y;
}

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& residual, BatchNormEpilogue epilogue,
                               const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                               const Tensor& running_var, float eps, Tensor* save_affine) {
  const char* op = "batch_norm";
  check_per_channel(op, "gamma", gamma);
  check_per_channel(op, "beta", beta);
  check_per_channel(op, "running_mean", running_mean);
  check_per_channel(op, "running_var", running_var);
  check_on_gpu(op, "residual", residual);
  ChannelLayout l;
  const int v = layout_of(op, x, {{"x", &x}, {"residual", &residual}}, l);
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
  check_on_gpu(op, "dy", dy);
  check_on_gpu(op, "y", y);
  check_per_channel(op, "gamma", gamma);
  check_per_channel(op, "mean", mean);
  check_per_channel(op, "invstd", invstd);
  check_per_channel(op, "the applied map", affine);
  check_per_channel(op, "dgamma", into.dgamma);
  check_per_channel(op, "dbeta", into.dbeta);
  BatchNormGrads g;
  ChannelLayout l;
  if (mask == BatchNormMask::by_output_kept) g.dy_masked = Tensor::empty_like(x);
  if (need_dx) g.dx = Tensor::empty_like(x);
  const int v = layout_of(op, x, {{"dy", &dy}, {"y", &y}, {"x", &x}, {"dx", &g.dx}, {"kept", &g.dy_masked}}, l);
  g.dgamma = target(into.dgamma, l);
  g.dbeta = target(into.dbeta, l);
  if (l.c == 0) return g;
  if (x.is_bf16())
    backward<uint16_t>(mask, v, dy, y, x, gamma, mean, invstd, affine, training, need_dx, into, l, g);
  else
    backward<float>(mask, v, dy, y, x, gamma, mean, invstd, affine, training, need_dx, into, l, g);
  return g;
}

}  // namespace qnn::cuda
