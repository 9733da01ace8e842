// Tests of the emulator's race checker (emu/race_check.h): a read or write of another thread's
// data with no barrier between them fails the launch, in shared and in device memory, whichever
// access comes first in the emulator's order, and so does a plain access to a byte other threads
// update atomically; barriers, atomics, and the fence-and-counter pattern by which the last block
// of a grid reads what the others wrote (through volatile loads), do not. The same hooks check that
// a vector load or store is aligned to its size, as a GPU requires. Skipped where
// the kernels are not instrumented (`make emulate SANITIZE=1`, whose AddressSanitizer excludes
// ThreadSanitizer's instrumentation).
#include <doctest.h>

#include <cstdint>
#include <vector>

#include "emu/race_check.h"
#include "tests/emu/emu_test.h"

namespace {

using namespace qnn_emu::testing;

bool watching() {
  if (!qnn_emu::race::watching()) MESSAGE("skipped: the kernels of this build are not instrumented for the race checker");
  return qnn_emu::race::watching();
}

// Each thread reads its right-hand neighbour's value: after a barrier, or (a race) without one.
__global__ void neighbour_kernel(int* out, int barrier) {
  __shared__ int value[64];
  value[threadIdx.x] = int(threadIdx.x) * 10;
  if (barrier) __syncthreads();
  out[threadIdx.x] = value[(threadIdx.x + 1) % 64];
}

// Each thread reads its neighbour's value, then overwrites its own: a barrier must separate the
// neighbour's read from the write (write after read).
__global__ void rotate_kernel(int* data, int barrier) {
  __shared__ int value[64];
  value[threadIdx.x] = data[threadIdx.x];
  __syncthreads();
  const int next = value[(threadIdx.x + 1) % 64];
  if (barrier) __syncthreads();
  value[threadIdx.x] = next;
  __syncthreads();
  data[threadIdx.x] = value[threadIdx.x];
}

// Block 1 reads what block 0 wrote to device memory in the same launch: nothing orders them.
__global__ void cross_block_kernel(int* data) {
  if (blockIdx.x == 0) data[threadIdx.x] = 1;
  else data[32 + threadIdx.x] = data[threadIdx.x];
}

// Each block writes its partial sum, fences (if asked) and counts itself done; the block that
// counts last adds every partial, through a volatile pointer (if asked), as tensor/batchnorm.cu's
// statistics do.
__global__ void last_block_sum_kernel(const int* in, int* partial, unsigned* done, int* total, int fence,
                                      int volatile_read) {
  __shared__ int sums[32];
  __shared__ int last;
  sums[threadIdx.x] = in[blockIdx.x * 32 + threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    int s = 0;
    for (int i = 0; i < 32; ++i) s += sums[i];
    partial[blockIdx.x] = s;
    if (fence) __threadfence();
    last = atomicAdd(done, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (last && threadIdx.x == 0) {
    int s = 0;
    for (unsigned b = 0; b < gridDim.x; ++b) {
      if (volatile_read) s += static_cast<volatile int*>(partial)[b];
      else s += partial[b];
    }
    *total = s;
    *done = 0;
  }
}

// Every thread of every block adds to one counter.
__global__ void count_kernel(unsigned* counter) { atomicAdd(counter, 1u); }

// Thread 0 zeroes a shared counter that every thread then adds to, and reads the total: a barrier
// must separate the plain store from the atomics (`init_barrier`), and the atomics from the plain
// load (`read_barrier`).
__global__ void shared_count_kernel(int* out, int init_barrier, int read_barrier) {
  __shared__ int count;
  if (threadIdx.x == 0) count = 0;
  if (init_barrier) __syncthreads();
  atomicAdd(&count, 1);
  if (read_barrier) __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = count;
}

// Each thread copies four floats as one float4 (16 bytes) or four bf16 values as one uint2 (8
// bytes), as the element passes of tensor/channel_sums_cuda.h do: from and to addresses that must
// be multiples of the access's size.
__global__ void float4_copy_kernel(const float* in, float* out) {
  reinterpret_cast<float4*>(out)[threadIdx.x] = reinterpret_cast<const float4*>(in)[threadIdx.x];
}
__global__ void uint2_copy_kernel(const uint16_t* in, uint16_t* out) {
  reinterpret_cast<uint2*>(out)[threadIdx.x] = reinterpret_cast<const uint2*>(in)[threadIdx.x];
}

__global__ void count_at_kernel(int* counter) { atomicAdd(counter, 1); }

// Pairs of doubles (alignment 8, which g++ copies as one 16-byte access and nvcc as two of 8)
// passed through shared memory: no vector, nothing misaligned on a GPU.
struct DoublePair {
  double a, b;
};
__global__ void double_pairs_kernel(double* out) {
  __shared__ double padding;  // so that the pairs would start 8 bytes past a 16-byte boundary
  __shared__ DoublePair pairs[8];
  if (threadIdx.x == 0) padding = 0.25;
  pairs[threadIdx.x] = DoublePair{double(threadIdx.x), 0.5};
  __syncthreads();
  const DoublePair next = pairs[(threadIdx.x + 1) % 8];
  out[threadIdx.x] = next.a + next.b + padding;
}

}  // namespace

TEST_CASE("emulator: a vector load or store, or an atomic, at an address that is not a multiple of its size fails the launch" *
          doctest::test_suite("emulator")) {
  if (!watching()) return;
  std::vector<float> values(4 * 8 + 4);
  for (size_t i = 0; i < values.size(); ++i) values[i] = float(i);
  float* in = device_array<float>(values.size());
  float* out = device_array<float>(values.size());
  REQUIRE(cudaMemcpy(in, values.data(), sizeof(float) * values.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  float4_copy_kernel<<<1, 8>>>(in + 4, out);  // 16-byte aligned: runs
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<float> copied = to_host(out, 32);
  for (size_t i = 0; i < 32; ++i) CHECK(copied[i] == float(i + 4));
  float4_copy_kernel<<<1, 8>>>(in + 2, out);  // 8-byte aligned source
  expect_failed_launch();
  float4_copy_kernel<<<1, 8>>>(in, out + 1);  // 4-byte aligned destination
  expect_failed_launch();
  const uint16_t* half_in = reinterpret_cast<const uint16_t*>(in);
  uint16_t* half_out = reinterpret_cast<uint16_t*>(out);
  uint2_copy_kernel<<<1, 8>>>(half_in + 4, half_out);  // 8-byte aligned: runs
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  uint2_copy_kernel<<<1, 8>>>(half_in + 2, half_out);  // 4-byte aligned source
  expect_failed_launch();
  count_at_kernel<<<1, 4>>>(reinterpret_cast<int*>(half_out + 1));  // an atomic on a 2-byte boundary
  expect_failed_launch();
  double* sums = device_array<double>(8);
  double_pairs_kernel<<<1, 8>>>(sums);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<double> pair_sums = to_host(sums, 8);
  for (size_t i = 0; i < 8; ++i) CHECK(pair_sums[i] == double((i + 1) % 8) + 0.75);
  cudaFree(sums);
  cudaFree(in);
  cudaFree(out);
}

TEST_CASE("emulator race check: shared memory read or overwritten with no barrier fails the launch" *
          doctest::test_suite("emulator")) {
  if (!watching()) return;
  int* out = device_array<int>(64);
  neighbour_kernel<<<1, 64>>>(out, 1);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<int> shifted = to_host(out, 64);
  for (int i = 0; i < 64; ++i) CHECK(shifted[size_t(i)] == (i + 1) % 64 * 10);
  neighbour_kernel<<<1, 64>>>(out, 0);
  expect_failed_launch();

  std::vector<int> values(64);
  for (int i = 0; i < 64; ++i) values[size_t(i)] = i;
  REQUIRE(cudaMemcpy(out, values.data(), sizeof(int) * 64, cudaMemcpyHostToDevice) == cudaSuccess);
  rotate_kernel<<<1, 64>>>(out, 1);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<int> rotated = to_host(out, 64);
  for (int i = 0; i < 64; ++i) CHECK(rotated[size_t(i)] == (i + 1) % 64);
  rotate_kernel<<<1, 64>>>(out, 0);  // whether or not its results come out right in the emulator's order
  expect_failed_launch();
  cudaFree(out);
}

TEST_CASE("emulator race check: blocks of one launch are ordered only by a fence and an atomic" *
          doctest::test_suite("emulator")) {
  if (!watching()) return;
  int* data = device_array<int>(64);
  cross_block_kernel<<<2, 32>>>(data);
  expect_failed_launch();

  std::vector<int> values(8 * 32);
  for (size_t i = 0; i < values.size(); ++i) values[i] = int(i % 7);
  int* in = device_array<int>(values.size());
  int* partial = device_array<int>(8);
  int* total = device_array<int>(1);
  unsigned* done = device_array<unsigned>(1);
  REQUIRE(cudaMemcpy(in, values.data(), sizeof(int) * values.size(), cudaMemcpyHostToDevice) == cudaSuccess);
  REQUIRE(cudaMemset(done, 0, sizeof(unsigned)) == cudaSuccess);
  last_block_sum_kernel<<<8, 32>>>(in, partial, done, total, 1, 1);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  int expected = 0;
  for (int v : values) expected += v;
  CHECK(to_host(total, 1)[0] == expected);
  last_block_sum_kernel<<<8, 32>>>(in, partial, done, total, 0, 1);  // no fence
  expect_failed_launch();
  REQUIRE(cudaMemset(done, 0, sizeof(unsigned)) == cudaSuccess);
  last_block_sum_kernel<<<8, 32>>>(in, partial, done, total, 1, 0);  // a plain load may hit a stale cache
  expect_failed_launch();

  // Atomics on one address from every thread are no race.
  REQUIRE(cudaMemset(done, 0, sizeof(unsigned)) == cudaSuccess);
  count_kernel<<<4, 64>>>(done);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(to_host(done, 1)[0] == 256u);
  for (void* p : {static_cast<void*>(data), static_cast<void*>(in), static_cast<void*>(partial),
                  static_cast<void*>(total), static_cast<void*>(done)})
    cudaFree(p);
}

TEST_CASE("emulator race check: a plain access and another thread's atomic on one byte need a barrier" *
          doctest::test_suite("emulator")) {
  if (!watching()) return;
  int* out = device_array<int>(2);
  shared_count_kernel<<<2, 64>>>(out, 1, 1);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(to_host(out, 2) == std::vector<int>{64, 64});
  // Thread 0's plain write of the counter before the others add, and its plain read after they
  // add, race with their atomics, whatever the results in the emulator's order.
  shared_count_kernel<<<2, 64>>>(out, 0, 1);
  expect_failed_launch();
  shared_count_kernel<<<2, 64>>>(out, 1, 0);
  expect_failed_launch();
  cudaFree(out);
}
