// What the emulated CUDA runtime (emu/cudart.cpp) offers the rest of the emulator: kernel
// launches from emu/cuda_emu.h, and stream work and pointer checks for the cuBLAS and cuDNN
// stand-ins (emu/cublas.cpp, emu/cudnn.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <functional>

namespace qnn_emu {

// A kernel launch: `body` is one CUDA thread's work. Runs the grid now, or records the launch
// while the stream captures a graph.
void submit(const char* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t stream, std::function<void()> body);

// Work of a library call on the stream: run now, or recorded as a node named `what` while the
// stream captures. Skipped after a kernel failed (the sticky error).
void enqueue(cudaStream_t stream, const char* what, std::function<void()> work);

// Fails a launch of `kernel` whose argument at `position` (from 1) points to host memory: the
// sticky error a GPU thread's fault leaves, and a message naming the kernel and the argument.
void fail_launch(const char* kernel, int position, const void* host);

// Whether [p, p + bytes) lies inside one live device allocation.
bool is_device_memory(const void* p, size_t bytes);

// Forgets a kernel's failure (the sticky error), for the emulator's own tests, which make kernels
// fail on purpose and go on; a GPU needs a new process.
void forget_failure();

}  // namespace qnn_emu
