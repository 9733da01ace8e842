// GPU convolution without cuDNN (tensor/conv_gemm.h): im2col and col2im kernels plus cuBLAS,
// the lowering of Chellapilla et al., "High performance convolutional neural networks for
// document processing" (2006), as the CPU path does it (tensor/im2col.h), plus the bias kernels.
//
// The batch is processed in chunks of images whose column matrices fit kColumnFloats (64 MiB),
// a temporary from the caching allocator. The column matrix of a chunk is laid out either
//   per image  col[(n*K + kk)*P + p]          forward and backward data: one strided-batched
//                                             sgemm over the images of the chunk, or
//   side by side col[kk*(count*P) + n*P + p]  backward weight: the reduction over images and
//                                             pixels is then a single sgemm of depth count*P.
// Row-major matrices are handed to column-major cuBLAS as their transposes: a row-major
// A [m x n] is a column-major A^T [n x m] with leading dimension n.
//
// col2im gathers: each thread owns one input pixel and adds the column entries that came from
// it, in the (u, v) order of the CPU's col2im, so no atomics and a fixed summation order.
// Tolerance against the CPU: the sgemm sums in cuBLAS's order (and in TF32 unless
// backend_options().tf32 is off), so results agree to fp32 rounding of a K-term (forward,
// backward data) or N*P-term (backward weight) sum, not bit for bit.
#include <algorithm>
#include <string>

#include "tensor/conv_gemm.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

constexpr int64_t kColumnFloats = int64_t(16) << 20;  // 64 MiB of columns per chunk

// The sizes the kernels need, as plain numbers (ConvGeometry's helpers are host functions).
struct Dims {
  int64_t c, h, w, o, kh, kw, ho, wo, k, p;
  int stride, pad;
};

Dims dims_of(const ConvGeometry& g) {
  return Dims{g.c, g.h, g.w, g.o, g.kh, g.kw, g.ho, g.wo, g.k(), g.p(), g.stride, g.pad};
}

// col[kk*row_stride + n*image_stride + p] = x_{n0+n}[c][i*s + u - pad][j*s + v - pad] (0 outside),
// kk = (c*KH + u)*KW + v, p = i*Wo + j, for the `count` images of the chunk.
__global__ void im2col_kernel(const float* x, Dims d, int64_t n0, int64_t count, float* col,
                              int64_t row_stride, int64_t image_stride) {
  const int64_t total = count * d.k * d.p;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = t % d.p;
    const int64_t kk = (t / d.p) % d.k;
    const int64_t n = t / (d.p * d.k);
    const int64_t i = p / d.wo, j = p % d.wo;
    const int64_t v = kk % d.kw, u = (kk / d.kw) % d.kh, c = kk / (d.kw * d.kh);
    const int64_t y = i * d.stride + u - d.pad, xx = j * d.stride + v - d.pad;
    float value = 0.0f;
    if (y >= 0 && y < d.h && xx >= 0 && xx < d.w) value = x[(((n0 + n) * d.c + c) * d.h + y) * d.w + xx];
    col[kk * row_stride + n * image_stride + p] = value;
  }
}

// dx_{n0+n}[c][y][x] = sum over (u, v) of the column entries read from that pixel; col laid out
// per image (row stride P, image stride K*P).
__global__ void col2im_kernel(const float* col, Dims d, int64_t n0, int64_t count, float* dx) {
  const int64_t image = d.c * d.h * d.w;
  const int64_t total = count * image;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t xx = t % d.w, y = (t / d.w) % d.h, c = (t / (d.w * d.h)) % d.c, n = t / image;
    const float* cn = col + n * d.k * d.p;
    float sum = 0.0f;
    for (int64_t u = 0; u < d.kh; ++u) {
      const int64_t iy = y + d.pad - u;  // = i * stride for the output row i that read (y, u)
      if (iy < 0 || iy % d.stride != 0 || iy / d.stride >= d.ho) continue;
      const int64_t i = iy / d.stride;
      for (int64_t v = 0; v < d.kw; ++v) {
        const int64_t jx = xx + d.pad - v;
        if (jx < 0 || jx % d.stride != 0 || jx / d.stride >= d.wo) continue;
        sum += cn[((c * d.kh + u) * d.kw + v) * d.p + i * d.wo + jx / d.stride];
      }
    }
    dx[n0 * image + t] = sum;
  }
}

// dyt[o*(count*P) + n*P + p] = dy_{n0+n}[o][p]: the chunk's output gradients side by side.
__global__ void gather_outputs_kernel(const float* dy, Dims d, int64_t n0, int64_t count, float* dyt) {
  const int64_t total = d.o * count * d.p;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t p = t % d.p, n = (t / d.p) % count, o = t / (d.p * count);
    dyt[t] = dy[((n0 + n) * d.o + o) * d.p + p];
  }
}

// y's channel of element t is (t / P) % O in NCHW, t % O channels-last.
__global__ void add_bias_kernel(float* y, const float* bias, int64_t total, int64_t p, int64_t o, bool channels_last) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    y[t] += bias[channels_last ? t % o : (t / p) % o];
}

// One block per output channel: a fixed split of its N*P values over the threads, summed in
// double and reduced in a fixed tree, then added to db[o] (deterministic; the same values in the
// same order in either memory format).
__global__ void bias_grad_kernel(const float* dy, int64_t n, int64_t o, int64_t p, bool channels_last, float* db) {
  __shared__ double shared[kThreads];
  const int64_t ch = blockIdx.x;
  double s = 0.0;
  for (int64_t m = threadIdx.x; m < n * p; m += blockDim.x)
    s += dy[channels_last ? m * o + ch : ((m / p) * o + ch) * p + m % p];
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[ch] = float(db[ch] + shared[0]);
}

// Images per chunk: as many as fit kColumnFloats (at least one), spread evenly over the chunks.
int64_t chunk_images(const ConvGeometry& g) {
  const int64_t fit = std::max<int64_t>(1, kColumnFloats / std::max<int64_t>(1, g.k() * g.p()));
  const int64_t chunks = (g.n + fit - 1) / fit;
  return (g.n + chunks - 1) / chunks;
}

std::string describe(const ConvGeometry& g) {
  return str("x [", g.n, ", ", g.c, ", ", g.h, ", ", g.w, "], w [", g.o, ", ", g.c, ", ", g.kh, ", ",
             g.kw, "], stride ", g.stride, ", padding ", g.pad);
}

// cuBLAS takes int sizes.
void check_int_sizes(const char* op, const ConvGeometry& g, int64_t reduction) {
  const int64_t limit = int64_t(1) << 31;
  QNN_CHECK(g.k() * g.p() < limit && g.o * g.p() < limit && g.o * g.k() < limit && reduction < limit,
            op, ": sizes too large for cuBLAS's int arguments (", describe(g), ")");
}

}  // namespace

Tensor conv2d_forward_gemm(const ConvGeometry& g, const Tensor& x, const Tensor& w) {
  Tensor y({g.n, g.o, g.ho, g.wo}, Device::CUDA);
  if (y.numel() == 0) return y;
  check_int_sizes("conv2d_forward", g, g.k());
  const Dims d = dims_of(g);
  const int64_t chunk = chunk_images(g);
  Tensor col({chunk * g.k() * g.p()}, Device::CUDA);
  const float one = 1.0f, zero = 0.0f;
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t count = std::min(chunk, g.n - n0);
    im2col_kernel<<<blocks_for(count * g.k() * g.p()), kThreads, 0, stream()>>>(
        x.data(), d, n0, count, col.data(), g.p(), g.k() * g.p());
    QNN_LAUNCH_CHECK("conv2d_forward im2col, ", describe(g));
    // Column-major: y_n^T [P x O] = col_n^T [P x K] * w^T [K x O], for every image of the chunk.
    QNN_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas(backend_options().tf32), CUBLAS_OP_N, CUBLAS_OP_N, int(g.p()), int(g.o),
                                               int(g.k()), &one, col.data(), int(g.p()), g.k() * g.p(),
                                               w.data(), int(g.k()), 0, &zero,
                                               y.data() + n0 * g.o * g.p(), int(g.p()), g.o * g.p(),
                                               int(count)),
                     "conv2d_forward, ", describe(g));
  }
  return y;
}

Tensor conv2d_backward_data_gemm(const ConvGeometry& g, const Tensor& dy, const Tensor& w) {
  Tensor dx({g.n, g.c, g.h, g.w}, Device::CUDA);
  if (dx.numel() == 0) return dx;
  check_int_sizes("conv2d_backward_data", g, g.o);
  const Dims d = dims_of(g);
  const int64_t chunk = chunk_images(g);
  Tensor col({chunk * g.k() * g.p()}, Device::CUDA);
  const float one = 1.0f, zero = 0.0f;
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t count = std::min(chunk, g.n - n0);
    // Column-major: col_n^T [P x K] = dy_n^T [P x O] * w [O x K] (w stored as K x O, transposed).
    QNN_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas(backend_options().tf32), CUBLAS_OP_N, CUBLAS_OP_T, int(g.p()), int(g.k()),
                                               int(g.o), &one, dy.data() + n0 * g.o * g.p(), int(g.p()),
                                               g.o * g.p(), w.data(), int(g.k()), 0, &zero, col.data(),
                                               int(g.p()), g.k() * g.p(), int(count)),
                     "conv2d_backward_data, ", describe(g));
    col2im_kernel<<<blocks_for(count * g.c * g.h * g.w), kThreads, 0, stream()>>>(col.data(), d, n0,
                                                                                   count, dx.data());
    QNN_LAUNCH_CHECK("conv2d_backward_data col2im, ", describe(g));
  }
  return dx;
}

void conv2d_backward_weight_gemm(const ConvGeometry& g, const Tensor& x, const Tensor& dy, Tensor& dw) {
  if (g.n == 0 || dw.numel() == 0) return;
  const Dims d = dims_of(g);
  const int64_t chunk = chunk_images(g);
  check_int_sizes("conv2d_backward_weight", g, chunk * g.p());
  Tensor col({chunk * g.k() * g.p()}, Device::CUDA);
  Tensor dyt({chunk * g.o * g.p()}, Device::CUDA);
  const float one = 1.0f;
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk) {
    const int64_t count = std::min(chunk, g.n - n0);
    const int64_t len = count * g.p();  // reduction length of this chunk's sgemm
    im2col_kernel<<<blocks_for(count * g.k() * g.p()), kThreads, 0, stream()>>>(
        x.data(), d, n0, count, col.data(), len, g.p());
    QNN_LAUNCH_CHECK("conv2d_backward_weight im2col, ", describe(g));
    gather_outputs_kernel<<<blocks_for(count * g.o * g.p()), kThreads, 0, stream()>>>(dy.data(), d, n0,
                                                                                      count, dyt.data());
    QNN_LAUNCH_CHECK("conv2d_backward_weight gather, ", describe(g));
    // Column-major: dw^T [K x O] += col [K x len] * dyt^T [len x O].
    QNN_CUBLAS_CHECK(cublasSgemm(cublas(backend_options().tf32), CUBLAS_OP_T, CUBLAS_OP_N, int(g.k()), int(g.o), int(len), &one,
                                 col.data(), int(len), dyt.data(), int(len), &one, dw.data(), int(g.k())),
                     "conv2d_backward_weight, ", describe(g));
  }
}

void conv2d_add_bias(const ConvGeometry& g, Tensor& y, const Tensor& bias) {
  const int64_t total = y.numel();
  if (total == 0) return;
  add_bias_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(y.data(), bias.data(), total, g.p(), g.o,
                                                                y.is_channels_last());
  QNN_LAUNCH_CHECK("conv2d bias, ", describe(g));
}

void conv2d_bias_grad(const ConvGeometry& g, const Tensor& dy, Tensor& db) {
  if (g.o == 0) return;
  bias_grad_kernel<<<unsigned(g.o), kThreads, 0, stream()>>>(dy.data(), g.n, g.o, g.p(), dy.is_channels_last(),
                                                             db.data());
  QNN_LAUNCH_CHECK("conv2d bias gradient, ", describe(g));
}

}  // namespace qnn::cuda
