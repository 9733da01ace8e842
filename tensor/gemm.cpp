// sgemm (see tensor/gemm.h) built on the register-blocked micro-kernel of tensor/gemm_kernel.h.
//
// Blocking (Goto & van de Geijn 2008): the k dimension is cut into blocks of KC and the columns
// into blocks of NC; each KC x NC block of op(B) is copied ("packed") into a contiguous buffer,
// so the micro-kernel streams it with unit stride whether B was transposed or not and the block
// stays in L2 while every row tile of A passes over it. A is read in place through strides
// (A(i, p) = a[i*lda + p], or a[p*lda + i] when transposed): the kernel broadcasts one scalar
// of A per row and step, so A needs no contiguity. beta is applied once up front (beta == 0
// overwrites C on the first k block, so NaNs in C are ignored); alpha is applied as each tile
// is stored.
//
// Threads: outside an OpenMP parallel region the columns (or rows, when C is narrow) are split
// into one contiguous range per thread, statically; each element of C is computed by one thread
// with the same FMA sequence as in a single-threaded run, so results never depend on timing.
#include "tensor/gemm.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "tensor/check.h"
#include "tensor/gemm_kernel.h"

namespace qnn {

namespace {

constexpr int MR = 8;    // rows of a register tile
constexpr int NV = 2;    // 16-float vectors per tile row
constexpr int NR = 16 * NV;
constexpr int64_t KC = 256;  // k block: a KC x NR strip of packed B is 32 KB
constexpr int64_t NC = 512;  // column block: KC x NC packed B is 512 KB, within L2

std::vector<float>& pack_buffer() {
  thread_local std::vector<float> buffer;
  return buffer;
}

// Copies op(B)[p0 : p0+kc, j0 : j0+nc] into dst as kc rows of nc floats.
void pack_b(bool trans_b, const float* b, int64_t ldb, int64_t p0, int64_t kc, int64_t j0,
            int64_t nc, float* dst) {
  if (!trans_b) {
    for (int64_t p = 0; p < kc; ++p)
      std::copy(b + (p0 + p) * ldb + j0, b + (p0 + p) * ldb + j0 + nc, dst + p * nc);
    return;
  }
  // op(B)(p, j) = b[j*ldb + p]: walk the stored rows (contiguous in p) in small blocks.
  constexpr int64_t T = 16;
  for (int64_t jj = 0; jj < nc; jj += T)
    for (int64_t pp = 0; pp < kc; pp += T)
      for (int64_t j = jj; j < std::min(nc, jj + T); ++j) {
        const float* src = b + (j0 + j) * ldb + p0;
        for (int64_t p = pp; p < std::min(kc, pp + T); ++p) dst[p * nc + j] = src[p];
      }
}

// The single-threaded blocked product on a sub-problem; beta has already been handled, and
// `overwrite` says whether the first k block should replace C (beta == 0) or add to it.
void sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                  bool overwrite) {
  const int64_t rs_a = trans_a ? 1 : lda;
  const int64_t cs_a = trans_a ? lda : 1;
  std::vector<float>& packed = pack_buffer();
  packed.resize(static_cast<size_t>(std::min(k, KC) * std::min(n, NC)));
  for (int64_t j0 = 0; j0 < n; j0 += NC) {
    const int64_t nc = std::min(NC, n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += KC) {
      const int64_t kc = std::min(KC, k - p0);
      pack_b(trans_b, b, ldb, p0, kc, j0, nc, packed.data());
      const bool accumulate = !(overwrite && p0 == 0);
      for (int64_t jr = 0; jr < nc; jr += NR)
        for (int64_t ir = 0; ir < m; ir += MR)
          kernel::micro_kernel<MR, NV>(kc, a + ir * rs_a + p0 * cs_a, rs_a, cs_a, packed.data() + jr,
                                       nc, c + ir * ldc + j0 + jr, ldc,
                                       static_cast<int>(std::min<int64_t>(MR, m - ir)),
                                       static_cast<int>(std::min<int64_t>(NR, nc - jr)), alpha,
                                       accumulate, nullptr);
    }
  }
}

}  // namespace

void sgemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                     const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                     int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += static_cast<double>(trans_a ? a[p * lda + i] : a[i * lda + p]) *
               (trans_b ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = static_cast<float>(alpha * sum + (beta == 0.0f ? 0.0 : beta * c[i * ldc + j]));
    }
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  QNN_CHECK(m >= 0 && n >= 0 && k >= 0, "negative size m=", m, " n=", n, " k=", k);
  if (m == 0 || n == 0) return;
  // beta first: 0 clears (ignoring NaNs) unless the first k block will overwrite anyway.
  const bool overwrite = beta == 0.0f && k > 0 && alpha != 0.0f;
  if (beta != 1.0f && !overwrite)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
  if (k == 0 || alpha == 0.0f) return;

  const int threads = omp_in_parallel() || m * n * k < (1 << 17) ? 1 : omp_get_max_threads();
  if (threads == 1) {
    sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, c, ldc, overwrite);
    return;
  }
  // One contiguous range of whole tiles per thread: columns when C is wide enough, else rows.
  const bool split_columns = n >= NR * threads || n >= m;
  const int64_t extent = split_columns ? n : m;
  const int64_t unit = split_columns ? NR : MR;
  const int64_t units = (extent + unit - 1) / unit;
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    const int64_t begin = std::min(extent, units * t / team * unit);
    const int64_t end = std::min(extent, units * (t + 1) / team * unit);
    if (begin < end) {
      if (split_columns) {
        const float* b_part = trans_b ? b + begin * ldb : b + begin;
        sgemm_serial(trans_a, trans_b, m, end - begin, k, alpha, a, lda, b_part, ldb, c + begin, ldc,
                     overwrite);
      } else {
        const float* a_part = trans_a ? a + begin : a + begin * lda;
        sgemm_serial(trans_a, trans_b, end - begin, n, k, alpha, a_part, lda, b, ldb,
                     c + begin * ldc, ldc, overwrite);
      }
    }
  }
}

}  // namespace qnn
