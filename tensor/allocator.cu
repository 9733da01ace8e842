// The CUDA caching allocator (see tensor/allocator.h): free lists of device blocks by rounded
// size. Sizes round up to 512 bytes, and above 1 MiB to 1 MiB, so near-equal requests share
// blocks. When cudaMalloc fails, the cache is released and the request tried once more before
// the error (which names the size and what is in use) is thrown.
//
// The graph pool. A captured CUDA graph replays the addresses it saw during capture, including
// those of the step's temporaries, which the host freed long ago. If such a block went back to
// the common cache, a tensor allocated later (the next epoch's order, an evaluation batch) could
// get it and be overwritten by the next replay. So while a graph is being captured, every block
// handed out joins the graph pool: when freed it returns to the pool's own free lists, which
// only later captures draw from. So does a block allocated before the capture and freed during
// it (the graph may have recorded its use). Graphs share the pool safely because one stream never
// runs two of them at once. During a capture the cache is never released to make room: cudaFree
// would synchronise, which a capture forbids, and the graph may already use the blocks.
#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/cuda_runtime.h"

namespace qnn {

namespace {

using FreeLists = std::unordered_map<size_t, std::vector<void*>>;

struct DeviceCache {
  std::mutex mutex;
  FreeLists free_blocks;        // the common cache
  FreeLists graph_free_blocks;  // the graph pool's free blocks
  std::unordered_set<void*> graph_blocks;  // every block that belongs to the graph pool
  bool capturing = false;
  AllocatorStats stats;
};

DeviceCache& device_cache() {
  static DeviceCache* c = new DeviceCache;  // never destroyed: tensors may die during exit
  return *c;
}

size_t rounded(size_t bytes) {
  const size_t unit = bytes > (size_t(1) << 20) ? (size_t(1) << 20) : 512;
  return ((bytes > 0 ? bytes : 1) + unit - 1) / unit * unit;
}

void release_cached_locked(DeviceCache& c) {
  for (auto& [size, blocks] : c.free_blocks) {
    for (void* b : blocks) cudaFree(b);
    c.stats.reserved_bytes -= int64_t(size * blocks.size());
    c.stats.cached_bytes -= int64_t(size * blocks.size());
  }
  c.free_blocks.clear();
}

void* take_cached_locked(DeviceCache& c, FreeLists& lists, size_t size) {
  auto it = lists.find(size);
  if (it == lists.end() || it->second.empty()) return nullptr;
  void* block = it->second.back();
  it->second.pop_back();
  ++c.stats.reused;
  c.stats.cached_bytes -= int64_t(size);
  return block;
}

void* allocate_new_locked(DeviceCache& c, size_t size) {
  cuda::stream();  // throws a clear error when there is no usable GPU
  void* block = nullptr;
  const cudaError_t err = cudaMalloc(&block, size);
  if (err != cudaSuccess) {
    cudaGetLastError();
    // Only a full device is helped by releasing the cache; any other error (a fault of earlier
    // GPU work, reported here) is thrown as it is.
    if (err != cudaErrorMemoryAllocation)
      throw Error(str("[cuda_allocate] cudaMalloc of ", size, " bytes failed: ", cudaGetErrorString(err),
                      " (a fault of earlier GPU work shows here too: CUDA_LAUNCH_BLOCKING=1 names the kernel)"));
    if (c.capturing)
      throw Error(str("out of GPU memory while capturing a CUDA graph: allocating ", size, " bytes with ",
                      c.stats.live_bytes, " bytes in use (capture a smaller step, or run with --no-graph)"));
    release_cached_locked(c);
    QNN_CUDA_CHECK(cudaMalloc(&block, size), "allocating ", size, " bytes of GPU memory with ",
                   c.stats.live_bytes, " bytes in use");
  }
  ++c.stats.system_allocations;
  c.stats.reserved_bytes += int64_t(size);
  return block;
}

}  // namespace

void* cuda_allocate(size_t bytes) {
  const size_t size = rounded(bytes);
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  void* block = c.capturing ? take_cached_locked(c, c.graph_free_blocks, size) : nullptr;
  if (block) c.stats.graph_cached_bytes -= int64_t(size);
  if (!block) block = take_cached_locked(c, c.free_blocks, size);
  if (!block) block = allocate_new_locked(c, size);
  if (c.capturing) c.graph_blocks.insert(block);
  c.stats.live_bytes += int64_t(size);
  c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
  return block;
}

void cuda_free(void* block, size_t bytes) {
  if (!block) return;
  const size_t size = rounded(bytes);
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (c.capturing) c.graph_blocks.insert(block);
  const bool graph = c.graph_blocks.count(block) > 0;
  (graph ? c.graph_free_blocks : c.free_blocks)[size].push_back(block);
  c.stats.cached_bytes += int64_t(size);
  if (graph) c.stats.graph_cached_bytes += int64_t(size);
  c.stats.live_bytes -= int64_t(size);
}

AllocatorStats cuda_allocator_stats() {
  std::lock_guard<std::mutex> lock(device_cache().mutex);
  return device_cache().stats;
}

void cuda_reset_peak() {
  std::lock_guard<std::mutex> lock(device_cache().mutex);
  device_cache().stats.peak_live_bytes = device_cache().stats.live_bytes;
}

void cuda_graph_pool_capture(bool on) {
  std::lock_guard<std::mutex> lock(device_cache().mutex);
  device_cache().capturing = on;
}

void cuda_release_cached() {
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "waiting before releasing cached GPU memory");
  release_cached_locked(c);
}

}  // namespace qnn
