// The CPU's stand-in for a streaming multiprocessor: runs one CUDA kernel launch thread by thread,
// so that the CUDA backend's own kernels execute, and are compared with their CPU twins, on a
// machine without a GPU (`make emulate`, docs/cuda-emulator.md).
//
// Every CUDA thread is a fiber: a stack of its own and a saved stack pointer, switched by a
// dozen instructions (emu/fiber.h). Blocks run one after another, and the threads of a block
// one at a time, each in a shuffled order that no code may rely on (a GPU promises none; the
// threads go warp by warp, warps and lanes shuffled): a thread runs until it either finishes or
// waits, at __syncthreads() (the block barrier) or at a warp collective (__shfl_down_sync,
// __shfl_xor_sync, __ballot_sync). A barrier opens when every
// live thread of the block has reached it, a warp collective when every lane of its mask has; the
// waiting threads then resume in the same shuffled order, each with the collective's result.
// Because blocks run alone, the static shared memory of every kernel can be one arena, in which
// each __shared__ declaration gets its place when it first runs (emu/cuda_emu.h); it is filled
// with NaN bytes before each block, as the dynamic shared memory is.
//
// What a GPU would do silently, or hang on, the scheduler reports as a failed launch (the
// runtime's sticky error, as after a fault on a GPU, and a message on stderr naming the kernel):
// a barrier some threads of the block never reach, a warp collective whose mask names a lane
// that exited or waits elsewhere, and a threads-per-block or shared-memory size a GPU refuses.
// Races, which any one order of threads hides, are the race checker's (emu/race_check.h), told
// here of each launch, block and barrier. What it cannot see: the host reading device memory
// before synchronising (launches run to completion when they are made).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace qnn_emu {

// The launch being run: what the kernel's built-in variables read.
struct ThreadState;
struct BlockState {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
  void* dynamic_shared = nullptr;  // the launch's dynamic shared memory, poisoned with NaN bytes
};
extern thread_local ThreadState* current_thread;
extern thread_local BlockState* current_block;
const uint3& thread_index();  // threadIdx of the running thread
unsigned thread_linear();      // its index in the block, x fastest

// Why a GPU would refuse to launch this configuration, or an empty string.
std::string refused_configuration(dim3 grid, dim3 block, size_t dynamic_shared_bytes);

// Runs `body` (one call per CUDA thread) over the grid, of a configuration not refused. Returns
// an empty string, or what went wrong, naming `kernel`.
std::string run_grid(const char* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                     const std::function<void()>& body);

// The static shared memory arena (emu/cuda_emu.h's static_shared): `bytes` at an offset aligned
// to `alignment`, for good; the arena's start; its size.
size_t allocate_static_shared(size_t bytes, size_t alignment);
char* static_shared_arena();
constexpr size_t kStaticSharedArenaBytes = size_t(1) << 20;

// Collectives. Values travel as 64-bit patterns; emu/cuda_emu.h converts the typed intrinsics.
enum class WarpOp { shfl_down, shfl_xor, ballot };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width);
enum class BlockOp { sync, any };  // __syncthreads(), __syncthreads_or()
int block_barrier(BlockOp op, int predicate);

// Whether [p, p + bytes) is the running CUDA thread's own: its stack, or the scheduler's records
// of its launch, which the built-in variables and the call of its body read. (What else a kernel
// may touch is device and shared memory, and its arguments.)
bool owned_by_running_thread(const void* p, size_t bytes);

// Records a failure of the running kernel (a device-side error) and ends its launch.
[[noreturn]] void fail(const std::string& what);

}  // namespace qnn_emu
