// Deterministic reductions over the channels of a tensor on the GPU: the CUDA twin of
// qat/channel_reduce.h, included only by qat/*.cu.
//
// Two launches. Stage 1 runs a grid of (blocks_per_channel, channels) blocks; block b of channel c
// takes a fixed contiguous range of the channel, each of its kThreads threads accumulates the
// elements i = begin + thread, begin + thread + kThreads, ... in order, and the block folds its
// threads' accumulators in a fixed shared-memory tree into partial[c][b]. Stage 2 gives each
// channel one thread, which combines partial[c][0..B) in order and stores the result where the
// caller's `store` puts it (a device tensor: no copy to the host, nothing that would stop the
// step from being captured in a CUDA graph). The grouping depends on the shape alone, so the
// result is the same on every run; sums are in double.
#pragma once
#include "tensor/cuda_runtime.h"
#include "tensor/tensor.h"

namespace qnn::cuda {

// Elements per block of stage 1, and the cap on blocks per channel.
constexpr int64_t kReduceBlockElements = int64_t(kThreads) * 16;
constexpr int64_t kReduceMaxBlocks = 1024;

inline int64_t reduce_blocks_per_channel(int64_t inner) {
  const int64_t b = (inner + kReduceBlockElements - 1) / kReduceBlockElements;
  return b < 1 ? 1 : (b > kReduceMaxBlocks ? kReduceMaxBlocks : b);
}

template <class Acc, class Load, class Combine>
__global__ void reduce_channels_stage1(int64_t inner, int64_t blocks, Acc identity, Load load, Combine combine,
                                       Acc* partial) {
  __shared__ Acc shared[kThreads];
  const int64_t c = blockIdx.y, b = blockIdx.x;
  const int64_t per_block = (inner + blocks - 1) / blocks;
  const int64_t begin = c * inner + b * per_block;
  const int64_t stop = b * per_block + per_block < inner ? begin + per_block : c * inner + inner;
  Acc acc = identity;
  for (int64_t i = begin + threadIdx.x; i < stop; i += blockDim.x) load(c, i, acc);
  shared[threadIdx.x] = acc;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) combine(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[c * blocks + b] = shared[0];
}

template <class Acc, class Combine, class Store>
__global__ void reduce_channels_stage2(int64_t channels, int64_t blocks, Acc identity, Combine combine,
                                       const Acc* partial, Store store) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= channels) return;
  Acc acc = identity;
  for (int64_t b = 0; b < blocks; ++b) combine(acc, partial[c * blocks + b]);
  store(c, acc);
}

// Runs both stages on the backend's stream. `what` names the op for launch errors.
template <class Acc, class Load, class Combine, class Store>
void reduce_channels(const char* what, int64_t channels, int64_t inner, Acc identity, Load load, Combine combine,
                     Store store) {
  if (channels == 0) return;
  const int64_t blocks = reduce_blocks_per_channel(inner);
  const int64_t bytes = channels * blocks * int64_t(sizeof(Acc));
  Tensor scratch({(bytes + 3) / 4}, Device::CUDA);  // the partials, in float-sized words
  Acc* partial = reinterpret_cast<Acc*>(scratch.data());
  QNN_CHECK(channels <= 65535, what, ": at most 65535 channels per reduction, found ", channels);
  reduce_channels_stage1<<<dim3(unsigned(blocks), unsigned(channels)), kThreads, 0, stream()>>>(
      inner, blocks, identity, load, combine, partial);
  QNN_LAUNCH_CHECK(what, " (reduction, ", channels, " channels of ", inner, ")");
  reduce_channels_stage2<<<unsigned((channels + kThreads - 1) / kThreads), kThreads, 0, stream()>>>(
      channels, blocks, identity, combine, partial, store);
  QNN_LAUNCH_CHECK(what, " (reduction, ", channels, " channels of ", inner, ")");
}

}  // namespace qnn::cuda
