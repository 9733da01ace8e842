// Per-channel sums of a [N, C, inner] tensor on the GPU, split over many blocks and finished in
// the same kernel (batch norm's statistics and gradient sums, tensor/batchnorm.cu). Only .cu files
// include this.
//
// A channel has many values and there are few channels (ResNet-20 at batch 128: 16 channels of
// N*H*W = 131072 values, on a GPU of 132 SMs), so a kernel launched on grid (splits, C) lets
// block (s, c) sum a fixed contiguous range of channel c in double (a fixed split over its
// threads, then a fixed tree in shared memory) and store its pair of sums. It then counts itself
// done on a counter in device memory, after a memory fence; the block that counts last adds up
// every channel's pairs, a warp per channel (each lane a fixed subset of the pairs, then a fixed
// tree of shuffles), and finalizes the channel. Which block comes last varies, the order of the
// additions does not: results repeat bit for bit. The last block resets the counter, so a
// counter serves every launch of its kernel as long as those run one after another (qnn's one
// stream, tensor/cuda_runtime.h).
//
// Values are read as vectors of V floats (V = 4 where a plane's length is a multiple of 4 and the
// tensors are 16-byte aligned, else 1), indexed with 32-bit integers (tensors below 2^31 values).
// A bf16 tensor (uint16_t elements) is read the same way, V = 4 being one 8-byte load, and
// widened to float; stores round to bf16 (tensor/bf16.h).
//
// Channels-last tensors ([N*H*W rows, C], tensor/tensor.h) are summed by blocks that each take a
// range of rows and a slice of up to kThreads channel vectors (V = 4 where C is a multiple of 4):
// thread t reads vector t % G of the slice's G in every (kThreads / G)-th row, so a warp reads
// consecutive memory; the threads of one vector are then added in thread order (a fixed order)
// by one thread, which stores the block's pair for each of its V channels. The partial pairs lie as in the NCHW
// case, [C][splits], and the last block finalizes them the same way.
#pragma once
#include <algorithm>
#include <cstdint>

#include "tensor/bf16.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

// x viewed as [N, C, inner] in vectors of V floats (inner = H*W, 1 for [N, C]), or channels-last
// as [rows, C] (rows = N*H*W) in vectors of V channels.
struct ChannelLayout {
  uint32_t c = 0;        // channels
  uint32_t inner_v = 0;  // NCHW: vectors per plane, inner / V
  uint32_t count_v = 0;  // NCHW: vectors per channel, N * inner / V; channels-last: rows
  uint32_t total_v = 0;  // vectors in x
  int64_t count = 0;     // M, values per channel
  bool channels_last = false;
  uint32_t groups = 0;   // channels-last: vectors per row, C / V
  uint32_t slice = 0;    // channels-last: vectors per block's slice, min(groups, kThreads)
};

// Blocks per channel (NCHW: about 4096 values each, 16 per thread) or per channel slice
// (channels-last: about 8 rows per thread), at most 1024; channels-last also at most 65536 pairs
// of partial sums in all, since the last block reads them all.
inline int channel_splits(const ChannelLayout& l) {
  int64_t s = (l.count + 4095) / 4096;
  if (l.channels_last) {
    const int64_t row_step = kThreads / l.slice;
    s = std::min<int64_t>(l.count / (8 * row_step), 65536 / l.c);
  }
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(s, 1024)));
}

// The channel of vector i's first value: NCHW, the one channel of all its values; channels-last,
// the first of its V consecutive channels.
__device__ __forceinline__ uint32_t first_channel(uint32_t i, const ChannelLayout& l, int v) {
  return l.channels_last ? (i % l.groups) * v : (i / l.inner_v) % l.c;
}
// The offset of x[0, c, 0] (the first value of channel c).
__device__ __forceinline__ uint32_t channel_start(uint32_t c, const ChannelLayout& l, int v) {
  return l.channels_last ? c : c * l.inner_v * v;
}

template <int V>
struct Vec {
  float v[V];
};

template <int V>
__device__ __forceinline__ Vec<V> load(const float* p, uint32_t i) {
  Vec<V> r;
  if constexpr (V == 4) {
    const float4 q = reinterpret_cast<const float4*>(p)[i];
    r.v[0] = q.x, r.v[1] = q.y, r.v[2] = q.z, r.v[3] = q.w;
  } else {
    r.v[0] = p[i];
  }
  return r;
}

template <int V>
__device__ __forceinline__ void store(float* p, uint32_t i, const Vec<V>& r) {
  if constexpr (V == 4)
    reinterpret_cast<float4*>(p)[i] = make_float4(r.v[0], r.v[1], r.v[2], r.v[3]);
  else
    p[i] = r.v[0];
}

template <int V>
__device__ __forceinline__ Vec<V> load(const uint16_t* p, uint32_t i) {
  Vec<V> r;
  if constexpr (V == 4) {
    const uint2 q = reinterpret_cast<const uint2*>(p)[i];  // element 0 in the low half of q.x
    r.v[0] = bits_float(q.x << 16), r.v[1] = bits_float(q.x & 0xFFFF0000u);
    r.v[2] = bits_float(q.y << 16), r.v[3] = bits_float(q.y & 0xFFFF0000u);
  } else {
    r.v[0] = bf16_to_float(p[i]);
  }
  return r;
}

template <int V>
__device__ __forceinline__ void store(uint16_t* p, uint32_t i, const Vec<V>& r) {
  if constexpr (V == 4) {
    const uint32_t lo = bf16_bits(r.v[0]) | uint32_t(bf16_bits(r.v[1])) << 16;
    const uint32_t hi = bf16_bits(r.v[2]) | uint32_t(bf16_bits(r.v[3])) << 16;
    reinterpret_cast<uint2*>(p)[i] = make_uint2(lo, hi);
  } else {
    p[i] = bf16_bits(r.v[0]);
  }
}

// The vector index of channel c's k-th vector (in image-major order).
__device__ __forceinline__ uint32_t channel_vector(uint32_t k, uint32_t c, const ChannelLayout& l) {
  return ((k / l.inner_v) * l.c + c) * l.inner_v + k % l.inner_v;
}

// The range of channel vectors that block s of `splits` sums.
__device__ __forceinline__ void split_range(const ChannelLayout& l, int splits, int s, uint32_t& begin, uint32_t& end) {
  begin = static_cast<uint32_t>(uint64_t(l.count_v) * s / splits);
  end = static_cast<uint32_t>(uint64_t(l.count_v) * (s + 1) / splits);
}

// Block-wide sums of (a, b) in a fixed tree; thread 0 gets the totals.
__device__ inline void block_sum2(double& a, double& b) {
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

// Counts the block done once every thread's stores are fenced (each storing thread has called
// __threadfence()); true in every thread of the grid's last block, which may then read every
// block's pairs.
__device__ inline bool count_block(unsigned int* done) {
  __shared__ bool last;
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(done, 1u) == gridDim.x * gridDim.y - 1;
    if (last) {
      *done = 0;         // every block has counted: ready for the next launch
      __threadfence();   // and the pairs are read after the count
    }
  }
  __syncthreads();
  return last;
}

// Thread 0 stores the block's pair of sums, then the block counts itself done.
__device__ inline bool store_and_count(double a, double b, double* pair, unsigned int* done) {
  if (threadIdx.x == 0) {
    pair[0] = a;
    pair[1] = b;
    __threadfence();  // the pair is visible to every block before the count says so
  }
  return count_block(done);
}

// Channel c's pairs summed in a fixed order by a whole warp: lane l adds pairs l, l + 32, ...,
// then a fixed tree of shuffles; lane 0 gets the totals. Read through volatile: other blocks
// wrote them, so they must come from L2, not from a stale L1 line.
__device__ inline void channel_totals(const double* partial, int splits, uint32_t c, double& a, double& b) {
  const volatile double* p = partial + 2 * int64_t(c) * splits;
  const unsigned lane = threadIdx.x % 32;
  a = 0.0, b = 0.0;
  for (int k = lane; k < splits; k += 32) {
    a += p[2 * k];
    b += p[2 * k + 1];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    a += __shfl_down_sync(0xffffffffu, a, offset);
    b += __shfl_down_sync(0xffffffffu, b, offset);
  }
}

// In the grid's last block: lane 0 of a warp per channel gets finalize(channel, total a, total b).
template <class Finalize>
__device__ void finalize_channels(const double* partial, int splits, const ChannelLayout& l, Finalize finalize) {
  for (uint32_t ch = threadIdx.x / 32; ch < l.c; ch += blockDim.x / 32) {
    double total_a, total_b;
    channel_totals(partial, splits, ch, total_a, total_b);
    if (threadIdx.x % 32 == 0) finalize(ch, total_a, total_b);
  }
}

// The end of the NCHW sums kernels: the block's pair of sums is stored and counted; the grid's
// last block then finalizes every channel. Returns whether this block was the last.
template <class Finalize>
__device__ bool sum_then_finalize(double a, double b, double* partial, int splits, const ChannelLayout& l,
                                  unsigned int* done, Finalize finalize) {
  block_sum2(a, b);
  if (!store_and_count(a, b, partial + 2 * (int64_t(blockIdx.y) * splits + blockIdx.x), done)) return false;
  finalize_channels(partial, splits, l, finalize);
  return true;
}

// Channels-last: the block's rows and its slice of channel vectors, and this thread's place in
// them (vector `group` of the slice, rows row0, row0 + row_step, ...; `active` false for the
// threads left over when the slice does not divide kThreads).
struct SliceThread {
  uint32_t begin, end, first, group, row0, row_step, slice_groups;
  bool active;
};
__device__ __forceinline__ SliceThread slice_thread(const ChannelLayout& l, int splits) {
  SliceThread t;
  split_range(l, splits, blockIdx.x, t.begin, t.end);
  t.first = blockIdx.y * l.slice;
  t.slice_groups = l.groups - t.first < l.slice ? l.groups - t.first : l.slice;
  t.row_step = blockDim.x / t.slice_groups;
  t.group = t.first + threadIdx.x % t.slice_groups;
  t.row0 = t.begin + threadIdx.x / t.slice_groups;
  t.active = threadIdx.x < t.row_step * t.slice_groups;
  return t;
}

// Channels-last: the block's V pairs per vector of its slice, each thread holding (a[j], b[j]) for
// the V channels of its vector, added over the threads of each vector in thread order, stored as
// block blockIdx.x's pairs of those channels; then the block counts itself done.
template <int V>
__device__ bool slice_sums_and_count(const double (&a)[V], const double (&b)[V], const SliceThread& t,
                                     double* partial, int splits, unsigned int* done) {
  __shared__ double sa[kThreads * V], sb[kThreads * V];
  for (int j = 0; j < V; ++j) {
    sa[threadIdx.x * V + j] = t.active ? a[j] : 0.0;
    sb[threadIdx.x * V + j] = t.active ? b[j] : 0.0;
  }
  __syncthreads();
  for (uint32_t k = threadIdx.x; k < t.slice_groups * V; k += blockDim.x) {
    const uint32_t g = k / V, j = k % V;
    double total_a = 0.0, total_b = 0.0;
    for (uint32_t r = 0; r < t.row_step; ++r) {
      total_a += sa[(r * t.slice_groups + g) * V + j];
      total_b += sb[(r * t.slice_groups + g) * V + j];
    }
    double* pair = partial + 2 * (int64_t((t.first + g) * V + j) * splits + blockIdx.x);
    pair[0] = total_a;
    pair[1] = total_b;
    __threadfence();  // the pair is visible to every block before the count says so
  }
  return count_block(done);
}

}  // namespace qnn::cuda
