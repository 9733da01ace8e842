// The emulated GPU's memory: where cudaMalloc's blocks live, and who may touch them.
//
// On a GPU, memory from cudaMalloc is not host memory: host code that dereferences a device
// pointer (a CPU loop over a CUDA tensor's data, a host read of a result that was never copied)
// faults. Here device memory is the CPU's own, so such code would run and pass. To keep the
// difference, device memory is one reserved range of the address space that is closed
// (PROT_NONE) while host code runs and opened only while the emulator plays the GPU: a kernel
// grid, a copy or fill, a cuBLAS or cuDNN call (emu/cudart.cpp opens it around the work it
// issues). Host code that touches device memory then stops with a message naming the address
// and the allocation, where a GPU would have faulted.
//
// Addresses are handed out once and never reused, so a kernel's use of freed memory never reads
// a later allocation's data; freed pages go back to the system (they read as zeros), and under
// AddressSanitizer freed blocks and the padding between blocks are poisoned, so those accesses
// are reported.
#pragma once
#include <cstddef>

namespace qnn_emu {

// A block of `bytes` (256-byte aligned), or nullptr when the reserved range is used up. Its
// contents are whatever the caller fills in (with the range open).
void* allocate_device_memory(size_t bytes);
// Returns a block from allocate_device_memory (its size as allocated).
void release_device_memory(void* p, size_t bytes);

// The reserved range device memory is handed out from (a null base before the first allocation).
struct DeviceMemoryRange {
  char* base;
  size_t bytes;
};
DeviceMemoryRange device_memory_range();

// While one lives, device memory may be read and written (the emulator is playing the GPU).
// Nested scopes keep it open until the outermost ends. Callers hold the runtime's device lock,
// so host threads take turns.
class DeviceMemoryOpen {
 public:
  DeviceMemoryOpen();
  ~DeviceMemoryOpen();
  DeviceMemoryOpen(const DeviceMemoryOpen&) = delete;
  DeviceMemoryOpen& operator=(const DeviceMemoryOpen&) = delete;
};

}  // namespace qnn_emu
