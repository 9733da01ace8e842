// CUDA C++ as plain C++, for the emulated build (`make emulate`, docs/cuda-emulator.md): the
// build compiles each .cu file with g++, this header included first, after emu/launch.sed has
// rewritten the two pieces of syntax a C++ compiler cannot read:
//   kernel<<<grid, block, shared, stream>>>(args)  ->  qnn_emu::launch(<a lambda calling kernel>, "kernel", grid, block, shared, stream)(args)
//   extern __shared__ float name[];                ->  float* const name = <the launch's dynamic shared memory>;
// Everything else is defined here: the qualifiers, the built-in variables (threadIdx, blockIdx,
// blockDim, gridDim), barriers and warp collectives (run by emu/scheduler.h), atomics (plain
// read-modify-writes: CUDA threads run one at a time, so nothing interleaves), and the
// intrinsics the backend uses with the rounding CUDA documents for them. The build compiles
// these files with -ffp-contract=off, so that __fmul_rn and __fadd_rn stay separate roundings.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu/race_check.h"
#include "emu/runtime.h"
#include "emu/scheduler.h"

#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __noinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
// emu/launch.sed rewrites every __shared__ declaration into a call of qnn_emu::static_shared
// (below); one it could not read stops the build here.
#define __shared__ QNN_EMU_SHARED_DECLARATION_NOT_REWRITTEN_BY_EMU_LAUNCH_SED
#define __constant__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

#define threadIdx (::qnn_emu::thread_index())
#define blockIdx (::qnn_emu::current_block->block_idx)
#define blockDim (::qnn_emu::current_block->block_dim)
#define gridDim (::qnn_emu::current_block->grid_dim)
#define warpSize 32

namespace qnn_emu {

// A kernel's pointer argument that a GPU thread could not follow: neither null nor inside (or
// just past the end of) a device allocation. Other arguments are passed by value.
template <typename T>
const void* host_pointer(const T&) { return nullptr; }
template <typename T>
const void* host_pointer(T* p) { return p && !is_device_memory(p, 0) ? p : nullptr; }
// The first such argument's position (from 1; 0 if none) and value.
template <typename... Args>
std::pair<int, const void*> first_host_pointer(const Args&... args) {
  const void* pointers[] = {host_pointer(args)..., nullptr};
  for (size_t i = 0; i < sizeof...(Args); ++i)
    if (pointers[i]) return {int(i) + 1, pointers[i]};
  return {0, nullptr};
}

// A launch: `kernel` is a generic lambda that calls the kernel (emu/launch.sed). The arguments
// are copied once, as a launch copies them; every CUDA thread then calls the kernel with its own
// copies, as every GPU thread has its own parameters. A pointer argument to host memory fails
// the launch, as a GPU thread that follows it faults.
template <typename Kernel>
struct Launch {
  Kernel kernel;
  const char* name;
  dim3 grid, block;
  size_t shared;
  cudaStream_t stream;
  template <typename... Args>
  void operator()(Args&&... args) const {
    std::tuple<std::decay_t<Args>...> values(std::forward<Args>(args)...);
    const auto [position, host] = std::apply([](const auto&... v) { return first_host_pointer(v...); }, values);
    if (host) return fail_launch(name, position, host);
    const Kernel k = kernel;
    submit(name, grid, block, shared, stream, [k, values] {
      race::arguments(&values, sizeof values);
      std::apply(k, values);
    });
  }
};

template <typename Kernel>
Launch<Kernel> launch(Kernel kernel, const char* name, dim3 grid, dim3 block, size_t shared = 0,
                      cudaStream_t stream = nullptr) {
  return Launch<Kernel>{kernel, name, grid, block, shared, stream};
}

// A __shared__ declaration of type A: its place in the block's static shared memory, allocated
// the first time the declaration runs (each declaration, and each instantiation of a template
// kernel, has a closure type of its own as `Declaration`) and the same in every block since, on
// a 16-byte boundary at least (emu/race_check.cpp's alignment check).
// Not instrumented: the race checker watches the memory, not this bookkeeping.
template <typename A, typename Declaration>
__attribute__((no_sanitize("thread"), noinline)) A& static_shared(Declaration) {
  static const size_t offset = allocate_static_shared(sizeof(A), alignof(A) > 16 ? alignof(A) : 16);
  return *reinterpret_cast<A*>(static_shared_arena() + offset);
}

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "a warp shuffle of more than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  return bits;
}
template <typename T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

}  // namespace qnn_emu

// Barriers and warp collectives.
inline void __syncthreads() { qnn_emu::block_barrier(qnn_emu::BlockOp::sync, 0); }
inline int __syncthreads_or(int p) { return qnn_emu::block_barrier(qnn_emu::BlockOp::any, p); }
inline unsigned __ballot_sync(unsigned mask, int p) {
  return unsigned(qnn_emu::warp_collective(qnn_emu::WarpOp::ballot, mask, p != 0, 0, 32));
}
#define QNN_EMU_SHUFFLE(name, op)                                                                             \
  template <typename T>                                                                                       \
  T name(unsigned mask, T v, int arg, int width = 32) {                                                       \
    return qnn_emu::from_bits<T>(qnn_emu::warp_collective(qnn_emu::WarpOp::op, mask, qnn_emu::to_bits(v), arg, width)); \
  }
QNN_EMU_SHUFFLE(__shfl_down_sync, shfl_down)
QNN_EMU_SHUFFLE(__shfl_xor_sync, shfl_xor)
#undef QNN_EMU_SHUFFLE

// A memory fence orders nothing here (blocks run one at a time, each seeing all memory), but the
// race checker counts it (emu/race_check.h).
inline void __threadfence() { qnn_emu::race::fence(); }

// Atomics: the old value, as on the GPU. They are not instrumented: the race checker is told of
// each as one atomic access (from the kernel's call site) instead of its read and write.
#define QNN_EMU_ATOMIC(name, update)                                                        \
  template <typename T>                                                                     \
  __attribute__((no_sanitize("thread"), noinline)) T name(T* p, T v) {                      \
    qnn_emu::race::atomic(p, sizeof(T), __builtin_return_address(0));                       \
    const T old = *p;                                                                       \
    *p = update;                                                                            \
    return old;                                                                             \
  }
QNN_EMU_ATOMIC(atomicAdd, old + v)
QNN_EMU_ATOMIC(atomicMin, v < old ? v : old)
QNN_EMU_ATOMIC(atomicMax, v > old ? v : old)
#undef QNN_EMU_ATOMIC

// Arithmetic with a named rounding: every one of these rounds to nearest even, as IEEE does.
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline double __drcp_rn(double a) { return 1.0 / a; }
// Conversions: _rn rounds to nearest even (the default rounding mode), _rz truncates; a float
// out of int's range gives what CUDA documents (saturation, NaN -> 0).
inline int __float2int_rz(float a) {
  if (std::isnan(a)) return 0;
  if (a >= 2147483648.0f) return INT32_MAX;
  if (a < -2147483648.0f) return INT32_MIN;
  return int(a);
}
inline int __float2int_rn(float a) { return __float2int_rz(std::nearbyint(a)); }
inline float __int2float_rn(int a) { return float(a); }
inline float __uint_as_float(unsigned a) { return qnn_emu::from_bits<float>(a); }
inline unsigned __float_as_uint(float a) { return unsigned(qnn_emu::to_bits(a)); }

// CUDA's min and max overloads for mixed integer types promote as CUDA does, to the wider type.
template <typename A, typename B>
auto min(A a, B b) -> std::common_type_t<A, B> { return b < a ? b : a; }
template <typename A, typename B>
auto max(A a, B b) -> std::common_type_t<A, B> { return a < b ? b : a; }
