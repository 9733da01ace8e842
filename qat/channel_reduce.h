// Deterministic reductions over the channels of a tensor on the CPU: the per-channel sums of the
// learnable fake quantizer's scale and zero-point gradients, PACT's clipping gradient, DoReFa's
// max|tanh w|, and the observers' minimum and maximum. Channel c is the c-th slice along axis 0
// of a contiguous tensor, elements [c * inner, (c + 1) * inner); a per-tensor reduction is one
// channel holding everything.
//
// Each channel is cut into fixed chunks of kReduceChunk elements; each chunk is accumulated by
// one thread (in index order, or in the fixed lanes of a vectorised loop), then the chunks of a
// channel are combined in chunk order. The
// result therefore depends only on the shape, never on the number of threads. Sums accumulate in
// double. The CUDA twin (qat/channel_reduce_cuda.h) groups elements differently (blocks and a
// shared-memory tree), so sums may differ from these in the last bits of the double; minima and
// maxima agree exactly.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace qnn {

constexpr int64_t kReduceChunk = 16384;

// Calls body(c, begin, end) for every chunk [begin, end) of every channel (global indices), the
// chunks split across threads: the element-wise kernels' loop, each chunk one vectorisable loop.
template <class Body>
void for_channel_chunks(int64_t channels, int64_t inner, Body body) {
  const int64_t chunks = inner > 0 ? (inner + kReduceChunk - 1) / kReduceChunk : 1;
#pragma omp parallel for if (channels * inner >= 2 * kReduceChunk) schedule(static)
  for (int64_t t = 0; t < channels * chunks; ++t) {
    const int64_t c = t / chunks, begin = c * inner + (t % chunks) * kReduceChunk;
    body(c, begin, std::min(begin + kReduceChunk, (c + 1) * inner));
  }
}

// chunk(c, begin, end) returns the accumulator of elements [begin, end) (global indices, in
// channel c), so that a kernel can write its chunk as one loop the compiler vectorises (an
// OpenMP simd reduction: its lanes group the elements in an order fixed at compile time);
// combine(a, b) merges b into a.
template <class Acc, class Chunk, class Combine>
std::vector<Acc> reduce_channel_chunks(int64_t channels, int64_t inner, const Acc& identity, Chunk chunk,
                                       Combine combine) {
  const int64_t chunks = inner > 0 ? (inner + kReduceChunk - 1) / kReduceChunk : 1;
  std::vector<Acc> partial(static_cast<size_t>(channels * chunks), identity);
  const int64_t tasks = channels * chunks;
#pragma omp parallel for if (channels * inner >= 2 * kReduceChunk) schedule(static)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t c = t / chunks, k = t % chunks;
    const int64_t begin = c * inner + k * kReduceChunk;
    const int64_t end = c * inner + (k + 1) * kReduceChunk < (c + 1) * inner ? c * inner + (k + 1) * kReduceChunk
                                                                             : (c + 1) * inner;
    partial[t] = chunk(c, begin, end);
  }
  std::vector<Acc> out(static_cast<size_t>(channels), identity);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t k = 0; k < chunks; ++k) combine(out[c], partial[c * chunks + k]);
  return out;
}

// The element-wise form: load(c, i, acc) adds element i (a global index, in channel c) into acc,
// in index order. load may also write per-element outputs (each element is loaded exactly once).
template <class Acc, class Load, class Combine>
std::vector<Acc> reduce_channels(int64_t channels, int64_t inner, const Acc& identity, Load load,
                                 Combine combine) {
  return reduce_channel_chunks(
      channels, inner, identity,
      [&](int64_t c, int64_t begin, int64_t end) {
        Acc acc = identity;
        for (int64_t i = begin; i < end; ++i) load(c, i, acc);
        return acc;
      },
      combine);
}

// A double sum, and a pair of double sums (the learnable quantizer's scale and zero-point gradients). Plain data
// without initialisers, so that CUDA can keep an array of them in shared memory: start from {0, 0}.
struct Sum1 {
  double a;
};
struct Sum2 {
  double a, b;
};

}  // namespace qnn
