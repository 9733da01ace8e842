// The CPU caching allocator behind every Storage.
//
// A training step allocates the same tensors, of the same sizes, every step. Handing them back
// to the C library would return large blocks to the operating system (glibc maps anything
// above its mmap threshold fresh), and every step would then pay page faults on memory the
// kernel zero-fills again: measured here, that doubled the time of a ResNet-20 step. Instead,
// freed blocks are kept in a free list per size and reused by the next request of that size,
// so a steady-state step performs no system allocation at all. Sizes are rounded up to 64
// bytes (one cache line, one AVX-512 vector: every block is 64-byte aligned) and, above 1 MiB,
// to 64 KiB, so near-equal sizes share blocks. Blocks of 2 MiB and more are 2 MiB aligned and
// backed by transparent huge pages where the system allows (tensor/allocator.cpp). Thread-safe
// (loader threads allocate too).
//
// The CUDA backend's allocator (tensor/allocator.cu) follows the same idea for device memory,
// with one more reason: cudaMalloc and cudaFree synchronise the whole device, and a CUDA graph
// replays fixed addresses. After the first steps every request is served from the cache, so
// the steady state calls neither and each op of a step gets the same block every step.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qnn {

void* cpu_allocate(size_t bytes);
void cpu_free(void* block, size_t bytes);  // `bytes` as passed to cpu_allocate

struct AllocatorStats {
  int64_t system_allocations = 0;  // blocks obtained from the C library
  int64_t reused = 0;              // requests served from the cache
  int64_t cached_bytes = 0;        // bytes held in free lists now
  int64_t live_bytes = 0;          // bytes handed out and not yet freed
  int64_t peak_live_bytes = 0;     // the most live_bytes ever reached (since the last reset)
  int64_t reserved_bytes = 0;      // bytes obtained from the system and not released
  // CUDA: the bytes kept for graphs' temporaries, the graph pool's free lists and the graph
  // arena's bytes not handed out. A captured graph replays the temporaries it freed, so these
  // bytes stay in use by its replays, though live_bytes no longer counts them: a replayed step
  // holds live_bytes + graph_cached_bytes.
  int64_t graph_cached_bytes = 0;
};
AllocatorStats cpu_allocator_stats();
void cpu_reset_peak();  // peak_live_bytes = live_bytes (benchmarks measure a step's peak)
// Returns every cached block to the C library.
void cpu_release_cached();

// Device memory, 256-byte aligned (cudaMalloc's alignment), same caching scheme. A CPU-only
// build throws from cuda_allocate.
void* cuda_allocate(size_t bytes);
void cuda_free(void* block, size_t bytes);
AllocatorStats cuda_allocator_stats();
void cuda_reset_peak();  // peak_live_bytes = live_bytes (benchmarks measure a step's peak)
void cuda_release_cached();  // the common cache (the graph pool is kept for its graphs)
// While on, every block handed out joins the graph pool (see tensor/allocator.cu); CudaGraph
// (tensor/cuda_graph.h) turns it on for the length of a capture, before the stream captures
// (turning it on may allocate the graph arena).
void cuda_graph_pool_capture(bool on);
// While on, the requests and releases are recorded (a new recording replaces the last), and a
// later capture that makes the same ones in the same order takes its blocks from one arena laid
// out for them (tensor/allocator.cu, tensor/memory_plan.h). CudaGraph::rehearse turns it on.
void cuda_graph_pool_rehearse(bool on);

}  // namespace qnn
