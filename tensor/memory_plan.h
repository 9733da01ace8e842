// Memory planning: lays out a known sequence of allocations in one arena, so that blocks whose
// lifetimes overlap never share bytes and the arena is as small as the sequence allows.
//
// A CUDA graph replays its temporaries at the addresses they had during capture, and the
// caching allocator (tensor/allocator.cu) keeps those blocks for the graph. Served from free
// lists of exact sizes they add up to more than the step ever holds at once: a freed block is
// reused only by a request of its size (on the CUDA emulator, ResNet-20's captured step at
// batch 512 held 928 MiB of temporaries against a peak of 784 MiB live). When the allocations
// of the step are known beforehand, from an eager step that made the same requests in the same
// order, they can be laid out instead.
//
// The layout is greedy by size (the "greedy by size" offset assignment of Pisarchyk and Lee,
// "Efficient Memory Management for Deep Neural Net Inference", 2020): blocks are placed from
// the largest down, each at the lowest offset where it overlaps no placed block whose lifetime
// it shares. The arena is never smaller than the largest sum of sizes live at one moment, and on
// the training steps measured it is equal to it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace qnn {

// A block of `bytes`, live from event `begin` (its allocation) to event `end` (its release),
// events numbered in the order they happen; a block never released ends after every event.
struct BlockLifetime {
  size_t bytes = 0;
  int64_t begin = 0, end = 0;
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // per block, from the arena's start; multiples of `alignment`
  size_t arena_bytes = 0;
};

// Offsets for `blocks` (sizes multiples of `alignment`, a power of two).
MemoryPlan plan_memory(const std::vector<BlockLifetime>& blocks, size_t alignment);

}  // namespace qnn
