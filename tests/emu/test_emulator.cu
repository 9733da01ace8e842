// Tests of the CUDA emulator itself (emu/, docs/cuda-emulator.md), built only by `make emulate`:
// that it runs kernels as CUDA defines them (indices, blocks and threads in no fixed order, shared memory and
// barriers, warp shuffles and votes, atomics, graph capture and replay), and that it reports as
// failed launches and errors what a GPU would hang on, fault on or answer with garbage: a barrier
// some threads never reach, a shuffle naming lanes that exited, a copy whose pointers do not
// match its kind, a kernel given a host pointer (as an argument or inside one), host code reading
// device memory, synchronising or copying host memory inside a capture, memory past the GPU's.
// Dynamic shared memory and fresh allocations read as NaN.
#include <doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "emu/race_check.h"
#include "emu/runtime.h"
#include "tests/emu/emu_test.h"
#include "tensor/conv.h"
#include "tests/gpu.h"

namespace {

using namespace qnn_emu::testing;

__global__ void warp_sum_kernel(const int* in, int* out) {
  int v = in[threadIdx.x];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  if (threadIdx.x % 32 == 0) out[threadIdx.x / 32] = v;
}

__global__ void block_sum_kernel(const int* in, int* out) {
  __shared__ int partial[256];
  partial[threadIdx.x] = in[blockIdx.x * 256 + threadIdx.x];
  __syncthreads();
  for (int half = 128; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];
}

// Every (block, thread) of a 3-D launch counts itself once at its linear position.
__global__ void index_kernel(int* hits) {
  const unsigned block = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  const unsigned thread = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  atomicAdd(&hits[block * blockDim.x * blockDim.y * blockDim.z + thread], 1);
}

// Thread 0 of each block writes its block's index into the next free slot of `arrivals`.
__global__ void arrival_kernel(unsigned* counter, unsigned* arrivals) {
  if (threadIdx.x == 0) arrivals[atomicAdd(counter, 1u)] = blockIdx.x;
}

// Each thread takes a ticket from a counter as it starts, another after a barrier and a third
// after a warp shuffle: the order in which the block's threads ran at each point. The shuffle's
// results go to `partners`.
__global__ void ticket_kernel(unsigned* counters, unsigned* tickets, unsigned* partners) {
  const unsigned n = blockDim.x, i = threadIdx.x;
  tickets[i] = atomicAdd(&counters[0], 1u);
  __syncthreads();
  tickets[n + i] = atomicAdd(&counters[1], 1u);
  partners[i] = __shfl_xor_sync(0xffffffffu, i, 1);
  tickets[2 * n + i] = atomicAdd(&counters[2], 1u);
}

__global__ void vote_kernel(unsigned* ballots, int* swapped, int* any_odd) {
  const int lane = threadIdx.x % 32;
  const unsigned b = __ballot_sync(0xffffffffu, lane % 2);
  const int other = __shfl_xor_sync(0xffffffffu, lane, 1);
  const int any = __syncthreads_or(threadIdx.x == 37);
  ballots[threadIdx.x] = b;
  swapped[threadIdx.x] = other;
  any_odd[threadIdx.x] = any;
}

__global__ void divergent_barrier_kernel(int* out) {
  if (threadIdx.x < 16) __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void exited_lane_shuffle_kernel(int* out) {
  if (threadIdx.x >= 16) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void read_dynamic_shared_kernel(float* out) {
  extern __shared__ float scratch[];
  out[threadIdx.x] = scratch[threadIdx.x];
}

// Block 0 fills its shared array when `fill` is set; every block then reads its own. A template,
// as most kernels are (g++ would not give its static locals a section of their own).
template <class T>
__global__ void read_static_shared_kernel(T* out, int fill) {
  __shared__ T scratch[32];
  if (fill && blockIdx.x == 0) scratch[threadIdx.x] = T(1);
  __syncthreads();
  out[blockIdx.x * 32 + threadIdx.x] = scratch[threadIdx.x];
}

__global__ void add_one_kernel(int* p) { p[threadIdx.x] += 1; }
struct Target {
  int* p;
};
__global__ void add_one_through_struct_kernel(Target t) { t.p[threadIdx.x] += 1; }
__global__ void reads_nothing_kernel(const int*) {}

// Checks that `order` (the indices in the order they ran) holds each index once, in index order
// exactly when QNN_EMU_ORDER=index asks for it.
void check_order(const std::vector<unsigned>& order) {
  std::vector<unsigned> sorted = order, index_order(order.size());
  std::sort(sorted.begin(), sorted.end());
  std::iota(index_order.begin(), index_order.end(), 0u);
  CHECK(sorted == index_order);
  const char* setting = std::getenv("QNN_EMU_ORDER");
  if (setting && std::string(setting) == "index")
    CHECK(order == index_order);
  else
    CHECK(order != index_order);
}

}  // namespace

TEST_CASE("emulator: warp shuffles and shared-memory reductions sum as on a GPU" * doctest::test_suite("emulator")) {
  std::vector<int> values(1024);
  std::iota(values.begin(), values.end(), 0);
  int* in = device_array<int>(1024);
  int* warps = device_array<int>(8);
  int* blocks = device_array<int>(4);
  REQUIRE(cudaMemcpy(in, values.data(), 1024 * sizeof(int), cudaMemcpyHostToDevice) == cudaSuccess);
  warp_sum_kernel<<<1, 256>>>(in, warps);
  block_sum_kernel<<<4, 256>>>(in, blocks);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<int> w = to_host(warps, 8), b = to_host(blocks, 4);
  for (int i = 0; i < 8; ++i) CHECK(w[size_t(i)] == 32 * (32 * i) + 31 * 32 / 2);
  for (int i = 0; i < 4; ++i) CHECK(b[size_t(i)] == 256 * (256 * i) + 255 * 256 / 2);
  cudaFree(in);
  cudaFree(warps);
  cudaFree(blocks);
}

TEST_CASE("emulator: a 3-D launch runs every thread of every block once" * doctest::test_suite("emulator")) {
  const dim3 grid(3, 2, 2), block(4, 3, 2);
  const size_t n = 3 * 2 * 2 * 4 * 3 * 2;
  int* hits = device_array<int>(n);
  REQUIRE(cudaMemset(hits, 0, n * sizeof(int)) == cudaSuccess);
  index_kernel<<<grid, block>>>(hits);
  const std::vector<int> h = to_host(hits, n);
  CHECK(std::count(h.begin(), h.end(), 1) == long(n));
  cudaFree(hits);
}

TEST_CASE("emulator: blocks run once each, in an order other than their index's" * doctest::test_suite("emulator")) {
  // A GPU runs blocks in no promised order; code that relies on index order must fail here too.
  const unsigned blocks = 64;
  unsigned* counter = device_array<unsigned>(1);
  unsigned* arrivals = device_array<unsigned>(blocks);
  REQUIRE(cudaMemset(counter, 0, sizeof(unsigned)) == cudaSuccess);
  arrival_kernel<<<blocks, 32>>>(counter, arrivals);
  check_order(to_host(arrivals, blocks));
  cudaFree(counter);
  cudaFree(arrivals);
}

TEST_CASE("emulator: a block's threads start, and go on after a barrier or a warp collective, in an order other than "
          "their index's" * doctest::test_suite("emulator")) {
  // A GPU promises no order among a block's threads either: a result that depends on one (slots
  // handed out by an atomic counter, a thread taken to run first) must fail here too.
  const unsigned threads = 64;
  unsigned* counters = device_array<unsigned>(3);
  unsigned* tickets = device_array<unsigned>(3 * threads);
  unsigned* partners = device_array<unsigned>(threads);
  REQUIRE(cudaMemset(counters, 0, 3 * sizeof(unsigned)) == cudaSuccess);
  ticket_kernel<<<1, threads>>>(counters, tickets, partners);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const std::vector<unsigned> all = to_host(tickets, 3 * threads), partner = to_host(partners, threads);
  for (unsigned i = 0; i < threads; ++i) CHECK(partner[i] == (i ^ 1u));
  for (unsigned point = 0; point < 3; ++point) {
    CAPTURE(point);  // 0: the start, 1: after the barrier, 2: after the shuffle
    check_order(std::vector<unsigned>(all.begin() + point * threads, all.begin() + (point + 1) * threads));
  }
  cudaFree(counters);
  cudaFree(tickets);
  cudaFree(partners);
}

TEST_CASE("emulator: ballots, butterfly shuffles and __syncthreads_or" * doctest::test_suite("emulator")) {
  unsigned* ballots = device_array<unsigned>(64);
  int* swapped = device_array<int>(64);
  int* any = device_array<int>(64);
  vote_kernel<<<1, 64>>>(ballots, swapped, any);
  const std::vector<unsigned> b = to_host(ballots, 64);
  const std::vector<int> s = to_host(swapped, 64), a = to_host(any, 64);
  for (int i = 0; i < 64; ++i) {
    CHECK(b[size_t(i)] == 0xaaaaaaaau);
    CHECK(s[size_t(i)] == ((i % 32) ^ 1));
    CHECK(a[size_t(i)] == 1);
  }
  cudaFree(ballots);
  cudaFree(swapped);
  cudaFree(any);
}

TEST_CASE("emulator: fresh device memory and unwritten shared memory read as NaN" * doctest::test_suite("emulator")) {
  float* fresh = device_array<float>(32);
  float* out = device_array<float>(32);
  read_dynamic_shared_kernel<<<1, 32, 32 * sizeof(float)>>>(out);
  for (float v : to_host(fresh, 32)) CHECK(std::isnan(v));
  for (float v : to_host(out, 32)) CHECK(std::isnan(v));
  cudaFree(fresh);
  cudaFree(out);

  // A __shared__ array holds nothing from an earlier block or launch.
  float* blocks = device_array<float>(64);
  read_static_shared_kernel<<<2, 32>>>(blocks, 1);
  const std::vector<float> filled = to_host(blocks, 64);
  for (int i = 0; i < 32; ++i) CHECK(filled[i] == 1.0f);
  for (int i = 32; i < 64; ++i) CHECK(std::isnan(filled[i]));
  read_static_shared_kernel<<<1, 32>>>(blocks, 0);
  for (float v : to_host(blocks, 32)) CHECK(std::isnan(v));
  cudaFree(blocks);
}

TEST_CASE("emulator: a barrier some threads skip fails the launch" * doctest::test_suite("emulator")) {
  int* out = device_array<int>(32);
  divergent_barrier_kernel<<<1, 32>>>(out);
  expect_failed_launch();
  cudaFree(out);
}

TEST_CASE("emulator: a shuffle whose mask names exited lanes fails the launch" * doctest::test_suite("emulator")) {
  int* out = device_array<int>(32);
  exited_lane_shuffle_kernel<<<1, 32>>>(out);
  expect_failed_launch();
  cudaFree(out);
}

TEST_CASE("emulator: launch configurations a GPU refuses are errors" * doctest::test_suite("emulator")) {
  int* p = device_array<int>(32);
  add_one_kernel<<<1, 2048>>>(p);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  add_one_kernel<<<1, 32, size_t(64) << 10>>>(p);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess);  // not sticky
  cudaFree(p);
}

TEST_CASE("emulator: a kernel given a pointer to host memory fails the launch" * doctest::test_suite("emulator")) {
  std::vector<int> host(32, 0);
  add_one_kernel<<<1, 32>>>(host.data());
  expect_failed_launch();
  CHECK(host[0] == 0);
  int* device = device_array<int>(32);
  reads_nothing_kernel<<<1, 32>>>(device + 32);  // just past the end, as an empty range's pointer may be
  CHECK(cudaDeviceSynchronize() == cudaSuccess);

  // Inside a structure, the pointer is seen when the kernel follows it (emu/race_check.h).
  REQUIRE(cudaMemset(device, 0, 32 * sizeof(int)) == cudaSuccess);
  add_one_through_struct_kernel<<<1, 32>>>(Target{device});
  CHECK(to_host(device, 32)[31] == 1);
  if (qnn_emu::race::watching()) {
    add_one_through_struct_kernel<<<1, 32>>>(Target{host.data()});
    expect_failed_launch();
    CHECK(host[0] == 0);
  }
  cudaFree(device);
}

TEST_CASE("emulator: host code that reads device memory stops there, as on a GPU" * doctest::test_suite("emulator")) {
  // In a child process, which the fault ends: its exit, and what it said on stderr.
  int* device = device_array<int>(32);
  REQUIRE(cudaMemset(device, 0, 32 * sizeof(int)) == cudaSuccess);
  int pipe_ends[2];
  REQUIRE(pipe(pipe_ends) == 0);
  std::fflush(nullptr);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(pipe_ends[1], STDERR_FILENO);
    // The emulator's message goes to stderr; the handlers after it (the test framework's, a
    // sanitizer's) would report the fault on stdout as a failure of their own.
    const int null_output = open("/dev/null", O_WRONLY);
    dup2(null_output, STDOUT_FILENO);
    const volatile int* p = device;
    std::_Exit(p[3] == 0 ? 10 : 11);  // reaches neither exit
  }
  close(pipe_ends[1]);
  std::string said;
  char buffer[4096];
  for (ssize_t n; (n = read(pipe_ends[0], buffer, sizeof buffer)) > 0;) said.append(buffer, size_t(n));
  close(pipe_ends[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK_FALSE((WIFEXITED(status) && (WEXITSTATUS(status) == 10 || WEXITSTATUS(status) == 11)));
  CHECK(said.find("host code read or wrote device memory") != std::string::npos);

  // The same memory, read through a copy, is there.
  CHECK(to_host(device, 32)[3] == 0);
  cudaFree(device);
}

TEST_CASE("emulator: copies whose pointers do not match their kind are errors" * doctest::test_suite("emulator")) {
  std::vector<int> host(8, 0), other(8, 0);
  int* device = device_array<int>(8);
  CHECK(cudaMemcpy(host.data(), other.data(), 8 * sizeof(int), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(device, host.data(), 8 * sizeof(int), cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(device, host.data(), 9 * sizeof(int), cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
  CHECK(cudaMemcpy(device, host.data(), 8 * sizeof(int), cudaMemcpyHostToDevice) == cudaSuccess);
  CHECK(cudaFree(host.data()) == cudaErrorInvalidValue);
  cudaGetLastError();
  cudaFree(device);
}

TEST_CASE("emulator: memory past the GPU's is refused, and the error waits for cudaGetLastError" *
          doctest::test_suite("emulator")) {
  cudaDeviceProp prop;
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  // What is live plus what is asked for may not pass the GPU's memory. (The refused request is
  // never filled, so asking for nearly all of it costs nothing.)
  const size_t mib = size_t(1) << 20;
  void* live = nullptr;
  void* more = nullptr;
  REQUIRE(cudaMalloc(&live, mib) == cudaSuccess);
  CHECK(cudaMalloc(&more, prop.totalGlobalMem - mib / 2) == cudaErrorMemoryAllocation);
  CHECK(more == nullptr);
  CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);  // left there, as on a GPU
  CHECK(cudaGetLastError() == cudaSuccess);                // and not sticky
  REQUIRE(cudaMalloc(&more, mib) == cudaSuccess);
  cudaFree(more);
  cudaFree(live);
}

TEST_CASE("emulator: a captured graph runs only when launched, and every time" * doctest::test_suite("emulator")) {
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
  int* p = device_array<int>(32);
  REQUIRE(cudaMemset(p, 0, 32 * sizeof(int)) == cudaSuccess);
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  add_one_kernel<<<1, 32, 0, s>>>(p);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(s, &graph) == cudaSuccess);
  CHECK(to_host(p, 32)[0] == 0);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  REQUIRE(cudaGraphLaunch(exec, s) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  for (int v : to_host(p, 32)) CHECK(v == 2);

  // Synchronising inside a capture breaks it, as on a GPU.
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
  cudaGraph_t broken = nullptr;
  CHECK(cudaStreamEndCapture(s, &broken) == cudaErrorStreamCaptureInvalidated);
  CHECK(broken == nullptr);

  // So does a copy from host memory: its node would read the buffer again at every replay.
  const std::vector<int> host(32, 7);
  REQUIRE(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  CHECK(cudaMemcpyAsync(p, host.data(), 32 * sizeof(int), cudaMemcpyHostToDevice, s) ==
        cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamEndCapture(s, &broken) == cudaErrorStreamCaptureInvalidated);
  CHECK(to_host(p, 32)[0] == 2);
  cudaGetLastError();
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaFree(p);
  cudaStreamDestroy(s);
}

TEST_CASE("emulator: a cuDNN algorithm refused when it runs is set aside and the next one run" *
          doctest::test_suite("emulator")) {
  // Algorithm 1 is the one qnn's choice takes first (the emulated cuDNN ranks 2, 1, 0 and 2 is
  // never allowed); refused, each direction falls back to 0, and the results are the CPU's.
  using namespace qnn;
  const testing::NoTF32 no_tf32;
  const ConvParams p{1, 1};
  const Tensor x = Tensor::normal({2, 3, 7, 9}, 0, 1, 41), w = Tensor::normal({5, 3, 3, 3}, 0, 1, 42);
  const Tensor y = conv2d_forward(x, w, Tensor(), p);
  const Tensor dy = Tensor::normal(y.shape(), 0, 1, 43);
  const Tensor dx = conv2d_backward_data(dy, w, x.shape(), p);
  Tensor dw = Tensor::zeros(w.shape()), db;
  conv2d_backward_weight(x, dy, dw, db, p);
  REQUIRE(setenv("QNN_EMU_CUDNN_REFUSE_ALGO", "1", 1) == 0);
  const Tensor yg = conv2d_forward(testing::gpu(x), testing::gpu(w), Tensor(), p);
  const Tensor dxg = conv2d_backward_data(testing::gpu(dy), testing::gpu(w), x.shape(), p);
  Tensor dwg = Tensor::zeros(w.shape(), Device::CUDA);
  conv2d_backward_weight(testing::gpu(x), testing::gpu(dy), dwg, db, p);
  unsetenv("QNN_EMU_CUDNN_REFUSE_ALGO");
  CHECK(testing::closeness(yg, y, 1e-5, 1e-5) <= 1);
  CHECK(testing::closeness(dxg, dx, 1e-5, 1e-5) <= 1);
  CHECK(testing::closeness(dwg, dw, 1e-4, 1e-5) <= 1);
  // Every algorithm refused: an error that quotes cuDNN's reason.
  REQUIRE(setenv("QNN_EMU_CUDNN_REFUSE_ALGO", "0,1", 1) == 0);
  const Tensor x2 = Tensor::normal({1, 3, 5, 6}, 0, 1, 44);
  CHECK_THROWS_WITH_AS(conv2d_forward(testing::gpu(x2), testing::gpu(w), Tensor(), p), doctest::Contains("refused"), Error);
  unsetenv("QNN_EMU_CUDNN_REFUSE_ALGO");
}
