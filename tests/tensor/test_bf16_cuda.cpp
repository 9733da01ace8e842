// bfloat16 tensors on the GPU (tensor/tensor.h, docs/bf16.md): the conversions both ways give the
// CPU's rounding (tensor/bf16.h) bit for bit, the bits lie in memory as 16-bit words in either
// memory format, copies and fills convert, and float access to a bf16 tensor is refused.
// The ops that take bf16 are checked against their CPU twins in their own CUDA tests.
#include <doctest.h>

#include <cstring>
#include <vector>

#include "tensor/bf16.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::gpu;

namespace {

// The 16-bit words of a bf16 tensor in whatever order they lie in memory.
std::vector<uint16_t> words_of(const Tensor& t) {
  std::vector<uint16_t> out(size_t(t.numel()));
  device_copy(out.data(), Device::CPU, t.raw(), t.device(), out.size() * sizeof(uint16_t));
  return out;
}

// Floats from bit patterns that cover every class: zeros, subnormals, normals with ties and
// near-ties in their low 16 bits, the largest finite values, infinities and NaNs.
std::vector<float> awkward_floats(int count) {
  std::vector<float> v;
  const uint32_t fixed[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x3F808000u, 0x3F818000u,
                            0x3F807FFFu, 0x3F808001u, 0x7F7FFFFFu, 0xFF7F8000u, 0x7F800000u, 0xFF800000u,
                            0x7FC00000u, 0x7F800001u, 0xFFFFFFFFu, 0x00800000u};
  for (uint32_t u : fixed) v.push_back(bits_float(u));
  uint64_t state = 0x9E3779B97F4A7C15ull;
  while (int(v.size()) < count) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v.push_back(bits_float(uint32_t(state >> 32)));
  }
  return v;
}

bool same_bits(float a, float b) { return float_bits(a) == float_bits(b); }

}  // namespace

GPU_TEST_CASE("bf16 cuda: conversion rounds as the CPU does, bit for bit, and back exactly") {
  const std::vector<float> values = awkward_floats(4099);
  const Tensor host = Tensor::from_vector(values, {int64_t(values.size())});
  const Tensor b = gpu(host).to_dtype(DType::bf16);
  CHECK(b.dtype() == DType::bf16);
  CHECK(b.is_cuda());
  CHECK(b.nbytes() == values.size() * 2);
  const std::vector<uint16_t> words = words_of(b);
  const std::vector<float> back = b.to_vector();  // bf16 -> float on the GPU, then read
  int wrong_words = 0, wrong_values = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    wrong_words += words[i] != bf16_bits(values[i]);
    wrong_values += !same_bits(back[i], round_to_bf16(values[i]));
  }
  CHECK(wrong_words == 0);
  CHECK(wrong_values == 0);
  // float -> bf16 -> float -> bf16 changes nothing the second time.
  CHECK(words_of(b.to_dtype(DType::f32).to_dtype(DType::bf16)) == words);
  CHECK(b.to_dtype(DType::bf16).raw() == b.raw());  // already bf16: the same tensor
}

GPU_TEST_CASE("bf16 cuda: channels-last bf16 batches transpose their 16-bit words") {
  const Tensor x = Tensor::normal({3, 5, 4, 6}, 0.0f, 2.0f, 41);
  const Tensor b = gpu(x).to_dtype(DType::bf16).channels_last();
  CHECK(b.is_channels_last());
  CHECK(b.is_bf16());
  const std::vector<uint16_t> words = words_of(b);
  const std::vector<float> v = x.to_vector();
  int wrong = 0;
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t c = 0; c < 5; ++c)
      for (int64_t p = 0; p < 24; ++p)
        wrong += words[size_t((n * 24 + p) * 5 + c)] != bf16_bits(v[size_t((n * 5 + c) * 24 + p)]);
  CHECK(wrong == 0);
  const Tensor back = b.contiguous();
  CHECK(back.is_bf16());
  CHECK(!back.is_channels_last());
  const std::vector<float> r = back.to_vector(), r_cl = b.to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    REQUIRE(same_bits(r[i], round_to_bf16(v[i])));
    REQUIRE(same_bits(r_cl[i], round_to_bf16(v[i])));  // read back row-major from NHWC bf16
  }
  const Tensor f = b.to_dtype(DType::f32);  // the conversion keeps the format
  CHECK(f.is_channels_last());
  CHECK(f.to_vector() == r);
}

GPU_TEST_CASE("bf16 cuda: copies, fills, views and rows keep or convert the type") {
  const Tensor x = Tensor::uniform({4, 3, 2, 2}, -3.0f, 3.0f, 7);
  Tensor b(x.shape(), Device::CUDA, MemoryFormat::contiguous, DType::bf16);
  b.copy_from(x);  // CPU float -> GPU bf16
  const std::vector<float> v = x.to_vector(), r = b.to_vector();
  for (size_t i = 0; i < v.size(); ++i) REQUIRE(same_bits(r[i], round_to_bf16(v[i])));

  Tensor f(x.shape(), Device::CPU);
  f.copy_from(b);  // GPU bf16 -> CPU float
  CHECK(f.to_vector() == r);
  CHECK(b.to(Device::CPU).to_vector() == r);
  CHECK(b.to(Device::CPU).dtype() == DType::f32);

  const Tensor c = b.clone();
  CHECK(c.is_bf16());
  CHECK(c.to_vector() == r);
  CHECK(Tensor::empty_like(b).is_bf16());

  Tensor rows = b.narrow(1, 3);  // 2-byte elements: the window starts 12 words in
  CHECK(rows.to_vector() == std::vector<float>(r.begin() + 12, r.begin() + 36));
  rows.fill(1.1f);
  CHECK(b.to_vector()[12] == round_to_bf16(1.1f));
  CHECK(b.to_vector()[11] == r[11]);
  rows.zero();
  CHECK(b.to_vector()[35] == 0.0f);
  CHECK(b.view({48}).is_bf16());
  CHECK(b.slice(5, {1}).item() == b.to_vector()[5]);  // a window of one 16-bit word
}

GPU_TEST_CASE("bf16 cuda: float access to a bf16 tensor and bf16 on the CPU are refused") {
  Tensor b({2, 3}, Device::CUDA, MemoryFormat::contiguous, DType::bf16);
  CHECK_THROWS_WITH_AS(b.data(), doctest::Contains("bfloat16 [2, 3] tensor was passed where float32"), Error);
  CHECK_THROWS_WITH_AS(Tensor({2}, Device::CPU, MemoryFormat::contiguous, DType::bf16),
                       doctest::Contains("lives on the GPU"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2}).to_dtype(DType::bf16), doctest::Contains("on the CPU"), Error);
}
