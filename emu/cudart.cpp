// The CUDA runtime functions qnn calls, on the CPU, for the emulated build (docs/cuda-emulator.md).
// One emulated GPU, whose memory is closed to host code except while the work issued here runs
// (emu/device_memory.h), and streams on which work runs when it is issued (so synchronising only
// reports errors), except while a stream captures a graph: then kernel launches, copies and fills
// are recorded, and a graph launch replays them in order.
//
// Besides running the kernels, the emulator checks what a GPU would check, or would fault on
// later: every copy and fill must lie inside a device allocation on the sides its kind names
// (a host pointer passed as device memory is an error here, where a GPU would read garbage or
// fault), a kernel's pointer arguments must be device memory, a free must name a live
// allocation, and synchronising a capturing stream breaks the capture. A kernel that fails
// (emu/scheduler.h) leaves the sticky cudaErrorLaunchFailure that a faulting kernel leaves on a
// GPU: every later call returns it.
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "emu/device_memory.h"
#include "emu/runtime.h"
#include "emu/scheduler.h"

// One node of a captured graph: its work, and what it is (a kernel's name, "memcpy", a library
// call's name) for the node count and inventory.
struct Recorded {
  std::string what;
  std::function<void()> work;
};
struct CUstream_st {
  bool capturing = false;
  bool capture_broken = false;
  std::vector<Recorded>* recording = nullptr;
};
struct CUgraph_st {
  std::vector<Recorded> nodes;
};
struct CUgraphExec_st {
  std::vector<Recorded> nodes;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at;
  bool recorded = false;
};

namespace qnn_emu {

namespace {

std::recursive_mutex device_mutex;  // one device: calls from several host threads take turns
cudaError_t last_error = cudaSuccess;
cudaError_t sticky_error = cudaSuccess;
std::map<const char*, size_t> allocations;  // start -> bytes
// The emulated GPU's memory: cudaMalloc refuses what would take the allocations past it, as a
// GPU does when it is full (the reservation behind the addresses is far larger).
constexpr size_t kDeviceBytes = size_t(8) << 30;
size_t allocated_bytes = 0;
CUstream_st legacy_stream;

CUstream_st* resolve(cudaStream_t s) { return s ? s : &legacy_stream; }

cudaError_t fail_with(cudaError_t e) {
  last_error = e;
  return e;
}

// A call a capture does not allow: the capture is broken, as on a GPU (cudaStreamEndCapture
// then reports it invalidated).
cudaError_t break_capture(CUstream_st* s) {
  s->capture_broken = true;
  return fail_with(cudaErrorStreamCaptureUnsupported);
}

// The allocation holding [p, p + bytes), or none.
bool on_device(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  auto it = allocations.upper_bound(c);
  if (it == allocations.begin()) return false;
  --it;
  return c >= it->first && c + bytes <= it->first + it->second;
}

void report(const std::string& what) {
  std::fprintf(stderr, "CUDA emulator: %s\n", what.c_str());
  if (sticky_error == cudaSuccess) sticky_error = cudaErrorLaunchFailure;
  last_error = sticky_error;
}

// Runs work now, or records it as a node named `what` when the stream captures.
void issue(cudaStream_t stream, std::string what, std::function<void()> work) {
  CUstream_st* s = resolve(stream);
  if (s->capturing) {
    s->recording->push_back(Recorded{std::move(what), std::move(work)});
  } else {
    const DeviceMemoryOpen playing_the_gpu;
    work();
  }
}

// With QNN_EMU_GRAPH_NODES set, each captured graph's nodes, counted by what they are, most
// frequent first, on stderr.
void print_inventory(const std::vector<Recorded>& nodes) {
  if (!std::getenv("QNN_EMU_GRAPH_NODES")) return;
  std::map<std::string, int> counts;
  for (const Recorded& r : nodes) ++counts[r.what];
  std::vector<std::pair<int, std::string>> sorted;
  for (const auto& [what, n] : counts) sorted.emplace_back(-n, what);
  std::sort(sorted.begin(), sorted.end());
  std::fprintf(stderr, "CUDA emulator: captured a graph of %zu nodes\n", nodes.size());
  for (const auto& [n, what] : sorted) std::fprintf(stderr, "  %5d  %s\n", -n, what.c_str());
}

cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (kind == cudaMemcpyDefault) return cudaSuccess;
  if (on_device(dst, bytes) != dst_device || on_device(src, bytes) != src_device) {
    std::fprintf(stderr, "CUDA emulator: a copy of %zu bytes of kind %d from %p (%s) to %p (%s)\n", bytes, int(kind), src,
                 on_device(src, bytes) ? "device memory" : "not device memory", dst,
                 on_device(dst, bytes) ? "device memory" : "not device memory");
    return fail_with(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

}  // namespace

void submit(const char* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t stream, std::function<void()> body) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return;
  const std::string refused = refused_configuration(grid, block, shared);
  if (!refused.empty()) {
    std::fprintf(stderr, "CUDA emulator: kernel %s: %s\n", kernel, refused.c_str());
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  std::string name = kernel;
  issue(stream, name, [name, grid, block, shared, body = std::move(body)] {
    if (sticky_error != cudaSuccess) return;
    const std::string failure = run_grid(name.c_str(), grid, block, shared, body);
    if (!failure.empty()) report(failure);
  });
}

void enqueue(cudaStream_t stream, const char* what, std::function<void()> work) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return;
  issue(stream, what, [work = std::move(work)] {
    if (sticky_error == cudaSuccess) work();
  });
}

void fail_launch(const char* kernel, int position, const void* host) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return;
  char address[32];
  std::snprintf(address, sizeof address, "%p", host);
  report(std::string("kernel ") + kernel + ": argument " + std::to_string(position) + " points to host memory (" +
         address + "); a GPU thread that follows it faults");
}

bool is_device_memory(const void* p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  return on_device(p, bytes);
}

void forget_failure() {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  sticky_error = last_error = cudaSuccess;
}

}  // namespace qnn_emu

using namespace qnn_emu;

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument (CUDA emulator)";
    case cudaErrorMemoryAllocation: return "out of memory (CUDA emulator)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (CUDA emulator)";
    case cudaErrorLaunchFailure: return "unspecified launch failure (CUDA emulator: see its message above)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (CUDA emulator)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing (CUDA emulator)";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture (CUDA emulator)";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state (CUDA emulator)";
    default: return "an error of the CUDA emulator";
  }
}

cudaError_t cudaGetLastError() {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  const cudaError_t e = last_error;
  last_error = sticky_error;
  return e;
}

cudaError_t cudaRuntimeGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = CUDART_VERSION; return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* count) { *count = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail_with(cudaErrorInvalidDevice); }

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail_with(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "CUDA emulator (on the CPU)");
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->totalGlobalMem = kDeviceBytes;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = size_t(48) << 10;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return sticky_error;
  if (bytes > kDeviceBytes - allocated_bytes) return fail_with(cudaErrorMemoryAllocation);
  void* block = allocate_device_memory(bytes);
  if (!block) return fail_with(cudaErrorMemoryAllocation);
  allocated_bytes += bytes;
  {
    const DeviceMemoryOpen filling;
    std::memset(block, 0xff, bytes);  // NaN in every float: reading memory never written shows
  }
  allocations[static_cast<const char*>(block)] = bytes;
  *p = block;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (!p) return sticky_error;
  const auto it = allocations.find(static_cast<const char*>(p));
  if (it == allocations.end()) {
    std::fprintf(stderr, "CUDA emulator: cudaFree(%p): not the start of a device allocation\n", p);
    return fail_with(cudaErrorInvalidValue);
  }
  release_device_memory(p, it->second);
  allocated_bytes -= it->second;
  allocations.erase(it);
  return sticky_error;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return sticky_error;
  if (const cudaError_t e = check_copy(dst, src, bytes, kind)) return e;
  CUstream_st* s = resolve(stream);
  if (s->capturing && kind != cudaMemcpyDeviceToDevice) {
    // A graph's copy node would read or write this host buffer at every replay, long after the
    // call that made it returned: qnn's host buffers are pageable and short-lived.
    std::fprintf(stderr, "CUDA emulator: a copy of %zu bytes between host and device memory while the stream captures a graph\n",
                 bytes);
    return break_capture(s);
  }
  issue(stream, "memcpy", [dst, src, bytes] { std::memmove(dst, src, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}

cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return sticky_error;
  if (!on_device(p, bytes)) {
    std::fprintf(stderr, "CUDA emulator: cudaMemsetAsync of %zu bytes at %p: not device memory\n", bytes, p);
    return fail_with(cudaErrorInvalidValue);
  }
  issue(stream, "memset", [p, value, bytes] { std::memset(p, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaMemset(void* p, int value, size_t bytes) { return cudaMemsetAsync(p, value, bytes, nullptr); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = new CUstream_st;
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  CUstream_st* s = resolve(stream);
  if (s->capturing) return break_capture(s);
  return sticky_error;
}
cudaError_t cudaDeviceSynchronize() { return cudaStreamSynchronize(nullptr); }

// No profiler watches the emulator: a range opens and closes as it does on a GPU without one.
cudaError_t cudaProfilerStart() { return cudaSuccess; }
cudaError_t cudaProfilerStop() { return cudaSuccess; }

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  CUstream_st* s = resolve(stream);
  if (!stream || s->capturing) return fail_with(cudaErrorIllegalState);  // the legacy stream cannot capture
  s->capturing = true;
  s->capture_broken = false;
  s->recording = new std::vector<Recorded>;
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  CUstream_st* s = resolve(stream);
  *graph = nullptr;
  if (!s->capturing) return fail_with(cudaErrorIllegalState);
  s->capturing = false;
  std::unique_ptr<std::vector<Recorded>> nodes(s->recording);
  s->recording = nullptr;
  if (s->capture_broken) return fail_with(cudaErrorStreamCaptureInvalidated);
  print_inventory(*nodes);
  *graph = new CUgraph_st{std::move(*nodes)};
  return sticky_error;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  const CUstream_st* s = resolve(stream);
  *status = !s->capturing ? cudaStreamCaptureStatusNone
                          : (s->capture_broken ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return fail_with(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return sticky_error;
}

// Only the count: with `nodes` null, as qnn calls it.
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (!graph || nodes || !count) return fail_with(cudaErrorInvalidValue);
  *count = graph->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  if (sticky_error != cudaSuccess) return sticky_error;
  const std::vector<Recorded> nodes = exec->nodes;
  issue(stream, "graph", [nodes] {
    for (const Recorded& r : nodes) r.work();
  });
  return sticky_error;
}

cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete g;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
  *e = new CUevent_st;
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  issue(stream, "event record", [e] {
    e->at = std::chrono::steady_clock::now();
    e->recorded = true;
  });
  return sticky_error;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return sticky_error; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return fail_with(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}
