// Races between the threads of an emulated kernel (`make emulate`, docs/cuda-emulator.md).
//
// The emulator runs a block's threads one after another (emu/scheduler.h), so a kernel that reads
// another thread's write without a barrier between them gets the value in the emulator's order
// and may pass, where a GPU's threads run side by side and the read may come first. The kernels'
// own memory accesses are therefore watched: the emulated .cu files are compiled with g++'s
// ThreadSanitizer instrumentation (-fsanitize=thread, which makes every load and store call a
// hook), and this file, not ThreadSanitizer's runtime, implements the hooks with CUDA's rules:
//
//   Two accesses to the same byte of device or shared memory, by different threads of one kernel
//   launch, at least one of them a write or an atomic and not both atomics, race unless
//   - both threads are in the same block and a __syncthreads() of that block lies between them;
//   - or the threads are in different blocks, the writer's block made a __threadfence() after the
//     write, and the reader's thread (or its block, before a __syncthreads() since) made an atomic
//     before the read: the "last block" pattern, where each block publishes its part, fences and
//     counts itself done on an atomic counter, and the block that counts last reads every part.
//     That read must be volatile: a plain load may be served from the multiprocessor's cache,
//     which the other blocks' writes do not update (the build has volatile accesses call hooks of
//     their own).
//   Launches on the one stream are ordered: accesses of different launches never race.
//
// A warp collective (__shfl_*_sync, __ballot_sync) orders no memory: CUDA documents no memory
// ordering for them, and lanes that exchange values through shared memory need __syncwarp() or
// __syncthreads(). The first race of a launch fails it, as a fault would (the message names both
// threads, the address and where the second access is in the code).
//
// Each byte watched has a shadow of 16 bytes: the last write and the reads since, each as (the
// emulator's clock when it happened, the thread). The clock counts block starts, barriers and
// fences, so "a barrier lies between" is a comparison of clocks, and records of earlier blocks or
// launches need no clearing: they are older than the block's or the launch's start. Device
// memory's shadow is one reserved range beside the device memory's own (emu/device_memory.h),
// given back with the memory it shadows; shared memory's and that of `__device__` variables are
// kept here.
//
// The same hooks see a kernel touch host memory: any access that is not to device or shared
// memory, the thread's own stack or the launch's arguments, as through a host pointer passed
// inside a structure or stored in device memory. A GPU thread faults there; here the launch
// fails, naming the address and the place in the code.
//
// They also see the address of every atomic and of every load and store whose type is aligned to
// its size (a float4, a uint2, a double): one of 2, 4, 8 or 16 bytes at an address that is not a
// multiple of its size, which a CPU reads and a GPU thread faults on (misaligned address), fails
// the launch too.
//
// An atomic stands for what it reads and writes: a plain store that initialises a counter races
// with the other threads' atomics unless a barrier lies between, and so does a plain load of it
// before the barrier that follows them. A thread's plain access after its own atomic on the same
// byte is taken to come after the atomics that ran before it in the emulator's order, which its
// read-modify-write saw (as the last block resets the counter it counted on); where a GPU could
// run one of those after the access, the race goes unseen.
//
// Not seen: accesses made by code outside the instrumented kernels (the emulated cuBLAS and
// cuDNN, copies and fills), which run alone on the stream anyway; launches of 2^28 threads or
// more.
#pragma once
#include <cstddef>

namespace qnn_emu::race {

// Whether the kernels are instrumented (this build calls the hooks).
bool watching();

// What the scheduler tells the checker (emu/scheduler.cpp).
void launch_begins(size_t blocks, size_t threads_per_block);
void block_begins(size_t block, void* dynamic_shared, size_t dynamic_bytes);
void barrier_opens();
void launch_ends();

// What the kernels' fences and atomics tell it, and where a launch keeps its arguments
// (emu/cuda_emu.h).
void fence();
void atomic(const void* p, size_t bytes, const void* pc);
void arguments(const void* p, size_t bytes);

// Device memory given back: its shadow goes too (emu/device_memory.cpp).
void forget(const void* block, size_t bytes);

}  // namespace qnn_emu::race
