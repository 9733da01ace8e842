// The device runtime: whether this process can use a GPU, which one, and the backend switches.
//
// Every build has this interface. A CUDA build (nvcc and cuDNN found by the Makefile, which then
// defines QNN_CUDA) implements it in tensor/device.cu; a CPU-only build links
// tensor/device_cpu_only.cpp, which reports "built without CUDA" and refuses device memory.
// The GPU is probed once, on first use: with no GPU or no driver (a CI machine has the toolkit
// but no driver: "CUDA driver version is insufficient for CUDA runtime version") cuda_status()
// says why, and the apps fall back to the CPU with a one-line notice.
//
// All GPU work goes to one stream, in order, so a tensor freed on the host can be reused by the
// next op without waiting: the caching allocator (tensor/allocator.h) hands it out again and
// stream order keeps the old reader before the new writer. That also keeps every address of a
// training step stable, which is what lets the step be captured as a CUDA graph.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace qnn {

struct CudaStatus {
  bool built = false;   // this binary has the CUDA backend
  bool usable = false;  // ... and a GPU with a working driver was found
  std::string reason;   // why not, when !usable
  std::string name;     // "NVIDIA H100 80GB HBM3"
  int major = 0, minor = 0;          // compute capability
  int multiprocessors = 0;
  int64_t memory_bytes = 0;
  int driver_version = 0;   // CUDA's encoding: 13000 is 13.0
  int runtime_version = 0;
  size_t cudnn_version = 0; // cuDNN's encoding: 91900 is 9.19.0
  int device = 0;           // the GPU this process uses, of
  int device_count = 0;     // the GPUs it sees
};

// Probes the GPU on the first call; later calls return the same answer.
const CudaStatus& cuda_status();
// Before the first cuda_status(): use GPU `index` modulo the number of GPUs, not GPU 0. A
// data-parallel run passes each process's rank on its machine, so that the processes of one
// machine use different GPUs. Once the GPU has been probed, an index that names another GPU
// than the one in use is an error.
void cuda_prefer_device(int index);
// One line for logs: "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.2 GiB, driver 13.0, runtime
// 13.0, cuDNN 9.19.0", or the reason the GPU cannot be used.
std::string describe_cuda(const CudaStatus& status);

// Switches of the CUDA backend (no effect on the CPU, which is always deterministic).
struct BackendOptions {
  bool cudnn = true;           // false: convolution through our im2col + cuBLAS kernels (--no-cudnn)
  bool deterministic = false;  // only deterministic cuDNN algorithms (--deterministic)
  bool tf32 = true;            // TF32 tensor cores in convolutions, cuDNN's or the im2col + cuBLAS lowering
                               // (PyTorch's default); the Linear layer's products stay float32, as PyTorch's do
  bool bf16 = false;           // bf16 convolutions (--precision bf16; docs/bf16.md): on the CPU bf16 operands
                               // and float sums; on the GPU also bf16 image activations
  bool channels_last = false;  // models store GPU image batches NHWC (--channels-last; docs/channels-last.md)
  bool krsc_filters = true;    // channels-last images: cuDNN multiplies a KRSC copy of each weight (false: the
                               // [O, C, KH, KW] weight itself; build/bench/train_step --kcrs-filters)
};
BackendOptions& backend_options();

// Waits until all queued GPU work is done (and reports any asynchronous error); nothing on the CPU.
void synchronize(Device device);

// Open and close the range of GPU work that a profiler started with `ncu --profile-from-start off`
// (or `nsys profile --capture-range=cudaProfilerApi`) collects, so that a benchmark can have its
// timed steps profiled without the start-up (cuDNN's algorithm search). Nothing without a
// profiler or a GPU.
void profiler_start();
void profiler_stop();

// Memory operations the Tensor class needs on the GPU (CUDA twins of memmove and a fill loop).
// Copies are ordered on the backend's stream; a copy to the host waits for it.
void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
void device_fill(float* dst, int64_t count, float value);  // dst in GPU memory
void device_fill_bf16(uint16_t* dst, int64_t count, uint16_t bits);
// Reorders an [N, C, H, W] image batch in GPU memory between NCHW and NHWC (src and dst distinct),
// elements of 4 bytes (float32) or 2 (bf16).
void device_to_channels_last(const void* nchw, void* nhwc, size_t element_bytes, int64_t n, int64_t c, int64_t hw);
void device_to_contiguous(const void* nhwc, void* nchw, size_t element_bytes, int64_t n, int64_t c, int64_t hw);
// Converts `count` elements in GPU memory between float32 and bf16 (tensor/bf16.h's rounding).
void device_float_to_bf16(const float* src, uint16_t* dst, int64_t count);
void device_bf16_to_float(const uint16_t* src, float* dst, int64_t count);

}  // namespace qnn

// Inside an op's CPU implementation (op.cpp): hands CUDA tensors to the op's CUDA twin (op.cu)
// and returns its result. A CPU-only build can hold no CUDA tensor, so there it does nothing.
//   Tensor relu(const Tensor& a) { QNN_ON_CUDA(a, cuda::relu(a)); ...the CPU loop... }
#ifdef QNN_CUDA
#define QNN_ON_CUDA(tensor, call) \
  do {                            \
    if ((tensor).is_cuda()) return call; \
  } while (0)
#else
#define QNN_ON_CUDA(tensor, call) \
  do {                            \
  } while (0)
#endif
