// bf16 images through the CUDA convolution (tensor/conv.cu, docs/bf16.md): forward, backward data
// (plain and adding into dx) and backward weight on bf16 x and dy, with the float32 weight rounded
// to bf16 for each call and the weight gradient added into a float32 dw, through cuDNN and
// through the im2col path, NCHW and channels-last.
//
// What must hold: every bf16 result is the float convolution of the bf16-rounded operands
// (computed on the CPU), rounded once to bf16, so it lies within half a bf16 unit in the last
// place of that reference, plus the float summation error of the reference (L + 2 units of 2^-24
// of it: every term is positive here). The operands are chosen 0.45 of a bf16 unit above a bf16
// value, so a convolution that forgot to round x, w or dy is off by 0.2% to 0.7%, coherently, and
// breaks that bound; the test checks that it would.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/elementwise.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::gpu;

namespace {

struct Backend {
  Backend(bool cudnn, bool deterministic) : saved(backend_options()) {
    backend_options().cudnn = cudnn;
    backend_options().deterministic = deterministic;
  }
  ~Backend() { backend_options() = saved; }
  BackendOptions saved;
};

// Positive values 0.45 of a bf16 ulp above a bf16 value: rounding them moves each down by 0.18%
// to 0.35%.
Tensor off_grid(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::uniform(shape, 0.25f, 1.0f, seed);
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float v = round_to_bf16(p[i]);
    int e = 0;
    std::frexp(v, &e);  // v = m 2^e, m in [0.5, 1): a bf16 ulp is 2^(e - 8)
    p[i] = v + 0.45f * std::ldexp(1.0f, e - 8);
  }
  return t;
}

// How many of `got`'s values lie farther from `ref` than half a bf16 ulp of ref plus `terms` + 2
// float units of it (the reference's own summation error: its terms are all positive).
int outside_bf16_rounding(const Tensor& got, const Tensor& ref, int64_t terms) {
  const std::vector<float> g = got.to_vector(), r = ref.to_vector();
  REQUIRE(g.size() == r.size());
  int outside = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    int e = 0;
    std::frexp(r[i], &e);
    const double bound = std::ldexp(1.0, e - 9) + double(terms + 2) * std::ldexp(std::fabs(double(r[i])), -24);
    outside += !(std::fabs(double(g[i]) - r[i]) <= bound);
  }
  return outside;
}

// Whether a float tensor's values are all exactly bf16 values.
bool all_bf16(const Tensor& t) {
  for (float v : t.to_vector())
    if (round_to_bf16(v) != v) return false;
  return true;
}

struct Case {
  Shape x, w;
  ConvParams p;
};

void check_case(const Case& c, bool channels_last, bool cudnn, bool deterministic) {
  CAPTURE(shape_str(c.x));
  CAPTURE(shape_str(c.w));
  CAPTURE(c.p.stride);
  CAPTURE(channels_last);
  CAPTURE(cudnn);
  CAPTURE(deterministic);
  const Backend backend(cudnn, deterministic);
  const testing::NoTF32 no_tf32;
  const Tensor x = off_grid(c.x, 1), w = off_grid(c.w, 2);
  const Tensor xr = round_to_bf16(x), wr = round_to_bf16(w);
  auto images = [&](const Tensor& t) {
    Tensor b = gpu(t).to_dtype(DType::bf16);
    return channels_last ? b.channels_last() : b;
  };
  const int64_t taps = c.w[1] * c.w[2] * c.w[3];

  // Forward.
  const Tensor y = conv2d_forward(images(x), gpu(w), Tensor(), c.p);
  CHECK(y.is_bf16());
  CHECK(y.is_channels_last() == channels_last);
  const Tensor y_ref = conv2d_forward(xr, wr, Tensor(), c.p);
  CHECK(outside_bf16_rounding(y, y_ref, taps) == 0);
  CHECK(outside_bf16_rounding(round_to_bf16(conv2d_forward(xr, w, Tensor(), c.p)), y_ref, taps) > 0);
  CHECK(outside_bf16_rounding(round_to_bf16(conv2d_forward(x, wr, Tensor(), c.p)), y_ref, taps) > 0);

  // Backward data, plain and adding into a bf16 dx.
  const Tensor dy = off_grid(y_ref.shape(), 3), dyr = round_to_bf16(dy);
  const int64_t back_taps = c.w[0] * c.w[2] * c.w[3];
  const Tensor dx = conv2d_backward_data(images(dy), gpu(w), c.x, c.p);
  CHECK(dx.is_bf16());
  CHECK(dx.is_channels_last() == channels_last);
  const Tensor dx_ref = conv2d_backward_data(dyr, wr, c.x, c.p);
  CHECK(outside_bf16_rounding(dx, dx_ref, back_taps) == 0);
  CHECK(outside_bf16_rounding(round_to_bf16(conv2d_backward_data(dy, wr, c.x, c.p)), dx_ref, back_taps) > 0);

  const Tensor dx0 = off_grid(c.x, 4);
  Tensor dx_sum = images(dx0);
  conv2d_backward_data_add(images(dy), gpu(w), dx_sum, c.p);
  CHECK(dx_sum.is_bf16());
  Tensor dx_sum_ref = round_to_bf16(dx0);
  add_into(dx_sum_ref, dx_ref);
  CHECK(outside_bf16_rounding(dx_sum, dx_sum_ref, back_taps + 1) == 0);

  // Backward weight into a float32 dw holding earlier sums.
  const Tensor dw0 = Tensor::uniform(c.w, 0.5f, 1.0f, 5);
  Tensor dw = gpu(dw0), no_bias;
  conv2d_backward_weight(images(x), images(dy), dw, no_bias, c.p);
  CHECK(!dw.is_bf16());
  Tensor dw_sum(c.w);
  dw_sum.zero();
  conv2d_backward_weight(xr, dyr, dw_sum, no_bias, c.p);
  const int64_t pixels = y_ref.size(0) * y_ref.size(2) * y_ref.size(3);
  Tensor added = dw.to(Device::CPU);  // dw - dw0: the gradient this call added
  float* a = added.data();
  const float* d0 = dw0.data();
  for (int64_t i = 0; i < added.numel(); ++i) a[i] -= d0[i];
  // dw0 + s is rounded to float, and s itself was a bf16 value (cuDNN) or a float sum (im2col):
  // within half a bf16 ulp of the sum, plus the float rounding of the addition.
  CHECK(outside_bf16_rounding(added, dw_sum, pixels + 4) == 0);
  Tensor dw_unrounded(c.w);
  dw_unrounded.zero();
  conv2d_backward_weight(x, dy, dw_unrounded, no_bias, c.p);
  CHECK(outside_bf16_rounding(dw_unrounded, dw_sum, pixels + 4) > 0);
}

}  // namespace

GPU_TEST_CASE("conv bf16 cuda: forward and both backward passes match the CPU on bf16 operands") {
  const Case cases[] = {
      {{2, 16, 8, 8}, {16, 16, 3, 3}, {1, 1}},  // ResNet-20's 3x3 layers
      {{2, 16, 8, 8}, {32, 16, 3, 3}, {2, 1}},  // its strided layers
      {{3, 3, 7, 5}, {8, 3, 3, 3}, {1, 1}},     // the RGB stem, odd sizes
      {{2, 8, 6, 6}, {4, 8, 1, 1}, {2, 0}},     // a 1x1 projection
  };
  for (const Case& c : cases)
    for (bool channels_last : {false, true}) {
      check_case(c, channels_last, true, false);
      check_case(c, channels_last, true, true);
      check_case(c, channels_last, false, false);
    }
}

GPU_TEST_CASE("conv bf16 cuda: the weight stays float32, its bf16 copy is made per call") {
  const Tensor x = gpu(off_grid({1, 2, 4, 4}, 6)).to_dtype(DType::bf16);
  const Tensor w = gpu(off_grid({2, 2, 3, 3}, 7));
  const std::vector<float> before = w.to_vector();
  const Tensor y = conv2d_forward(x, w, Tensor(), {1, 1});
  CHECK(!w.is_bf16());
  CHECK(w.to_vector() == before);
  CHECK(!all_bf16(w.to(Device::CPU)));
  CHECK(all_bf16(y.to_dtype(DType::f32).to(Device::CPU)));
}

GPU_TEST_CASE("conv bf16 cuda: a bias, a bf16 weight gradient and mixed types are refused") {
  const Tensor x = gpu(off_grid({1, 2, 4, 4}, 8)).to_dtype(DType::bf16);
  const Tensor w = gpu(off_grid({2, 2, 3, 3}, 9));
  const Tensor bias = gpu(Tensor::zeros({2}));
  CHECK_THROWS_WITH_AS(conv2d_forward(x, w, bias, {1, 1}),
                       doctest::Contains("a bias takes float32 images, got bf16"), Error);
  const Tensor dy = conv2d_forward(x, w, Tensor(), {1, 1});
  Tensor dw_bf16 = gpu(Tensor::zeros({2, 2, 3, 3})).to_dtype(DType::bf16), no_bias;
  CHECK_THROWS_WITH_AS(conv2d_backward_weight(x, dy, dw_bf16, no_bias, {1, 1}),
                       doctest::Contains("accumulates in float32"), Error);
  Tensor dw = gpu(Tensor::zeros({2, 2, 3, 3}));
  CHECK_THROWS_WITH_AS(conv2d_backward_weight(x, dy.to_dtype(DType::f32), dw, no_bias, {1, 1}),
                       doctest::Contains("x is bfloat16 but the output gradient is float32"), Error);
  Tensor dx = gpu(Tensor::zeros({1, 2, 4, 4}));
  CHECK_THROWS_WITH_AS(conv2d_backward_data_add(dy, w, dx, {1, 1}),
                       doctest::Contains("the output gradient is bfloat16 but dx is float32"), Error);
}
