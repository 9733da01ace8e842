// What the emulator's own tests (tests/emu/) share: device arrays, copies back, and the check of
// a launch that must fail.
#pragma once
#include <doctest.h>

#include <cuda_runtime.h>

#include <cstddef>
#include <vector>

#include "emu/runtime.h"

namespace qnn_emu::testing {

template <class T>
T* device_array(size_t n) {
  void* p = nullptr;
  REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> to_host(const T* device, size_t n) {
  std::vector<T> host(n);
  REQUIRE(cudaMemcpy(host.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
  return host;
}

// A launch that must fail: the error is there at the next synchronisation, then forgotten so
// the tests after it can run (a GPU would need a new process).
inline void expect_failed_launch() {
  CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
  CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
  forget_failure();
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

}  // namespace qnn_emu::testing
