// The device runtime of a CPU-only build (tensor/device.h, and the allocator, graph and timer
// entry points of tensor/allocator.h, cuda_graph.h, stream_timer.h): no GPU is ever usable, and asking
// for GPU memory is an error that says how to get a CUDA build. A CUDA build compiles this file
// to nothing and uses tensor/device.cu and tensor/allocator.cu instead.
#ifndef QNN_CUDA
#include "tensor/allocator.h"
#include "tensor/cuda_graph.h"
#include "tensor/stream_timer.h"
#include "tensor/device.h"

namespace qnn {

namespace {
const char* kNoCuda =
    "this build has no CUDA backend (the Makefile found no nvcc or no cuDNN, or CUDA=0 was given)";
}

const CudaStatus& cuda_status() {
  static const CudaStatus status = [] {
    CudaStatus s;
    s.reason = kNoCuda;
    return s;
  }();
  return status;
}

void cuda_prefer_device(int) {}

std::string describe_cuda(const CudaStatus& status) { return "no usable GPU: " + status.reason; }

BackendOptions& backend_options() {
  static BackendOptions options;
  return options;
}

void synchronize(Device) {}
void profiler_start() {}
void profiler_stop() {}

void device_copy(void*, Device, const void*, Device, size_t) { throw Error(str("[device_copy] ", kNoCuda)); }
void device_fill(float*, int64_t, float) { throw Error(str("[device_fill] ", kNoCuda)); }
void device_fill_bf16(uint16_t*, int64_t, uint16_t) { throw Error(str("[device_fill_bf16] ", kNoCuda)); }
void device_to_channels_last(const void*, void*, size_t, int64_t, int64_t, int64_t) {
  throw Error(str("[device_to_channels_last] ", kNoCuda));
}
void device_to_contiguous(const void*, void*, size_t, int64_t, int64_t, int64_t) {
  throw Error(str("[device_to_contiguous] ", kNoCuda));
}
void device_float_to_bf16(const float*, uint16_t*, int64_t) { throw Error(str("[device_float_to_bf16] ", kNoCuda)); }
void device_bf16_to_float(const uint16_t*, float*, int64_t) { throw Error(str("[device_bf16_to_float] ", kNoCuda)); }

void* cuda_allocate(size_t) { throw Error(str("[cuda_allocate] ", kNoCuda)); }
void cuda_free(void*, size_t) {}
AllocatorStats cuda_allocator_stats() { return {}; }
void cuda_reset_peak() {}
void cuda_release_cached() {}
void cuda_graph_pool_capture(bool) {}
void cuda_graph_pool_rehearse(bool) {}

CudaGraph::~CudaGraph() {}
void CudaGraph::reset() {}
void CudaGraph::capture(const std::function<void()>&) { throw Error(str("[CudaGraph::capture] ", kNoCuda)); }
void CudaGraph::rehearse(const std::function<void()>& work) { work(); }
double stream_time_ms(const std::function<void()>&, int, int) { throw Error(str("[stream_time_ms] ", kNoCuda)); }

size_t CudaGraph::node_count() const { return 0; }
void CudaGraph::replay() { throw Error(str("[CudaGraph::replay] ", kNoCuda)); }

}  // namespace qnn
#endif
