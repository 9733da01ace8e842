// For tests of the CUDA backend: GPU_TEST_CASE declares a test that doctest skips (and counts as
// skipped) when no GPU is usable, either because the build has no CUDA backend or because the
// machine has no GPU or driver; tests/main.cpp prints the reason once. GPU_SCALE_TEST_CASE
// declares one that the CUDA emulator skips too: a test whose point is a real network's size.
// Parity tests run the same op on the CPU and on the GPU from the same random inputs and compare
// with `close_to`.
#pragma once
#include <doctest.h>

#include <cmath>
#include <string>

#include "tensor/device.h"
#include "tensor/tensor.h"

namespace qnn::testing {

inline bool gpu_usable() { return cuda_status().usable; }

// Whether the GPU is the CUDA emulator (`make emulate`, docs/cuda-emulator.md). It runs a block's
// threads one after another and checks every memory access, so a launch over a network's whole
// gradient takes seconds there. Sizes that exist to give a GPU a network's scale are smaller on
// it: the kernels take the same paths over fewer blocks.
inline bool emulated_gpu() { return gpu_usable() && cuda_status().name.rfind("CUDA emulator", 0) == 0; }

// The longest gradient the quantizer tests give the GPU: ResNet-20's 269,722 coordinates on a GPU,
// 20,011 (40 buckets of 512 and a partial one) on the emulator.
inline int64_t network_gradient_size() { return emulated_gpu() ? 20011 : 269722; }

// A copy of t on the GPU (an undefined tensor stays undefined).
inline Tensor gpu(const Tensor& t) { return t.defined() ? t.to(Device::CUDA) : Tensor(); }

// Largest |a - b| / (atol + rtol |b|) over the elements; <= 1 means every element is close.
inline double closeness(const Tensor& a, const Tensor& b, double atol, double rtol) {
  REQUIRE(a.numel() == b.numel());
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double excess = std::fabs(double(x[i]) - y[i]) / (atol + rtol * std::fabs(double(y[i])));
    if (!(excess <= worst)) worst = std::isnan(excess) ? INFINITY : excess;
  }
  return worst;
}

// Sets the TF32 switch (convolutions in TF32 or not) for the lifetime of a test.
struct TF32Switch {
  explicit TF32Switch(bool on) : saved(backend_options().tf32) { backend_options().tf32 = on; }
  ~TF32Switch() { backend_options().tf32 = saved; }
  bool saved;
};

// Turns TF32 off, so that convolutions compute in full fp32 and the comparison with the CPU can
// use fp32 tolerances.
struct NoTF32 : TF32Switch {
  NoTF32() : TF32Switch(false) {}
};

// Models store their GPU image batches channels-last (backend_options().channels_last) for the
// lifetime of a test.
struct ChannelsLast {
  ChannelsLast() : saved(backend_options().channels_last) { backend_options().channels_last = true; }
  ~ChannelsLast() { backend_options().channels_last = saved; }
  bool saved;
};

// GPU image activations in bf16 (backend_options().bf16, docs/bf16.md) for the lifetime of a test.
// It also switches the CPU's convolutions to bf16 operands: run CPU references outside it.
struct Bf16 {
  Bf16() : saved(backend_options().bf16) { backend_options().bf16 = true; }
  ~Bf16() { backend_options().bf16 = saved; }
  bool saved;
};

}  // namespace qnn::testing

#define GPU_TEST_CASE(name) TEST_CASE(name * doctest::test_suite("gpu") * doctest::skip(!::qnn::testing::gpu_usable()))
#define GPU_SCALE_TEST_CASE(name) \
  TEST_CASE(name * doctest::test_suite("gpu") * \
            doctest::skip(!::qnn::testing::gpu_usable() || ::qnn::testing::emulated_gpu()))
