// CUDA fully connected layer, the twin of tensor/linear.cpp (formulas in tensor/linear.h):
//   forward          y[N x out]   = x[N x in] * w^T + b
//   backward data    dx[N x in]   = dy[N x out] * w[out x in]
//   backward weight  dw[out x in] += dy^T * x,     db[out] += sum over rows of dy
// Each product is one cublasSgemm. cuBLAS is column-major and our tensors are row-major; a
// row-major A [m x n] is a column-major A^T [n x m] with leading dimension n, so every product
// is computed transposed: y^T = w * x^T, dx^T = w^T * dy^T, dw^T += x^T * dy. Always in full
// float32, never TF32, whatever backend_options().tf32 (which is about convolutions): PyTorch's
// default too (torch.backends.cuda.matmul.allow_tf32 is off, torch.backends.cudnn.allow_tf32 on).
// The bias is written into y first and the product added with beta = 1, as on the CPU; the bias
// gradient is a column sum with one thread per column adding the rows in order, the same float
// operations as the CPU loop (bit-identical). The products agree with the CPU to fp32 rounding
// of an `in`- (forward), `out`- (backward data) or N-term (backward weight) sum.
#include <initializer_list>

#include "tensor/cuda_runtime.h"
#include "tensor/linear.h"

namespace qnn::cuda {

namespace {

// y[r, o] = b[o] for every row r.
__global__ void fill_rows_kernel(float* y, const float* b, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    y[t] = b[t % cols];
}

// db[o] += dy[r, o] for r = 0, 1, ..., rows-1 in order: one thread per column.
__global__ void column_sum_into_kernel(const float* dy, int64_t rows, int64_t cols, float* db) {
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < cols; o += int64_t(gridDim.x) * blockDim.x) {
    float s = db[o];
    for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + o];
    db[o] = s;
  }
}

void check_on_gpu(const char* op, const char* what, const Tensor& t) {
  if (t.defined() && !t.is_cuda())
    throw Error(str("[", op, "] ", what, " ", shape_str(t.shape()), " is on the CPU but the layer runs on the GPU"));
}

void check_int(const char* op, std::initializer_list<int64_t> sizes) {
  for (int64_t s : sizes)
    QNN_CHECK(s < (int64_t(1) << 31), op, ": size ", s, " too large for cuBLAS's int arguments");
}

}  // namespace

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_on_gpu("linear_forward", "weight", w);
  check_on_gpu("linear_forward", "bias", bias);
  const int64_t n = x.size(0), in = x.size(1), out = w.size(0);
  check_int("linear_forward", {n, in, out});
  Tensor y({n, out}, Device::CUDA);
  if (y.numel() == 0) return y;
  if (bias.defined()) {
    fill_rows_kernel<<<blocks_for(n * out), kThreads, 0, stream()>>>(y.data(), bias.data(), n, out);
    QNN_LAUNCH_CHECK("linear_forward bias, x ", shape_str(x.shape()), ", w ", shape_str(w.shape()));
  }
  if (in == 0) {  // empty sums (cuBLAS refuses a leading dimension of 0)
    if (!bias.defined()) y.zero();
    return y;
  }
  const float one = 1.0f, beta = bias.defined() ? 1.0f : 0.0f;
  // Column-major: y^T [out x N] = w [out x in] (stored as in x out, transposed) * x^T [in x N].
  QNN_CUBLAS_CHECK(cublasSgemm(cublas(false), CUBLAS_OP_T, CUBLAS_OP_N, int(out), int(n), int(in), &one, w.data(),
                               int(in), x.data(), int(in), &beta, y.data(), int(out)),
                   "x ", shape_str(x.shape()), ", w ", shape_str(w.shape()));
  return y;
}

Tensor linear_backward_data(const Tensor& dy, const Tensor& w) {
  check_on_gpu("linear_backward_data", "weight", w);
  const int64_t n = dy.size(0), out = w.size(0), in = w.size(1);
  check_int("linear_backward_data", {n, in, out});
  Tensor dx({n, in}, Device::CUDA);
  if (dx.numel() == 0) return dx;
  if (out == 0) {  // empty sums
    dx.zero();
    return dx;
  }
  const float one = 1.0f, zero = 0.0f;
  // Column-major: dx^T [in x N] = w^T [in x out] (w as stored) * dy^T [out x N].
  QNN_CUBLAS_CHECK(cublasSgemm(cublas(false), CUBLAS_OP_N, CUBLAS_OP_N, int(in), int(n), int(out), &one, w.data(),
                               int(in), dy.data(), int(out), &zero, dx.data(), int(in)),
                   "dy ", shape_str(dy.shape()), ", w ", shape_str(w.shape()));
  return dx;
}

void linear_backward_weight(const Tensor& x, const Tensor& dy, Tensor& dw, Tensor& db) {
  check_on_gpu("linear_backward_weight", "output gradient", dy);
  check_on_gpu("linear_backward_weight", "weight gradient", dw);
  check_on_gpu("linear_backward_weight", "bias gradient", db);
  const int64_t n = x.size(0), in = x.size(1), out = dy.size(1);
  check_int("linear_backward_weight", {n, in, out});
  if (dw.numel() > 0 && n > 0) {  // no rows: nothing to add
    const float one = 1.0f;
    // Column-major: dw^T [in x out] += x^T [in x N] (x as stored) * dy [N x out] (dy^T stored).
    QNN_CUBLAS_CHECK(cublasSgemm(cublas(false), CUBLAS_OP_N, CUBLAS_OP_T, int(in), int(out), int(n), &one, x.data(),
                                 int(in), dy.data(), int(out), &one, dw.data(), int(in)),
                     "x ", shape_str(x.shape()), ", dy ", shape_str(dy.shape()));
  }
  if (db.defined() && out > 0) {
    column_sum_into_kernel<<<blocks_for(out), kThreads, 0, stream()>>>(dy.data(), n, out, db.data());
    QNN_LAUNCH_CHECK("linear_backward_weight bias, dy ", shape_str(dy.shape()));
  }
}

}  // namespace qnn::cuda
