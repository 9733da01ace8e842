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
//
// The graph arena. Free lists of exact sizes hold more than a step ever has live at once (a
// freed block serves only a request of its size), so a capture that repeats a rehearsal (an
// eager run of the same work, whose requests and releases were recorded) lays its temporaries
// out in one arena instead (tensor/memory_plan.h): the arena is the step's peak, not the sum of
// its size classes. The capture follows the rehearsal event by event; from the first request or
// release that differs, it takes blocks from the graph pool as above. Blocks placed until then
// stay safe: the rehearsal said which of them are live together, and up to that point the
// capture did the same. Arena blocks never enter a free list. A later capture of the same work
// reuses the arena while none of its blocks is live (graphs never run at once, as for the pool);
// an arena is never released, like the pool.
#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tensor/allocator.h"
#include "tensor/cuda_runtime.h"
#include "tensor/memory_plan.h"

namespace qnn {

namespace {

using FreeLists = std::unordered_map<size_t, std::vector<void*>>;

constexpr size_t kAlignment = 512;  // of every rounded size, so of every arena offset

// One request or release of a rehearsal: a request of `bytes` for block `block` (numbered in
// request order), or (bytes 0) the release of block `block`, -1 for a block from before.
struct Event {
  int64_t block = -1;
  size_t bytes = 0;
};

struct Arena {
  char* base = nullptr;
  size_t bytes = 0;
  size_t live = 0;  // bytes of its blocks handed out and not released
  bool holds(const void* p) const { return p >= base && p < base + bytes; }
};

struct DeviceCache {
  std::mutex mutex;
  FreeLists free_blocks;        // the common cache
  FreeLists graph_free_blocks;  // the graph pool's free blocks
  std::unordered_set<void*> graph_blocks;  // every block that belongs to the graph pool
  bool capturing = false;
  // Rehearsal: recording, the events recorded, the blocks' numbers while recording, and the
  // layout of its blocks (made when the recording ends).
  bool rehearsing = false;
  std::vector<Event> rehearsal;
  std::unordered_map<void*, int64_t> rehearsal_blocks;
  int64_t rehearsal_requests = 0;
  MemoryPlan plan;
  // The arena, and the capture following the rehearsal: whether it still does (it has not
  // diverged), and the rehearsal's event it should make next.
  Arena arena;
  bool following = false;
  size_t next_event = 0;
  AllocatorStats stats;
};

DeviceCache& device_cache() {
  static DeviceCache* c = new DeviceCache;  // never destroyed: tensors may die during exit
  return *c;
}

size_t rounded(size_t bytes) {
  const size_t unit = bytes > (size_t(1) << 20) ? (size_t(1) << 20) : kAlignment;
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
    // A failed cudaMalloc leaves its error to the next cudaGetLastError, which would blame the
    // next kernel launch: it is cleared here, after each attempt.
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
    const cudaError_t again = cudaMalloc(&block, size);
    if (again != cudaSuccess) {
      cudaGetLastError();
      throw Error(str("[cuda_allocate] out of GPU memory: allocating ", size, " bytes with ", c.stats.live_bytes,
                      " bytes in use (", cudaGetErrorString(again), "; a smaller batch needs less)"));
    }
  }
  ++c.stats.system_allocations;
  c.stats.reserved_bytes += int64_t(size);
  return block;
}

// The rehearsal's blocks with their lifetimes, in request order.
std::vector<BlockLifetime> lifetimes(const std::vector<Event>& events) {
  std::vector<BlockLifetime> blocks;
  for (size_t e = 0; e < events.size(); ++e) {
    if (events[e].bytes > 0) blocks.push_back({events[e].bytes, int64_t(e), int64_t(events.size()) + 1});
    else if (events[e].block >= 0) blocks[size_t(events[e].block)].end = int64_t(e);
  }
  return blocks;
}

// At the start of a capture: follow the rehearsal if there is one, in an arena large enough and
// with no live block (allocated now, before the stream captures).
void start_following_locked(DeviceCache& c) {
  c.following = false;
  c.next_event = 0;
  if (c.rehearsal_requests == 0 || c.arena.live > 0) return;  // a graph's output still lives there
  if (c.arena.bytes < c.plan.arena_bytes) {
    // The eager steps' cached blocks make room first: the arena takes over their work in the
    // replays, and eager work after the capture (an evaluation) allocates its own again.
    QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "waiting before laying out a graph's memory");
    release_cached_locked(c);
    void* base = nullptr;
    try {
      base = allocate_new_locked(c, c.plan.arena_bytes);
    } catch (const Error&) {
      return;  // no room for it in one piece: the capture takes its blocks from the graph pool
    }
    c.arena = Arena{static_cast<char*>(base), c.plan.arena_bytes, 0};
  }
  c.following = true;
}

// The next block of the rehearsal if the capture's request is its next event; else the capture
// has diverged and stops following.
void* follow_request_locked(DeviceCache& c, size_t size) {
  if (!c.following) return nullptr;
  if (c.next_event >= c.rehearsal.size() || c.rehearsal[c.next_event].bytes != size) {
    c.following = false;
    return nullptr;
  }
  return c.arena.base + c.plan.offsets[size_t(c.rehearsal[c.next_event++].block)];
}

// A release during the capture: still the rehearsal's next event? That is the release of the
// block it names, whose place in the arena no other live block shares, or of a block from
// outside the arena where it names none.
void follow_release_locked(DeviceCache& c, const void* block) {
  if (!c.following) return;
  const Event* next = c.next_event < c.rehearsal.size() ? &c.rehearsal[c.next_event] : nullptr;
  const bool expected = next && next->bytes == 0 &&
                        (next->block < 0 ? !c.arena.holds(block)
                                         : block == c.arena.base + c.plan.offsets[size_t(next->block)]);
  if (expected) ++c.next_event;
  else c.following = false;
}

}  // namespace

void* cuda_allocate(size_t bytes) {
  const size_t size = rounded(bytes);
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  void* block = c.capturing ? follow_request_locked(c, size) : nullptr;
  if (block) {
    c.arena.live += size;
  } else {
    if (c.capturing) block = take_cached_locked(c, c.graph_free_blocks, size);
    if (block) c.stats.graph_cached_bytes -= int64_t(size);
    if (!block) block = take_cached_locked(c, c.free_blocks, size);
    if (!block) block = allocate_new_locked(c, size);
    if (c.capturing) c.graph_blocks.insert(block);
  }
  if (c.rehearsing) {
    c.rehearsal_blocks[block] = c.rehearsal_requests++;
    c.rehearsal.push_back({c.rehearsal_blocks[block], size});
  }
  c.stats.live_bytes += int64_t(size);
  c.stats.peak_live_bytes = std::max(c.stats.peak_live_bytes, c.stats.live_bytes);
  return block;
}

void cuda_free(void* block, size_t bytes) {
  if (!block) return;
  const size_t size = rounded(bytes);
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (c.rehearsing) {
    const auto it = c.rehearsal_blocks.find(block);
    c.rehearsal.push_back({it == c.rehearsal_blocks.end() ? -1 : it->second, 0});
    if (it != c.rehearsal_blocks.end()) c.rehearsal_blocks.erase(it);
  }
  if (c.capturing) follow_release_locked(c, block);
  c.stats.live_bytes -= int64_t(size);
  if (c.arena.holds(block)) {  // its bytes stay the arena's
    c.arena.live -= size;
    return;
  }
  if (c.capturing) c.graph_blocks.insert(block);
  const bool graph = c.graph_blocks.count(block) > 0;
  (graph ? c.graph_free_blocks : c.free_blocks)[size].push_back(block);
  c.stats.cached_bytes += int64_t(size);
  if (graph) c.stats.graph_cached_bytes += int64_t(size);
}

AllocatorStats cuda_allocator_stats() {
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  AllocatorStats s = c.stats;
  s.graph_cached_bytes += int64_t(c.arena.bytes - c.arena.live);  // the arena is the graphs' too
  return s;
}

void cuda_reset_peak() {
  std::lock_guard<std::mutex> lock(device_cache().mutex);
  device_cache().stats.peak_live_bytes = device_cache().stats.live_bytes;
}

void cuda_graph_pool_rehearse(bool on) {
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (on) {
    c.rehearsal.clear();
    c.rehearsal_blocks.clear();
    c.rehearsal_requests = 0;
  } else if (c.rehearsing) {
    c.plan = plan_memory(lifetimes(c.rehearsal), kAlignment);
  }
  c.rehearsing = on;
}

void cuda_graph_pool_capture(bool on) {
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  if (on) start_following_locked(c);
  else c.following = false;
  c.capturing = on;
}

void cuda_release_cached() {
  DeviceCache& c = device_cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "waiting before releasing cached GPU memory");
  release_cached_locked(c);
}

}  // namespace qnn
