// The CUDA device runtime (tensor/device.h, tensor/cuda_runtime.h): probing the GPU, the stream,
// the library handles and device memory copies. Built only with the CUDA backend.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <cuda_profiler_api.h>

#include "tensor/allocator.h"
#include "tensor/bf16.h"
#include "tensor/cuda_runtime.h"

namespace qnn {

namespace {

int preferred_device = 0;
bool probed = false;

// A kernel that does nothing: launched once by the probe (see there).
__global__ void probe_kernel() {}

CudaStatus probe() {
  probed = true;
  CudaStatus s;
  s.built = true;
  s.cudnn_version = cudnnGetVersion();
  cudaRuntimeGetVersion(&s.runtime_version);
  cudaDriverGetVersion(&s.driver_version);  // 0 when no driver is installed
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    s.reason = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later probes start clean
    return s;
  }
  if (count == 0) {
    s.reason = "no CUDA device found";
    return s;
  }
  s.device_count = count;
  s.device = preferred_device % count;
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, s.device) != cudaSuccess || cudaSetDevice(s.device) != cudaSuccess) {
    s.reason = cudaGetErrorString(cudaGetLastError());
    return s;
  }
  s.name = prop.name;
  s.major = prop.major;
  s.minor = prop.minor;
  s.multiprocessors = prop.multiProcessorCount;
  s.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  // Creating the context is where a too-old driver or a kernel image for the wrong
  // architecture shows up: do it now, so a GPU that cannot run us is reported as unusable.
  const cudaError_t init = cudaFree(nullptr);
  if (init != cudaSuccess) {
    s.reason = cudaGetErrorString(init);
    return s;
  }
  // Kernels are loaded at their first launch, not with the context: launch one now, so that a
  // build without code for this GPU's architecture is found here rather than at the first op.
  probe_kernel<<<1, 1>>>();
  cudaError_t launched = cudaGetLastError();
  if (launched == cudaSuccess) launched = cudaDeviceSynchronize();
  if (launched != cudaSuccess) {
    s.reason = str("a kernel of this build cannot run on this GPU (", cudaGetErrorString(launched),
                   "): build for its architecture, sm_", s.major, s.minor, " (make CUDA_ARCH=", s.major, s.minor, ")");
    return s;
  }
  // cuDNN loads its operation and convolution libraries at their first use: load them now, so
  // that a missing one is reported here (LD_LIBRARY_PATH must name cuDNN's library folder).
  for (const auto& [library, check] : {std::pair{"libcudnn_ops", cudnnOpsVersionCheck},
                                       std::pair{"libcudnn_cnn", cudnnCnnVersionCheck}}) {
    const cudnnStatus_t loaded = check();
    if (loaded != CUDNN_STATUS_SUCCESS) {
      s.reason = str("cuDNN's ", library, " cannot be used: ", cudnnGetErrorString(loaded),
                     " (is cuDNN's lib folder on LD_LIBRARY_PATH, and of the version qnn was built with?)");
      return s;
    }
  }
  s.usable = true;
  return s;
}

std::string version(int v) { return str(v / 1000, ".", (v % 1000) / 10); }

}  // namespace

const CudaStatus& cuda_status() {
  static const CudaStatus status = probe();
  return status;
}

void cuda_prefer_device(int index) {
  QNN_CHECK(index >= 0, "cuda_prefer_device: a GPU index is not negative, got ", index);
  if (!probed) {
    preferred_device = index;
    return;
  }
  const CudaStatus& s = cuda_status();
  QNN_CHECK(!s.usable || index % s.device_count == s.device, "cuda_prefer_device(", index, "): GPU ", s.device,
            " of ", s.device_count, " is in use already (the GPU was probed before)");
}

std::string describe_cuda(const CudaStatus& s) {
  const std::string cudnn = str("cuDNN ", s.cudnn_version / 10000, ".", (s.cudnn_version % 10000) / 100,
                                ".", s.cudnn_version % 100);
  if (!s.usable) return str("no usable GPU: ", s.reason, " (runtime ", version(s.runtime_version), ", ", cudnn, ")");
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB", double(s.memory_bytes) / (1 << 30));
  const std::string which = s.device_count > 1 ? str("GPU ", s.device, " of ", s.device_count, ": ") : "";
  return str(which, s.name, ", sm_", s.major, s.minor, ", ", s.multiprocessors, " SMs, ", memory, ", driver ",
             version(s.driver_version), ", runtime ", version(s.runtime_version), ", ", cudnn);
}

BackendOptions& backend_options() {
  static BackendOptions options;
  return options;
}

namespace cuda {

cudaStream_t stream() {
  static cudaStream_t s = [] {
    QNN_CHECK(cuda_status().usable, "no usable GPU: ", cuda_status().reason);
    cudaStream_t created = nullptr;
    QNN_CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking), "creating qnn's stream");
    return created;
  }();
  return s;
}

cublasHandle_t cublas(bool allow_tf32) {
  static cublasHandle_t h = [] {
    cublasHandle_t created = nullptr;
    QNN_CUBLAS_CHECK(cublasCreate(&created), "creating the cuBLAS handle");
    QNN_CUBLAS_CHECK(cublasSetStream(created, stream()), "binding cuBLAS to qnn's stream");
    // A fixed workspace of our own: cuBLAS then never allocates, which a captured graph needs.
    // 4 MiB, what cuBLAS's documentation recommends before Hopper. It recommends 32 MiB on
    // Hopper, for large products; the training step's are the classifier's, small, and 32 MiB
    // would be an eighth of ResNet-20's step at batch 128 (the --no-cudnn lowering's large
    // products may run a little slower for it).
    constexpr size_t kWorkspaceBytes = size_t(4) << 20;
    void* workspace = cuda_allocate(kWorkspaceBytes);  // held for the life of the process
    QNN_CUBLAS_CHECK(cublasSetWorkspace(created, workspace, kWorkspaceBytes), "giving cuBLAS its workspace");
    return created;
  }();
  // Set at every use: convolutions follow the backend switch, the Linear layer never uses TF32.
  QNN_CUBLAS_CHECK(cublasSetMathMode(h, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                   "setting cuBLAS math mode");
  return h;
}

cudnnHandle_t cudnn() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t created = nullptr;
    QNN_CUDNN_CHECK(cudnnCreate(&created), "creating the cuDNN handle");
    QNN_CUDNN_CHECK(cudnnSetStream(created, stream()), "binding cuDNN to qnn's stream");
    return created;
  }();
  return h;
}

std::string cudnn_error(cudnnStatus_t status) {
  char detail[512] = "";
  cudnnGetLastErrorString(detail, sizeof detail);  // names the check that failed, where cuDNN says
  return detail[0] ? str(cudnnGetErrorString(status), "; cuDNN's last error message: ", detail)
                   : std::string(cudnnGetErrorString(status));
}

}  // namespace cuda

void synchronize(Device device) {
  if (device == Device::CUDA) QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "waiting for the GPU");
}

// A profiler that cannot open its range is no reason to stop the work: a failure is dropped, and
// cleared from the runtime's last error, where the next kernel's launch check would report it.
void profiler_start() {
  if (cuda_status().usable && cudaProfilerStart() != cudaSuccess) (void)cudaGetLastError();
}
void profiler_stop() {
  if (cuda_status().usable && cudaProfilerStop() != cudaSuccess) (void)cudaGetLastError();
}

void device_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes) {
  if (bytes == 0) return;
  const cudaMemcpyKind kind = dst_device == Device::CUDA
                                  ? (src_device == Device::CUDA ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                  : (src_device == Device::CUDA ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  QNN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, cuda::stream()), "copying ", bytes, " bytes ",
                 device_name(src_device), " -> ", device_name(dst_device));
  // A host destination is read as soon as we return. (A pageable host source is staged before
  // cudaMemcpyAsync returns, so the caller may reuse it at once.)
  if (dst_device == Device::CPU)
    QNN_CUDA_CHECK(cudaStreamSynchronize(cuda::stream()), "finishing a copy of ", bytes, " bytes");
}

namespace {
__global__ void fill_kernel(float* dst, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = value;
}

// Each image is a [rows, cols] matrix transposed to [cols, rows] ([C, HW] to [HW, C] for NHWC,
// the reverse back), through a 32 x 32 tile in shared memory so that both the reads and the
// writes of a warp are consecutive. Block (x, y, n) moves tiles (y + k gridDim.y, x) of image n.
// T: the element's bits (float32 or bf16 alike: the values are moved, not read).
template <class T>
__global__ void transpose_images_kernel(const T* src, T* dst, int64_t rows, int64_t cols) {
  __shared__ T tile[32][33];  // 33: the column reads of the second half hit distinct banks
  const int64_t image = int64_t(blockIdx.z) * rows * cols, c0 = int64_t(blockIdx.x) * 32;
  for (int64_t r0 = int64_t(blockIdx.y) * 32; r0 < rows; r0 += int64_t(gridDim.y) * 32) {
    for (int r = threadIdx.y; r < 32; r += blockDim.y)
      if (r0 + r < rows && c0 + threadIdx.x < cols)
        tile[r][threadIdx.x] = src[image + (r0 + r) * cols + c0 + threadIdx.x];
    __syncthreads();
    for (int c = threadIdx.y; c < 32; c += blockDim.y)
      if (c0 + c < cols && r0 + threadIdx.x < rows)
        dst[image + (c0 + c) * rows + r0 + threadIdx.x] = tile[threadIdx.x][c];
    __syncthreads();  // the tile is read before the next one overwrites it
  }
}

void transpose_images(const void* src, void* dst, size_t element_bytes, int64_t n, int64_t rows, int64_t cols) {
  if (n == 0 || rows == 0 || cols == 0) return;
  QNN_CHECK(n <= 65535, "memory format conversion: at most 65535 images on the GPU, got ", n);
  QNN_CHECK(element_bytes == 4 || element_bytes == 2, "memory format conversion of ", element_bytes,
            "-byte elements");
  const int64_t row_tiles = (rows + 31) / 32;
  const dim3 grid(unsigned((cols + 31) / 32), unsigned(std::min<int64_t>(row_tiles, 65535)), unsigned(n));
  if (element_bytes == 4)
    transpose_images_kernel<<<grid, dim3(32, 8), 0, cuda::stream()>>>(static_cast<const float*>(src),
                                                                       static_cast<float*>(dst), rows, cols);
  else
    transpose_images_kernel<<<grid, dim3(32, 8), 0, cuda::stream()>>>(static_cast<const uint16_t*>(src),
                                                                       static_cast<uint16_t*>(dst), rows, cols);
  QNN_LAUNCH_CHECK("memory format conversion of ", n, " images of ", rows, " x ", cols);
}

__global__ void fill_bf16_kernel(uint16_t* dst, int64_t n, uint16_t bits) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bits;
}

__global__ void float_to_bf16_kernel(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bf16_bits(src[i]);
}

__global__ void bf16_to_float_kernel(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bf16_to_float(src[i]);
}

}  // namespace

void device_to_channels_last(const void* nchw, void* nhwc, size_t element_bytes, int64_t n, int64_t c, int64_t hw) {
  transpose_images(nchw, nhwc, element_bytes, n, c, hw);
}
void device_to_contiguous(const void* nhwc, void* nchw, size_t element_bytes, int64_t n, int64_t c, int64_t hw) {
  transpose_images(nhwc, nchw, element_bytes, n, hw, c);
}

void device_float_to_bf16(const float* src, uint16_t* dst, int64_t count) {
  if (count == 0) return;
  float_to_bf16_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, cuda::stream()>>>(src, dst, count);
  QNN_LAUNCH_CHECK("conversion of ", count, " floats to bf16");
}

void device_bf16_to_float(const uint16_t* src, float* dst, int64_t count) {
  if (count == 0) return;
  bf16_to_float_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, cuda::stream()>>>(src, dst, count);
  QNN_LAUNCH_CHECK("conversion of ", count, " bf16 to floats");
}

void device_fill_bf16(uint16_t* dst, int64_t count, uint16_t bits) {
  if (count == 0) return;
  if (bits == 0) {
    QNN_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_t(count) * sizeof(uint16_t), cuda::stream()), "zeroing ", count,
                   " bf16");
    return;
  }
  fill_bf16_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, cuda::stream()>>>(dst, count, bits);
  QNN_LAUNCH_CHECK("fill of ", count, " bf16");
}

void device_fill(float* dst, int64_t count, float value) {
  if (count == 0) return;
  if (value == 0.0f && !std::signbit(value)) {  // all-zero bytes are +0 only: -0 takes the kernel
    QNN_CUDA_CHECK(cudaMemsetAsync(dst, 0, size_t(count) * sizeof(float), cuda::stream()), "zeroing ", count, " floats");
    return;
  }
  fill_kernel<<<cuda::blocks_for(count), cuda::kThreads, 0, cuda::stream()>>>(dst, count, value);
  QNN_LAUNCH_CHECK("fill of ", count, " floats");
}

}  // namespace qnn
