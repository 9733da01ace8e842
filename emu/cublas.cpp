// The cuBLAS calls qnn makes, on the CPU, for the emulated build (docs/cuda-emulator.md):
// single-precision GEMM, plain and strided-batched, in cuBLAS's column-major convention
//   C = alpha op(A) op(B) + beta C,  op(A) m x k with leading dimension lda, op(B) k x n, C m x n,
// with the scalars in host memory (cuBLAS's default pointer mode). As in cuBLAS, C is not read
// when beta is 0, so a C never written (NaN in the emulator's fresh allocations) does not leak
// into the result. Each product is summed in double and rounded once: results are close to any
// fp32 summation order, not equal to cuBLAS's. Under CUBLAS_TF32_TENSOR_OP_MATH the operands are
// first rounded to TF32, as tensor cores take them (emu/tf32.h). Arguments cuBLAS would refuse
// are refused with CUBLAS_STATUS_INVALID_VALUE, and matrices outside device memory with a message.
#include <cublas_v2.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "emu/runtime.h"
#include "emu/tf32.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

namespace {

struct Matrix {
  const float* p;
  int rows, cols, ld;  // as stored (column-major), before op
  bool transposed;
  float at(int i, int j) const { return transposed ? p[j + int64_t(i) * ld] : p[i + int64_t(j) * ld]; }
};

bool valid(cublasOperation_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T; }

// The bytes a column-major matrix of `rows` x `cols` with leading dimension `ld` spans.
size_t span(int rows, int cols, int ld) {
  return rows == 0 || cols == 0 ? 0 : (size_t(cols - 1) * ld + rows) * sizeof(float);
}

bool on_device(const char* what, const void* p, size_t bytes) {
  if (bytes == 0 || qnn_emu::is_device_memory(p, bytes)) return true;
  std::fprintf(stderr, "CUDA emulator: cuBLAS gemm: %s (%zu bytes at %p) is not device memory\n", what, bytes, p);
  return false;
}

// One column of C at a time (in parallel: columns are independent), each element summed in
// double over l = 0..k-1 in order; with `tf32`, of the operands rounded to TF32.
void gemm(Matrix a, Matrix b, float alpha, float beta, float* c, int m, int n, int k, int ldc, bool tf32) {
  const auto operand = [tf32](float v) { return double(tf32 ? qnn_emu::round_to_tf32(v) : v); };
#pragma omp parallel for
  for (int j = 0; j < n; ++j) {
    std::vector<double> sum(size_t(m), 0.0);
    for (int l = 0; l < k; ++l) {
      const double blj = operand(b.at(l, j));
      if (a.transposed)
        for (int i = 0; i < m; ++i) sum[size_t(i)] += operand(a.p[l + int64_t(i) * a.ld]) * blj;
      else
        for (int i = 0; i < m; ++i) sum[size_t(i)] += operand(a.p[i + int64_t(l) * a.ld]) * blj;
    }
    for (int i = 0; i < m; ++i) {
      float& out = c[i + int64_t(j) * ldc];
      out = beta == 0.0f ? float(alpha * sum[size_t(i)]) : float(alpha * sum[size_t(i)] + double(beta) * out);
    }
  }
}

}  // namespace

const char* cublasGetStatusString(cublasStatus_t status) {
  return status == CUBLAS_STATUS_SUCCESS ? "CUBLAS_STATUS_SUCCESS" : "a cuBLAS error (CUDA emulator)";
}
cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t, void* workspace, size_t bytes) {
  return bytes == 0 || qnn_emu::is_device_memory(workspace, bytes) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  handle->math = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         long long stride_a, const float* B, int ldb, long long stride_b,
                                         const float* beta, float* C, int ldc, long long stride_c, int batches) {
  if (!valid(transa) || !valid(transb) || m < 0 || n < 0 || k < 0 || batches < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
  const int a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batches == 0) return CUBLAS_STATUS_SUCCESS;
  for (int i = 0; i < batches; ++i)
    if (!on_device("A", A + i * stride_a, k == 0 ? 0 : span(a_rows, a_cols, lda)) ||
        !on_device("B", B + i * stride_b, k == 0 ? 0 : span(b_rows, b_cols, ldb)) ||
        !on_device("C", C + i * stride_c, span(m, n, ldc)))
      return CUBLAS_STATUS_INVALID_VALUE;
  const float alpha_value = *alpha, beta_value = *beta;
  const bool tf32 = handle->math == CUBLAS_TF32_TENSOR_OP_MATH;  // the mode at the call, as in cuBLAS
  qnn_emu::enqueue(handle->stream, "cublasSgemm", [=] {
    for (int i = 0; i < batches; ++i)
      gemm(Matrix{A + i * stride_a, a_rows, a_cols, lda, ta}, Matrix{B + i * stride_b, b_rows, b_cols, ldb, tb},
           alpha_value, beta_value, C + i * stride_c, m, n, k, ldc, tf32);
  });
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                              int k, const float* alpha, const float* A, int lda, const float* B, int ldb,
                              const float* beta, float* C, int ldc) {
  return cublasSgemmStridedBatched(handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}
