// What the CPU convolution's two files (tensor/conv.cpp: forward and backward data;
// tensor/conv_weight.cpp: backward weight) share: the micro-kernel's tile, per-thread scratch
// buffers that survive between calls, packing of the weights into the kernel's panels, and the
// split of the batch over threads. Internal to those files.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/gemm_kernel.h"
#include "tensor/im2col.h"

namespace qnn {
namespace conv_lowering {

constexpr int MR = 8;
constexpr int NV = 2;
constexpr int NR = 16 * NV;

// Weights of at least this many floats are packed (and flipped, and their partial gradients summed)
// by all threads; below it the threads would cost more than they save.
constexpr int64_t kParallelPack = 1 << 16;

// Per-thread scratch that survives between calls, so the steady state allocates nothing.
// Slots 0-2 are the parallel regions' per-thread buffers; the calling thread keeps packed weights
// in kPackedSlot (and the flipped weights of backward-data in kFlippedSlot) while it takes part
// in those regions.
constexpr int kPackedSlot = 3, kFlippedSlot = 4;
inline std::vector<float>& scratch(int which) {
  thread_local std::vector<float> buffers[5];
  return buffers[which];
}

inline float* scratch_data(int which, int64_t size) {
  std::vector<float>& b = scratch(which);
  if (static_cast<int64_t>(b.size()) < size) b.resize(static_cast<size_t>(size));
  return b.data();
}

// Copies A (m x k, A(i, p) = a[i*rs + p*cs]) into panels of MR rows: panel q holds
// packed[(q*k + p)*MR + r] = A(q*MR + r, p), zero for rows past m. The kernel then reads each
// panel with unit stride (rs_a = 1, cs_a = MR). The panels live in the calling thread's scratch
// `slot` (kPackedSlot unless that holds an input), so the steady state neither allocates nor
// page-faults 9 MB per call at 512 channels. Large weights are packed by all threads, one range of
// panels each; a copy, so the result is the same either way.
inline const float* pack_a(const float* a, int64_t rs, int64_t cs, int64_t m, int64_t k,
                           int slot = kPackedSlot) {
  const int64_t panels = (m + MR - 1) / MR;
  float* packed = scratch_data(slot, panels * k * MR);
#pragma omp parallel for schedule(static) if (m * k >= kParallelPack && !omp_in_parallel())
  for (int64_t q = 0; q < panels; ++q)
    for (int64_t p = 0; p < k; ++p)
      for (int64_t r = 0; r < MR; ++r)
        packed[(q * k + p) * MR + r] = q * MR + r < m ? a[(q * MR + r) * rs + p * cs] : 0.0f;
  return packed;
}

// The contiguous range of [0, total) that thread t of `threads` owns.
inline void thread_range(int64_t total, int t, int threads, int64_t& begin, int64_t& end) {
  begin = total * t / threads;
  end = total * (t + 1) / threads;
}

// How far ahead of the tile of B being multiplied its rows are prefetched (kernel::micro_kernel's
// `prefetch`): two tiles. A tile's k rows lie ldb floats apart, one stream each, far more than
// the hardware prefetcher follows, so without it every row of a B in memory (a 1x1 layer's
// image at 56x56 is 3 MB a channel block) misses on its first use (measured: 1x1 layers at 56x56
// and 28x28 1.2-1.7x faster on two threads; one tile ahead gains less, more gains nothing).
constexpr int64_t kPrefetchTiles = 2;

// The `prefetch` argument for the tile of B at column jr of n, multiplied with the row panel at
// ir: only the first panel of each tile asks (the others find the lines already there), and
// only while the tile it asks for lies inside B's rows.
inline int64_t prefetch_distance(int64_t ir, int64_t jr, int64_t n) {
  return ir == 0 && jr + kPrefetchTiles * NR < n ? kPrefetchTiles * NR : 0;
}

// C[m x n] = A_packed[m x k] * B[k x n] (+ row_init per row), B rows of stride ldb.
inline void multiply_packed(const float* a_packed, int64_t m, int64_t k, const float* b, int64_t n,
                            int64_t ldb, float* c, int64_t ldc, const float* row_init,
                            bool accumulate = false) {
  for (int64_t jr = 0; jr < n; jr += NR)
    for (int64_t ir = 0; ir < m; ir += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, m - ir));
      const int nr = static_cast<int>(std::min<int64_t>(NR, n - jr));
      // A last tile of 16 columns or fewer (14x14: 196 = 6 x 32 + 4; 28x28: 784 = 24 x 32 + 16)
      // runs on a tile half as wide, with the same FMAs per element and half the idle lanes
      // (1x1 layers at 14x14 5-8% faster).
      if (nr <= 16)
        kernel::micro_kernel<MR, 1>(k, a_packed + ir * k, 1, MR, b + jr, ldb, c + ir * ldc + jr, ldc, mr, nr,
                                    1.0f, accumulate, row_init ? row_init + ir : nullptr);
      else
        kernel::micro_kernel<MR, NV>(k, a_packed + ir * k, 1, MR, b + jr, ldb, c + ir * ldc + jr, ldc, mr, nr,
                                     1.0f, accumulate, row_init ? row_init + ir : nullptr, nullptr, false,
                                     prefetch_distance(ir, jr, n));
    }
}

// bias_sum[o] += the sum of dy_n[o] over images [begin, end) and their pixels (the bias gradient
// of one thread's share of the batch).
inline void add_bias_sums(const ConvGeometry& g, const float* dy, int64_t begin, int64_t end,
                          float* bias_sum) {
  for (int64_t n = begin; n < end; ++n)
    for (int64_t o = 0; o < g.o; ++o) {
      const float* row = dy + n * g.image_out() + o * g.p();
      float s = 0.0f;
      for (int64_t q = 0; q < g.p(); ++q) s += row[q];
      bias_sum[o] += s;
    }
}

// dw [O x K] += the weight-gradient partials of `threads` threads, partial + t*part holding thread
// t's dw [O x K] (or its transpose dw^T [K x O] when `transposed`), followed by its bias sums [O],
// added into db when db is not null. Every element adds the threads' partials in thread order,
// whichever thread does the adding, so the result does not depend on scheduling, and large
// gradients are summed by all threads, a range of output channels each. The partials are read in
// blocks of 16 channels by 256 taps: the 256 cache lines of a transposed block stay in L1 while
// its 16 rows of dw are written.
inline void add_thread_partials(const ConvGeometry& g, const float* partial, int64_t part, int threads,
                                bool transposed, float* dw, float* db) {
  constexpr int64_t OB = 16, KB = 256;
#pragma omp parallel for schedule(static) num_threads(threads) if (g.o * g.k() >= kParallelPack)
  for (int64_t ob = 0; ob < g.o; ob += OB) {
    const int64_t oe = std::min(g.o, ob + OB);
    for (int64_t kb = 0; kb < g.k(); kb += KB) {
      const int64_t ke = std::min(g.k(), kb + KB);
      for (int t = 0; t < threads; ++t) {
        const float* mine = partial + t * part;
        for (int64_t o = ob; o < oe; ++o) {
          float* row = dw + o * g.k();
          if (transposed)
            for (int64_t kk = kb; kk < ke; ++kk) row[kk] += mine[kk * g.o + o];
          else
            for (int64_t kk = kb; kk < ke; ++kk) row[kk] += mine[o * g.k() + kk];
        }
      }
    }
  }
  if (db)
    for (int t = 0; t < threads; ++t)
      for (int64_t o = 0; o < g.o; ++o) db[o] += partial[t * part + g.k() * g.o + o];
}

}  // namespace conv_lowering
}  // namespace qnn
