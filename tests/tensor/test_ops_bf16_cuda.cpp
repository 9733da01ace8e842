// The small CUDA ops on bf16 activations (docs/bf16.md): max pooling, global average pooling
// (tensor/pool.cu), the option-A shortcut (tensor/shortcut.cu), the batch gather
// (data/device_data.cu) and add_into (tensor/elementwise.cu), in NCHW and channels-last.
// Each takes float inputs made on the CPU and rounded to bf16 on the GPU, and is compared with
// the CPU's float op on the same rounded values: a bf16 result must be that result rounded to
// bf16, bit for bit (round_to_bf16, tensor/bf16.h), since the GPU computes in float and rounds
// once; average pooling's float result must equal the CPU's exactly (plane_sum on the same
// values in the same order). Where a comparison could pass without any rounding, the test also
// checks that the inputs or results were not already bf16 values, so it fails if a rounding is
// skipped. Ops without a bf16 version, and mixed element types, must be refused by name.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "autograd/functions.h"
#include "data/device_data.h"
#include "tensor/bf16.h"
#include "tensor/elementwise.h"
#include "tensor/pool.h"
#include "tensor/shortcut.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::gpu;

namespace {

// x on the GPU rounded to bf16, channels-last if asked (the conversion keeps the format).
Tensor gpu_bf16(const Tensor& x, bool channels_last) {
  const Tensor b = gpu(x).to_dtype(DType::bf16);
  return channels_last ? b.channels_last() : b;
}

// How many elements of a CPU float tensor are not bf16 values (rounding would change them).
int64_t not_bf16(const Tensor& t) {
  int64_t count = 0;
  for (float v : t.to_vector()) count += float_bits(round_to_bf16(v)) != float_bits(v);
  return count;
}

// The GPU result is bf16 in the format asked, and each element's bits are those of the CPU
// float result rounded to bf16.
void check_rounded(const Tensor& on_gpu, const Tensor& on_cpu, bool channels_last) {
  REQUIRE(on_gpu.is_cuda());
  CHECK(on_gpu.is_bf16());
  CHECK(on_gpu.is_channels_last() == channels_last);
  CHECK(on_gpu.shape() == on_cpu.shape());
  const std::vector<float> a = on_gpu.to_vector(), b = on_cpu.to_vector();
  REQUIRE(a.size() == b.size());
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += float_bits(a[i]) != float_bits(round_to_bf16(b[i]));
  CHECK(differing == 0);
}

// A float result equal to the CPU's bit for bit.
void check_same_floats(const Tensor& on_gpu, const Tensor& on_cpu) {
  REQUIRE(on_gpu.is_cuda());
  CHECK(on_gpu.dtype() == DType::f32);
  CHECK(on_gpu.shape() == on_cpu.shape());
  const std::vector<float> a = on_gpu.to_vector(), b = on_cpu.to_vector();
  REQUIRE(a.size() == b.size());
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += float_bits(a[i]) != float_bits(b[i]);
  CHECK(differing == 0);
}

// Multiples of 1/2 in [-2, 2] plus a perturbation below half a bf16 ulp at those magnitudes:
// the floats have distinct maxima, their bf16 roundings many exact ties, so max pooling picks
// other elements from the rounded values than from the floats.
Tensor near_ties(const Shape& shape, uint64_t seed) {
  std::vector<float> v = Tensor::uniform(shape, -2.0f, 2.0f, seed).to_vector();
  const std::vector<float> e = Tensor::uniform(shape, -1.0f, 1.0f, seed + 1).to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    const float k = std::round(v[i] * 2.0f) / 2.0f;
    v[i] = k + (k == 0.0f ? 0.25f : 1.0f / 1024) * e[i];  // 0: small values of their own
  }
  return Tensor::from_vector(v, shape);
}

}  // namespace

GPU_TEST_CASE("bf16 ops: max pooling selects the CPU's maxima of the rounded values, ties included") {
  struct Case {
    Shape shape;
    PoolParams p;
  };
  // Overlapping windows with padding (a pixel that wins several windows sums their gradients),
  // plain 2x2, a ragged edge, stride 1.
  for (const Case& c : {Case{{2, 3, 9, 11}, {3, 2, 1}}, Case{{3, 5, 8, 8}, {2, 2, 0}}, Case{{1, 2, 7, 10}, {3, 3, 0}},
                        Case{{2, 3, 6, 5}, {3, 1, 1}}}) {
    CAPTURE(shape_str(c.shape));
    CAPTURE(c.p.kernel);
    CAPTURE(c.p.stride);
    const Tensor x = near_ties(c.shape, 21);
    const Tensor xr = round_to_bf16(x);
    const Tensor y = max_pool2d_forward(xr, c.p);
    const Tensor dy = Tensor::normal(y.shape(), 0.0f, 1.0f, 22);
    const Tensor dyr = round_to_bf16(dy);
    const Tensor dx = max_pool2d_backward(dyr, xr, c.p);
    CHECK(max_pool2d_backward(dyr, x, c.p).to_vector() != dx.to_vector());  // the rounding moves maxima
    if (c.p.kernel > c.p.stride) CHECK(not_bf16(dx) > 0);  // sums of two bf16: dx must be rounded
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      check_rounded(max_pool2d_forward(gpu_bf16(x, cl), c.p), y, cl);
      check_rounded(max_pool2d_backward(gpu_bf16(dy, cl), gpu_bf16(x, cl), c.p), dx, cl);
    }
  }
}

GPU_TEST_CASE("bf16 ops: global average pooling sums bf16 planes exactly as the CPU sums their floats") {
  for (const Shape& shape : {Shape{3, 5, 7, 9}, Shape{4, 16, 8, 8}, Shape{2, 3, 1, 3}, Shape{2, 7, 5, 1}}) {
    CAPTURE(shape_str(shape));
    const Tensor x = Tensor::normal(shape, 0.2f, 1.5f, 23);
    const Tensor y = global_avg_pool_forward(round_to_bf16(x));
    // The float x's averages differ: the GPU must have pooled the rounded values.
    CHECK(global_avg_pool_forward(x).to_vector() != y.to_vector());
    const Tensor dy = Tensor::normal({shape[0], shape[1]}, 0.0f, 1.0f, 24);
    const Tensor dx = global_avg_pool_backward(dy, shape);
    if (shape[2] * shape[3] != 1) CHECK(not_bf16(dx) > 0);  // dy / HW is rounded to bf16 on the GPU
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      const Tensor gy = global_avg_pool_forward(gpu_bf16(x, cl));
      CHECK(!gy.is_channels_last());
      check_same_floats(gy, y);
      const MemoryFormat format = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
      check_rounded(global_avg_pool_backward(gpu(dy), shape, format, DType::bf16), dx, cl);
      // The float instantiation is unchanged: float dx, the CPU's bits.
      const Tensor fdx = global_avg_pool_backward(gpu(dy), shape, format);
      CHECK(fdx.dtype() == DType::f32);
      check_same_floats(fdx, dx);
    }
  }
  // The output gradient is float whatever x is; bf16 is a GPU type.
  const Tensor dy_bf16 = gpu_bf16(Tensor::normal({2, 3}, 0.0f, 1.0f, 25), false);
  CHECK_THROWS_WITH_AS(global_avg_pool_backward(dy_bf16, {2, 3, 4, 4}, MemoryFormat::contiguous, DType::bf16),
                       doctest::Contains("expected float32"), Error);
  CHECK_THROWS_WITH_AS(
      global_avg_pool_backward(Tensor::zeros({2, 3}), {2, 3, 4, 4}, MemoryFormat::contiguous, DType::bf16),
      doctest::Contains("bfloat16 is a GPU type"), Error);
}

// Copies and zeros: rounding the copy is copying the rounded values.
GPU_TEST_CASE("bf16 ops: option-A shortcut copies bf16 words in either format") {
  struct Case {
    Shape shape;
    int64_t out_channels;
    int stride;
  };
  for (const Case& c : {Case{{4, 16, 16, 16}, 32, 2}, Case{{2, 3, 7, 9}, 8, 2}, Case{{2, 4, 5, 5}, 4, 1},
                        Case{{1, 2, 10, 7}, 5, 3}}) {
    CAPTURE(shape_str(c.shape));
    const Tensor x = Tensor::normal(c.shape, 0.0f, 1.0f, 26);
    REQUIRE(not_bf16(x) > 0);
    const Tensor y = shortcut_pad_forward(x, c.out_channels, c.stride);
    const Tensor dy = Tensor::normal(y.shape(), 0.0f, 1.0f, 27);
    const Tensor dx = shortcut_pad_backward(dy, c.shape, c.stride);
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      check_rounded(shortcut_pad_forward(gpu_bf16(x, cl), c.out_channels, c.stride), y, cl);
      check_rounded(shortcut_pad_backward(gpu_bf16(dy, cl), c.shape, c.stride), dx, cl);
    }
  }
}

GPU_TEST_CASE("bf16 ops: add_into adds bf16 gradients in float and rounds once") {
  const Shape shape{3, 5, 7, 9};
  const Tensor a = Tensor::normal(shape, 0.0f, 1.0f, 28), b = Tensor::normal(shape, 0.0f, 0.3f, 29);
  const Tensor expected = add(round_to_bf16(a), round_to_bf16(b));  // the float sums of the bf16 values
  REQUIRE(not_bf16(expected) > 0);
  for (bool cl : {false, true}) {
    CAPTURE(cl);
    Tensor dst = gpu_bf16(a, cl);
    add_into(dst, gpu_bf16(b, cl));
    check_rounded(dst, expected, cl);
  }
  // Mixed element types, either way round, and mixed formats are refused.
  Tensor dst = gpu_bf16(a, false), fdst = gpu(a);
  CHECK_THROWS_WITH_AS(add_into(dst, gpu(b)), doctest::Contains("the element types differ"), Error);
  CHECK_THROWS_WITH_AS(add_into(fdst, gpu_bf16(b, false)), doctest::Contains("the element types differ"), Error);
  CHECK_THROWS_WITH_AS(add_into(dst, gpu_bf16(b, true)), doctest::Contains("the memory formats differ"), Error);
  CHECK(fdst.to_vector() == a.to_vector());  // nothing was added
}

GPU_TEST_CASE("bf16 ops: ops without a bf16 version refuse it by name") {
  const Tensor f = gpu(Tensor::normal({2, 3, 4, 5}, 0.0f, 1.0f, 30));
  const Tensor b = f.to_dtype(DType::bf16);
  CHECK_THROWS_WITH_AS(relu(b), doctest::Contains("[relu] the operand is a bfloat16 [2, 3, 4, 5] tensor"), Error);
  CHECK_THROWS_WITH_AS(add(b, b), doctest::Contains("add has no bfloat16 version"), Error);
  CHECK_THROWS_WITH_AS(add_relu(b, b), doctest::Contains("[add_relu]"), Error);
  CHECK_THROWS_WITH_AS(scale(b, 2.0f), doctest::Contains("scale has no bfloat16 version"), Error);
  CHECK_THROWS_WITH_AS(relu_backward(b, b), doctest::Contains("no bfloat16 version"), Error);
  CHECK_THROWS_WITH_AS(sum_all(b), doctest::Contains("[sum_all] x is a bfloat16"), Error);
  Tensor d = b.clone();
  CHECK_THROWS_WITH_AS(add_scalar(d, 1.0f), doctest::Contains("[add_scalar]"), Error);
  CHECK_THROWS_WITH_AS(mul(f, b), doctest::Contains("a is float32 but b is bfloat16"), Error);
  CHECK_THROWS_WITH_AS(sub(b, f), doctest::Contains("a is bfloat16 but b is float32"), Error);
  // Max pooling's gradient and input must agree in type.
  const PoolParams p{2, 2, 0};
  const Tensor dy = gpu(Tensor::normal({2, 3, 2, 2}, 0.0f, 1.0f, 31));
  CHECK_THROWS_WITH_AS(max_pool2d_backward(dy, b, p), doctest::Contains("the same element type"), Error);
}

// The autograd ops on bf16 activations: max pooling and the shortcut return bf16 gradients, the
// average pooling turns the float gradient of its float output into a bf16 one, and where two
// gradients of x meet the engine adds them with add_into.
GPU_TEST_CASE("bf16 ops: autograd pools and shortcuts bf16 activations in their format") {
  const Shape shape{2, 4, 6, 6};
  const Tensor x = Tensor::normal(shape, 0.0f, 1.0f, 32), seed = Tensor::normal({2, 4}, 0.0f, 1.0f, 33);
  const Tensor xr = round_to_bf16(x);
  // Expected, on the CPU: each path's gradient as its bf16 op gives it, then their sum rounded.
  const Tensor g_max = max_pool2d_backward(
      round_to_bf16(global_avg_pool_backward(seed, {2, 4, 3, 3})), xr, {2, 2, 0});
  const Tensor g_pad = shortcut_pad_backward(round_to_bf16(global_avg_pool_backward(seed, {2, 4, 6, 6})), shape, 1);
  const Tensor expected = add(round_to_bf16(g_max), round_to_bf16(g_pad));
  for (bool cl : {false, true}) {
    CAPTURE(cl);
    Variable v(gpu_bf16(x, cl), true);
    const Variable a = global_avg_pool(max_pool2d(v, 2, 2, 0));
    const Variable b = global_avg_pool(shortcut_pad(v, 4, 1));
    CHECK(a.value().dtype() == DType::f32);
    const Variable s = add(a, b);
    s.backward(gpu(seed));
    check_rounded(v.grad(), expected, cl);
  }
}

GPU_TEST_CASE("bf16 ops: the CUDA gather writes the rounded batch into a bf16 tensor") {
  const ImageDataset dataset = qnn::testing::synthetic_dataset(40);
  const DeviceDataset cpu(dataset, Device::CPU), on_gpu(dataset, Device::CUDA);
  const uint64_t seed = 11;
  for (bool augment : {true, false}) {
    CAPTURE(augment);
    const Tensor order = epoch_order(40, seed, 1, true, Device::CPU);
    for (int64_t number : {0, 2}) {  // 16 rows, then the last 8
      CAPTURE(number);
      const int64_t rows = number == 2 ? 8 : 16;
      const Tensor clock = Tensor::from_vector({float(number), 1.0f}, {2});
      Tensor images({rows, 3, 32, 32}), labels({rows});
      gather_batch(cpu, order, clock, 16, augment, seed, 4, cifar10_normalization(), images, labels);
      REQUIRE(not_bf16(images) > 0);  // normalised pixels are not bf16 values
      for (bool cl : {false, true}) {
        CAPTURE(cl);
        Tensor g_images({rows, 3, 32, 32}, Device::CUDA,
                        cl ? MemoryFormat::channels_last : MemoryFormat::contiguous, DType::bf16);
        Tensor g_labels({rows}, Device::CUDA);
        gather_batch(on_gpu, gpu(order), gpu(clock), 16, augment, seed, 4, cifar10_normalization(), g_images,
                     g_labels);
        check_rounded(g_images, images, cl);
        CHECK(g_labels.to_vector() == labels.to_vector());
      }
    }
  }
  // A position past the order still shows up as NaN, in bf16 too.
  Tensor g_images({16, 3, 32, 32}, Device::CUDA, MemoryFormat::contiguous, DType::bf16), g_labels({16}, Device::CUDA);
  const Tensor clock = Tensor::from_vector({3.0f, 1.0f}, {2});
  gather_batch(on_gpu, epoch_order(40, seed, 1, true, Device::CUDA), gpu(clock), 16, true, seed, 4,
               cifar10_normalization(), g_images, g_labels);
  CHECK(std::isnan(g_images.to_vector()[0]));
  CHECK(std::isnan(g_labels.to_vector()[0]));
}
