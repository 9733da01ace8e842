// CUDA batch normalisation, the twin of tensor/batchnorm.cpp (formulas in tensor/batchnorm.h):
// Ioffe and Szegedy, "Batch Normalization" (2015), with PyTorch's conventions (biased variance
// to normalise, unbiased for the running variance, running = (1 - m) running + m batch).
//
// Our own kernels rather than cuDNN's cudnnBatchNormalization*: they reproduce the CPU's exact
// formulas (the shifted one-pass statistics in double, the same float rounding of the per-channel
// coefficients), are deterministic (cuDNN's backward is not documented to be), and keep the
// backward's inputs to x and the saved mean/invstd, as the autograd function expects.
//
// Each pass over x is two-stage, because a channel has many values and few channels exist
// (ResNet-20 at batch 128: C = 16 channels of N*H*W = 131072 values, on 132 SMs):
//   1. partial sums: grid (splits, C); block (s, c) sums a fixed contiguous range of channel c's
//      M = N*H*W values in double (a fixed split over threads, then a fixed tree in shared memory)
//      and writes its pair of sums;
//   2. finalize: one thread per channel adds its `splits` pairs in order and computes the
//      statistics and the per-channel coefficients, exactly as the CPU does from its sums;
//   3. an element-wise kernel applies the coefficients: y = x a_c + b_c, or
//      dx = k_c (dy - c1_c - (x - mean_c) c2_c).
// Nothing leaves the device and all scratch comes from the caching allocator, so the passes can
// be captured in a CUDA graph. Results are deterministic (fixed splits, fixed trees).
// Against the CPU: the same expressions in the same precision, but not guaranteed bit for bit:
// the double sums run in another order (which moves the float statistics by at most an ulp,
// rarely at all), and nvcc fuses multiply-adds into FMAs where GCC (-O3 -march=native) may fuse
// others or, in a portable build, none. The parity tests allow a few ulps (atol/rtol 1e-5).
#include <initializer_list>

#include "tensor/batchnorm.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

// x viewed as [N, C, inner], inner = H*W (1 for [N, C]); M = N*inner values per channel.
struct Layout {
  int64_t n, c, inner;
  int64_t count() const { return n * inner; }
};

Layout layout_of(const Tensor& x) { return Layout{x.size(0), x.size(1), x.dim() == 4 ? x.size(2) * x.size(3) : 1}; }

constexpr int kValuesPerBlock = 4096;  // ~16 values per thread in the partial-sum pass
constexpr int kMaxSplits = 1024;

// Blocks per channel for the partial sums.
int splits_for(const Layout& l) {
  const int64_t s = (l.count() + kValuesPerBlock - 1) / kValuesPerBlock;
  return static_cast<int>(s < 1 ? 1 : (s > kMaxSplits ? kMaxSplits : s));
}

// Address of the m-th value (in image-major order) of channel c.
__device__ __forceinline__ int64_t channel_at(int64_t m, int64_t c, int64_t channels, int64_t inner) {
  return ((m / inner) * channels + c) * inner + m % inner;
}

// Block-wide sums of (a, b) in a fixed tree; thread 0 gets the totals.
__device__ void block_sum2(double& a, double& b) {
  __shared__ double sa[kThreads], sb[kThreads];
  sa[threadIdx.x] = a;
  sb[threadIdx.x] = b;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      sa[threadIdx.x] += sa[threadIdx.x + half];
      sb[threadIdx.x] += sb[threadIdx.x + half];
    }
    __syncthreads();
  }
  a = sa[0];
  b = sb[0];
}

// The range of channel values that block s of `splits` sums.
__device__ __forceinline__ void split_range(int64_t m, int splits, int s, int64_t& begin, int64_t& end) {
  begin = m * s / splits;
  end = m * (s + 1) / splits;
}

// partial[(c*splits + s)*2 + {0, 1}] = sums of d and d^2, d = x - x[0, c, 0] (the CPU's shift).
__global__ void stats_partial_kernel(const float* x, int64_t channels, int64_t inner, int64_t m,
                                     int splits, double* partial) {
  const int s = blockIdx.x;
  const int64_t c = blockIdx.y;
  const double shift = x[c * inner];
  int64_t begin, end;
  split_range(m, splits, s, begin, end);
  double sum = 0.0, sq = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double d = x[channel_at(i, c, channels, inner)] - shift;
    sum += d;
    sq += d * d;
  }
  block_sum2(sum, sq);
  if (threadIdx.x == 0) {
    partial[(c * splits + s) * 2] = sum;
    partial[(c * splits + s) * 2 + 1] = sq;
  }
}

// Per channel: batch statistics, running-stat update and coef = (a, b) with y = x a + b.
__global__ void stats_finalize_kernel(const double* partial, int splits, const float* x, int64_t channels,
                                      int64_t inner, int64_t m, const float* gamma, const float* beta,
                                      float momentum, float eps, float* running_mean, float* running_var,
                                      float* save_mean, float* save_invstd, float* coef) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  double s = 0.0, ss = 0.0;
  for (int k = 0; k < splits; ++k) {
    s += partial[(c * splits + k) * 2];
    ss += partial[(c * splits + k) * 2 + 1];
  }
  const double shift = x[c * inner];
  const double mean_shifted = s / m;
  const double var = fmax(ss / m - mean_shifted * mean_shifted, 0.0);
  const double mean = shift + mean_shifted;
  const double invstd = 1.0 / sqrt(var + eps);
  save_mean[c] = static_cast<float>(mean);
  save_invstd[c] = static_cast<float>(invstd);
  running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
  running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * var * m / (m - 1));
  const double a = gamma[c] * invstd;
  coef[c] = static_cast<float>(a);
  coef[channels + c] = static_cast<float>(beta[c] - mean * a);
}

// Evaluation: coef = (a, b) from the running statistics.
__global__ void eval_coef_kernel(const float* gamma, const float* beta, const float* running_mean,
                                 const float* running_var, float eps, int64_t channels, float* coef) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  const double invstd = 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
  const double a = gamma[c] * invstd;
  coef[c] = static_cast<float>(a);
  coef[channels + c] = static_cast<float>(beta[c] - running_mean[c] * a);
}

// y = x * a_c + b_c.
__global__ void affine_kernel(const float* x, const float* coef, int64_t channels, int64_t inner,
                              int64_t total, float* y) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (t / inner) % channels;
    y[t] = x[t] * coef[c] + coef[channels + c];
  }
}

// partial[(c*splits + s)*2 + {0, 1}] = sums of dy and dy * (x - mean_c) (the difference in float).
__global__ void grad_partial_kernel(const float* dy, const float* x, const float* mean, int64_t channels,
                                    int64_t inner, int64_t m, int splits, double* partial) {
  const int s = blockIdx.x;
  const int64_t c = blockIdx.y;
  const float mu = mean[c];
  int64_t begin, end;
  split_range(m, splits, s, begin, end);
  double sum = 0.0, sum_x = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const int64_t at = channel_at(i, c, channels, inner);
    const float g = dy[at];
    sum += g;
    sum_x += static_cast<double>(g) * (x[at] - mu);
  }
  block_sum2(sum, sum_x);
  if (threadIdx.x == 0) {
    partial[(c * splits + s) * 2] = sum;
    partial[(c * splits + s) * 2 + 1] = sum_x;
  }
}

// Per channel: dbeta, dgamma and coef = (k, c1, c2) with dx = k (dy - c1 - (x - mean) c2).
__global__ void grad_finalize_kernel(const double* partial, int splits, int64_t channels, int64_t m,
                                     const float* gamma, const float* invstd, bool training,
                                     float* dgamma, float* dbeta, float* coef) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  double s_dy = 0.0, s_dyx = 0.0;
  for (int k = 0; k < splits; ++k) {
    s_dy += partial[(c * splits + k) * 2];
    s_dyx += partial[(c * splits + k) * 2 + 1];
  }
  const float is = invstd[c];
  const double db = s_dy, dg = s_dyx * is;
  dbeta[c] = static_cast<float>(db);
  dgamma[c] = static_cast<float>(dg);
  coef[c] = static_cast<float>(gamma[c] * static_cast<double>(is));
  coef[channels + c] = training ? static_cast<float>(db / m) : 0.0f;
  coef[2 * channels + c] = training ? static_cast<float>(dg * is / m) : 0.0f;
}

// dx = k * (dy - c1 - (x - mean) * c2).
__global__ void grad_input_kernel(const float* dy, const float* x, const float* mean, const float* coef,
                                  int64_t channels, int64_t inner, int64_t total, float* dx) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (t / inner) % channels;
    dx[t] = coef[c] * (dy[t] - coef[channels + c] - (x[t] - mean[c]) * coef[2 * channels + c]);
  }
}

void check_on_gpu(const char* op, const char* what, const Tensor& t) {
  if (!t.is_cuda())
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is on the CPU but x is on the GPU"));
}

unsigned channel_blocks(int64_t channels) { return static_cast<unsigned>((channels + kThreads - 1) / kThreads); }

// Scratch of `doubles` doubles from the caching allocator (two floats each).
Tensor double_scratch(int64_t doubles) { return Tensor({2 * doubles}, Device::CUDA); }

void check_grid(const char* op, const Layout& l, const Tensor& x) {
  QNN_CHECK(l.c <= 65535, op, ": at most 65535 channels on the GPU, x is ", shape_str(x.shape()));
}

}  // namespace

Tensor batch_norm_forward_training(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   Tensor& running_mean, Tensor& running_var, float momentum,
                                   float eps, Tensor& save_mean, Tensor& save_invstd) {
  const char* op = "batch_norm";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    check_on_gpu(op, "a parameter", *t);
  const Layout l = layout_of(x);
  check_grid(op, l, x);
  const int64_t m = l.count();
  Tensor y(x.shape(), Device::CUDA);
  save_mean = Tensor({l.c}, Device::CUDA);
  save_invstd = Tensor({l.c}, Device::CUDA);
  if (l.c == 0) return y;
  const int splits = splits_for(l);
  Tensor partial = double_scratch(l.c * splits * 2);
  Tensor coef({2 * l.c}, Device::CUDA);
  double* pp = reinterpret_cast<double*>(partial.data());
  stats_partial_kernel<<<dim3(unsigned(splits), unsigned(l.c)), kThreads, 0, stream()>>>(x.data(), l.c, l.inner,
                                                                                        m, splits, pp);
  QNN_LAUNCH_CHECK("batch_norm statistics, x ", shape_str(x.shape()));
  stats_finalize_kernel<<<channel_blocks(l.c), kThreads, 0, stream()>>>(
      pp, splits, x.data(), l.c, l.inner, m, gamma.data(), beta.data(), momentum, eps, running_mean.data(),
      running_var.data(), save_mean.data(), save_invstd.data(), coef.data());
  QNN_LAUNCH_CHECK("batch_norm finalize, x ", shape_str(x.shape()));
  affine_kernel<<<blocks_for(x.numel()), kThreads, 0, stream()>>>(x.data(), coef.data(), l.c, l.inner, x.numel(),
                                                                  y.data());
  QNN_LAUNCH_CHECK("batch_norm normalise, x ", shape_str(x.shape()));
  return y;
}

Tensor batch_norm_forward_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                               const Tensor& running_mean, const Tensor& running_var, float eps) {
  const char* op = "batch_norm";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    check_on_gpu(op, "a parameter", *t);
  const Layout l = layout_of(x);
  Tensor y(x.shape(), Device::CUDA);
  if (l.c == 0 || x.numel() == 0) return y;
  Tensor coef({2 * l.c}, Device::CUDA);
  eval_coef_kernel<<<channel_blocks(l.c), kThreads, 0, stream()>>>(gamma.data(), beta.data(), running_mean.data(),
                                                                   running_var.data(), eps, l.c, coef.data());
  QNN_LAUNCH_CHECK("batch_norm eval coefficients, x ", shape_str(x.shape()));
  affine_kernel<<<blocks_for(x.numel()), kThreads, 0, stream()>>>(x.data(), coef.data(), l.c, l.inner, x.numel(),
                                                                  y.data());
  QNN_LAUNCH_CHECK("batch_norm eval normalise, x ", shape_str(x.shape()));
  return y;
}

BatchNormGrads batch_norm_backward(const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                   const Tensor& mean, const Tensor& invstd, bool training,
                                   bool need_dx) {
  const char* op = "batch_norm_backward";
  for (const Tensor* t : std::initializer_list<const Tensor*>{&dy, &gamma, &mean, &invstd})
    check_on_gpu(op, "an input", *t);
  const Layout l = layout_of(x);
  check_grid(op, l, x);
  const int64_t m = l.count();
  BatchNormGrads g;
  g.dgamma = Tensor({l.c}, Device::CUDA);
  g.dbeta = Tensor({l.c}, Device::CUDA);
  if (need_dx) g.dx = Tensor(x.shape(), Device::CUDA);
  if (l.c == 0) return g;
  const int splits = splits_for(l);
  Tensor partial = double_scratch(l.c * splits * 2);
  Tensor coef({3 * l.c}, Device::CUDA);
  double* pp = reinterpret_cast<double*>(partial.data());
  grad_partial_kernel<<<dim3(unsigned(splits), unsigned(l.c)), kThreads, 0, stream()>>>(
      dy.data(), x.data(), mean.data(), l.c, l.inner, m, splits, pp);
  QNN_LAUNCH_CHECK("batch_norm_backward sums, x ", shape_str(x.shape()));
  grad_finalize_kernel<<<channel_blocks(l.c), kThreads, 0, stream()>>>(pp, splits, l.c, m, gamma.data(),
                                                                       invstd.data(), training, g.dgamma.data(),
                                                                       g.dbeta.data(), coef.data());
  QNN_LAUNCH_CHECK("batch_norm_backward finalize, x ", shape_str(x.shape()));
  if (need_dx && x.numel() > 0) {
    grad_input_kernel<<<blocks_for(x.numel()), kThreads, 0, stream()>>>(dy.data(), x.data(), mean.data(),
                                                                        coef.data(), l.c, l.inner, x.numel(),
                                                                        g.dx.data());
    QNN_LAUNCH_CHECK("batch_norm_backward dx, x ", shape_str(x.shape()));
  }
  return g;
}

}  // namespace qnn::cuda
