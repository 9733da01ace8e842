// What every .cu file of the CUDA backend shares: the stream, the cuBLAS and cuDNN handles,
// checked calls and launch shapes. Only CUDA sources include this (it pulls in the CUDA headers);
// the rest of qnn sees tensor/device.h.
//
// Error handling: every CUDA, cuBLAS and cuDNN call goes through a QNN_*_CHECK macro, which
// throws qnn::Error naming the function, the call, the library's message and the context the
// caller gives (the op and its shapes): "[conv2d_forward] cudnnConvolutionForward(...) failed:
// CUDNN_STATUS_BAD_PARAM (x [128, 16, 32, 32], w [16, 16, 3, 3])". Kernel launches are checked
// with QNN_LAUNCH_CHECK, which catches bad launch configurations at once; a fault inside a kernel
// surfaces later, at the next synchronisation (synchronize(), a copy to the host) or the next
// checked launch or call, which then reports it (CUDA_LAUNCH_BLOCKING=1 makes every launch wait
// for its kernel, so the failing one reports its own fault).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>
#include <string>

#include "tensor/check.h"
#include "tensor/device.h"

namespace qnn::cuda {

cudaStream_t stream();          // the one stream all GPU work of qnn runs on
// The cuBLAS handle, bound to stream(), with TF32 tensor cores allowed in the calls that follow
// or not (the handle's math mode).
cublasHandle_t cublas(bool allow_tf32);
cudnnHandle_t cudnn();          // bound to stream()
// cudnnGetErrorString, with cuDNN's last error message of this thread where it has one.
std::string cudnn_error(cudnnStatus_t status);

// Threads per block for element-wise kernels, and enough blocks to cover n elements with a
// grid-stride loop (capped: a grid-stride kernel needs no more blocks than the GPU can hold).
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65535 * 8 ? 65535 * 8 : blocks));
}

}  // namespace qnn::cuda

#define QNN_CUDA_CHECK(call, ...)                                                              \
  do {                                                                                         \
    const cudaError_t qnn_err_ = (call);                                                       \
    if (qnn_err_ != cudaSuccess)                                                               \
      throw ::qnn::Error(::qnn::str("[", __func__, "] ", #call, " failed: ",                   \
                                    cudaGetErrorString(qnn_err_), " (", ::qnn::str(__VA_ARGS__), ")")); \
  } while (0)

#define QNN_CUBLAS_CHECK(call, ...)                                                            \
  do {                                                                                         \
    const cublasStatus_t qnn_st_ = (call);                                                     \
    if (qnn_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      throw ::qnn::Error(::qnn::str("[", __func__, "] ", #call, " failed: ",                   \
                                    cublasGetStatusString(qnn_st_), " (", ::qnn::str(__VA_ARGS__), ")")); \
  } while (0)

#define QNN_CUDNN_CHECK(call, ...)                                                             \
  do {                                                                                         \
    const cudnnStatus_t qnn_st_ = (call);                                                      \
    if (qnn_st_ != CUDNN_STATUS_SUCCESS)                                                       \
      throw ::qnn::Error(::qnn::str("[", __func__, "] ", #call, " failed: ",                   \
                                    ::qnn::cuda::cudnn_error(qnn_st_), " (", ::qnn::str(__VA_ARGS__), ")")); \
  } while (0)

// After a kernel launch: QNN_LAUNCH_CHECK("relu ", shape_str(x.shape()));
#define QNN_LAUNCH_CHECK(...)                                                                  \
  QNN_CUDA_CHECK(cudaGetLastError(), "kernel launch: ", __VA_ARGS__,                           \
                 "; a fault of earlier GPU work shows here too: CUDA_LAUNCH_BLOCKING=1 names the kernel")
