// Single-precision matrix multiply, row-major, BLAS semantics:
//   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C,  op(X) = X or X^T.
// lda/ldb/ldc are row strides of the matrices as stored. With beta == 0, C's old contents are
// ignored (NaNs included). This is the routine that decides CPU speed: convolution (through
// im2col) and Linear both land here. It runs multithreaded (OpenMP) when called outside a
// parallel region and single-threaded inside one (the convolution parallelises over images).
#pragma once
#include <cstdint>

namespace qnn {

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// The plain triple loop, for tests to compare against.
void sgemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                     int64_t ldc);

}  // namespace qnn
