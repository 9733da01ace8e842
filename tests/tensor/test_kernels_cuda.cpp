// Parity of the small CUDA kernels with their CPU twins: element-wise ops and the sum
// (tensor/elementwise.cu), softmax cross-entropy (tensor/softmax_xent.cu), pooling
// (tensor/pool.cu) and the option-A shortcut (tensor/shortcut.cu). Each runs the op on the CPU
// and on the GPU from the same seeded inputs. Where the twins perform the same float operations
// in the same order the results must be equal bit for bit and the test checks exact equality;
// elsewhere the tolerance is explained at the check. Pooling and the shortcut also run on
// channels-last GPU images (tensor/tensor.h), whose results must be the same bits, channels-last.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "tensor/elementwise.h"
#include "tensor/pool.h"
#include "tensor/shortcut.h"
#include "tensor/softmax_xent.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::closeness;
using qnn::testing::gpu;

namespace {

// Exact equality of a GPU result with the CPU's, shape included.
void check_identical(const Tensor& on_gpu, const Tensor& on_cpu) {
  REQUIRE(on_gpu.is_cuda());
  REQUIRE(!on_cpu.is_cuda());
  CHECK(on_gpu.shape() == on_cpu.shape());
  const std::vector<float> a = on_gpu.to_vector(), b = on_cpu.to_vector();
  REQUIRE(a.size() == b.size());
  int64_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) ++differing;
  CHECK(differing == 0);
}

// t on the GPU, channels-last if asked.
Tensor gpu_in(const Tensor& t, bool channels_last) { return channels_last ? gpu(t).channels_last() : gpu(t); }

// check_identical, and the GPU result in the format asked.
void check_identical_in(const Tensor& on_gpu, const Tensor& on_cpu, bool channels_last) {
  CHECK(on_gpu.is_channels_last() == channels_last);
  check_identical(on_gpu, on_cpu);
}

// Values with many exact ties (multiples of 1/2 in [-2, 2]): max pooling then has to pick the
// first of several equal maxima, as the CPU does.
Tensor tied_values(const Shape& shape, uint64_t seed) {
  std::vector<float> v = Tensor::uniform(shape, -2.0f, 2.0f, seed).to_vector();
  for (float& x : v) x = std::round(x * 2.0f) / 2.0f;
  return Tensor::from_vector(v, shape);
}

}  // namespace

// Each element-wise kernel performs one float operation per element (add_relu: an add, then a
// comparison), the CPU's operation: results are identical.
GPU_TEST_CASE("cuda kernels: element-wise ops equal the CPU bit for bit") {
  const Shape shape{3, 5, 17, 19};  // not a multiple of the block size
  std::vector<float> with_nan = Tensor::normal(shape, 0.0f, 1.0f, 1).to_vector();
  with_nan[7] = with_nan[100] = std::nanf("");  // relu and add_relu keep NaN on both sides
  const Tensor a = Tensor::from_vector(with_nan, shape), b = Tensor::normal(shape, 0.5f, 2.0f, 2);
  const Tensor ga = gpu(a), gb = gpu(b);
  check_identical(add(ga, gb), add(a, b));
  check_identical(sub(ga, gb), sub(a, b));
  check_identical(mul(ga, gb), mul(a, b));
  check_identical(scale(ga, -0.37f), scale(a, -0.37f));
  check_identical(relu(ga), relu(a));
  check_identical(add_relu(ga, gb), add_relu(a, b));
  const Tensor y = relu(a);
  check_identical(relu_backward(gb, gpu(y)), relu_backward(b, y));
  Tensor dst = a.clone(), gdst = ga.clone();
  add_into(dst, b);
  add_into(gdst, gb);
  check_identical(gdst, dst);
  add_scalar(dst, 0.731f);
  add_scalar(gdst, 0.731f);
  check_identical(gdst, dst);
}

GPU_TEST_CASE("cuda kernels: sum_all equals the CPU") {
  // Uniform values in [-1, 1] are multiples of 2^-23 (low + 2u with u a multiple of 2^-24), so a
  // double sum of a million of them is exact in any order: the CPU's vector lanes and the GPU's
  // tree must then agree exactly.
  const Tensor u = Tensor::uniform({1 << 20}, -1.0f, 1.0f, 3);
  CHECK(sum_all(gpu(u)) == sum_all(u));
  // Normal values do not sum exactly; the orders differ (CPU: vector lanes per 16384-element
  // block; GPU: a 256-way tree per block), each rounding in double: ~1e-16 relative per add.
  const Tensor x = Tensor::normal({1000003}, 0.3f, 1.0f, 4);
  const double cpu = sum_all(x), on_gpu = sum_all(gpu(x));
  CHECK(std::fabs(on_gpu - cpu) <= 1e-12 * (std::fabs(cpu) + 1000.0));
  CHECK(sum_all(gpu(Tensor::zeros({5}))) == 0.0);
}

GPU_TEST_CASE("cuda kernels: softmax cross-entropy matches the CPU") {
  const int64_t n = 300, classes = 10;  // more rows than the forward kernel's 256 threads
  const Tensor z = Tensor::normal({n, classes}, 0.0f, 3.0f, 5);
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7) % classes);
  const Tensor labels = label_tensor(t);
  Tensor lse, glse;
  const Tensor loss = cross_entropy_forward(z, labels, lse);
  const Tensor gloss = cross_entropy_forward(gpu(z), gpu(labels), glse);
  // Row log-sum-exps are computed in double on both sides; the GPU's exp/log (1 ulp in double)
  // may differ from glibc's in the last double bit, which survives rounding to float only at a
  // rounding boundary: allow 2 float ulps. The mean adds rows in a different order (a tree on
  // the GPU), again in double.
  // The tiny atol covers a log-sum-exp near 0, where a relative bound means nothing.
  CHECK(closeness(glse, lse, 1e-7, 2.5e-7) <= 1);
  CHECK(closeness(gloss, loss, 1e-7, 2.5e-7) <= 1);
  const Tensor dloss = Tensor::full({1}, 1.5f);
  const Tensor dz = cross_entropy_backward(dloss, z, labels, lse);
  const Tensor gdz = cross_entropy_backward(gpu(dloss), gpu(z), gpu(labels), glse);
  // dz = g * exp(z - lse) - g [label]: CUDA's expf is within 2 ulp (glibc's within 1), and lse may
  // differ by an ulp (times |z - lse| <= ~30 here): a few 1e-6 relative to g = 1.5 / 300.
  CHECK(closeness(gdz, dz, 1e-5 * 1.5 / n, 1e-5) <= 1);
}

GPU_TEST_CASE("cuda kernels: max pooling equals the CPU bit for bit, ties included") {
  struct Case {
    Shape shape;
    PoolParams p;
  };
  // Overlapping windows with padding (a pixel can win several windows: the backward pass adds
  // their gradients in the CPU's order), plain 2x2, and windows that leave a ragged edge.
  for (const Case& c : {Case{{2, 3, 9, 11}, {3, 2, 1}}, Case{{4, 5, 8, 8}, {2, 2, 0}}, Case{{1, 2, 7, 10}, {3, 3, 0}},
                        Case{{2, 2, 6, 5}, {3, 1, 1}}}) {
    CAPTURE(c.p.kernel);
    CAPTURE(c.p.stride);
    CAPTURE(c.p.padding);
    const Tensor x = tied_values(c.shape, 6);
    const Tensor y = max_pool2d_forward(x, c.p);
    const Tensor dy = Tensor::normal(y.shape(), 0.0f, 1.0f, 7);
    const Tensor dx = max_pool2d_backward(dy, x, c.p);
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      check_identical_in(max_pool2d_forward(gpu_in(x, cl), c.p), y, cl);
      check_identical_in(max_pool2d_backward(gpu_in(dy, cl), gpu_in(x, cl), c.p), dx, cl);
    }
  }
}

// Both sides run plane_sum (tensor/pool.h), the same double additions in the same order, then
// the same division; the backward is one division per element.
GPU_TEST_CASE("cuda kernels: global average pooling equals the CPU bit for bit") {
  for (const Shape& shape : {Shape{8, 16, 8, 8}, Shape{3, 5, 7, 9}, Shape{2, 3, 1, 3}}) {
    CAPTURE(shape_str(shape));
    const Tensor x = Tensor::normal(shape, 0.2f, 1.5f, 8);
    const Tensor dy = Tensor::normal({shape[0], shape[1]}, 0.0f, 1.0f, 9);
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      check_identical(global_avg_pool_forward(gpu_in(x, cl)), global_avg_pool_forward(x));
      const MemoryFormat format = cl ? MemoryFormat::channels_last : MemoryFormat::contiguous;
      check_identical_in(global_avg_pool_backward(gpu(dy), shape, format), global_avg_pool_backward(dy, shape), cl);
    }
  }
}

// Copies and zeros only.
GPU_TEST_CASE("cuda kernels: option-A shortcut equals the CPU bit for bit") {
  struct Case {
    Shape shape;
    int64_t out_channels;
    int stride;
  };
  for (const Case& c : {Case{{4, 16, 32, 32}, 32, 2}, Case{{2, 3, 7, 9}, 8, 2}, Case{{2, 4, 5, 5}, 4, 1},
                        Case{{1, 2, 10, 7}, 5, 3}}) {
    CAPTURE(shape_str(c.shape));
    const Tensor x = Tensor::normal(c.shape, 0.0f, 1.0f, 10);
    const Tensor y = shortcut_pad_forward(x, c.out_channels, c.stride);
    const Tensor dy = Tensor::normal(y.shape(), 0.0f, 1.0f, 11);
    const Tensor dx = shortcut_pad_backward(dy, c.shape, c.stride);
    for (bool cl : {false, true}) {
      CAPTURE(cl);
      check_identical_in(shortcut_pad_forward(gpu_in(x, cl), c.out_channels, c.stride), y, cl);
      check_identical_in(shortcut_pad_backward(gpu_in(dy, cl), c.shape, c.stride), dx, cl);
    }
  }
}
