// Properties of affine fake quantization that hold for any input (qat/fake_quantize.h): outputs on
// the grid (k - z) s, idempotence, saturation at the ends with a zero gradient there, the
// straight-through gradient inside, per-channel independence, NaN and infinities, hand-derived
// known answers (D1 and D2 of docs/quantizer-tests.md), and the errors for bad arguments.
#include <cmath>
#include <limits>

#include "qat/fake_quantize.h"
#include "qat/functions.h"
#include "qat/observer_kernels.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

struct Setting {
  QuantRange range;
  float scale, zero_point;
};

const Setting kSettings[] = {{{0, 255}, 0.02f, 128}, {{-128, 127}, 0.0137f, 0},  {{0, 15}, 0.3f, 5},
                             {{-8, 7}, 0.11f, -2},   {{0, 3}, 0.7f, 0},          {{-2, 1}, 0.25f, 1}};

Tensor spread(const Setting& s, int64_t n, uint64_t seed) {  // covers the range and beyond
  const float lo = (s.range.qmin - s.zero_point - 4) * s.scale, hi = (s.range.qmax - s.zero_point + 4) * s.scale;
  return Tensor::uniform({n}, lo, hi, seed);
}

}  // namespace

TEST_CASE("fake quantization: outputs lie on the grid (k - z) s with k in [qmin, qmax], and are idempotent") {
  for (const Setting& s : kSettings) {
    CAPTURE(s.range.qmin);
    CAPTURE(s.range.qmax);
    const Tensor scale = vec({s.scale}), zp = vec({s.zero_point});
    const Tensor x = spread(s, 2000, 1);
    const Tensor y = fake_quantize_forward(x, scale, zp, s.range, Granularity::PerTensor);
    int off_grid = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float k = std::nearbyint(y.data()[i] / s.scale) + s.zero_point;
      off_grid += !(k >= s.range.qmin && k <= s.range.qmax && y.data()[i] == (k - s.zero_point) * s.scale);
    }
    CHECK(off_grid == 0);
    CHECK_EQUAL_TENSORS(fake_quantize_forward(y, scale, zp, s.range, Granularity::PerTensor), y, "f(f(x)) = f(x)");
  }
}

TEST_CASE("fake quantization: values beyond the range saturate and get no gradient; inside it the gradient passes") {
  for (const Setting& s : kSettings) {
    CAPTURE(s.range.qmin);
    const Tensor scale = vec({s.scale}), zp = vec({s.zero_point});
    const float top = (s.range.qmax - s.zero_point) * s.scale, bottom = (s.range.qmin - s.zero_point) * s.scale;
    const Tensor x = vec({top + 10 * s.scale, bottom - 10 * s.scale, top, bottom, 0.0f});
    CHECK(fake_quantize_forward(x, scale, zp, s.range, Granularity::PerTensor).to_vector() ==
          std::vector<float>{top, bottom, top, bottom, 0.0f});
    const Tensor dx = fake_quantize_backward(vec({1, 2, 3, 4, 5}), x, scale, zp, s.range, Granularity::PerTensor);
    CHECK(dx.to_vector() == std::vector<float>{0, 0, 3, 4, 5});
  }
}

TEST_CASE("fake quantization: ties round half to even, and the gradient mask follows the rounded integer") {
  // scale 1, zero point 0, range [-8, 7]: 6.5 -> 6 (inside), 7.5 -> 8 (outside: y = 7, no
  // gradient), -8.5 -> -8 (inside: gradient passes), 2.5 -> 2, -0.5 -> -0.
  const QuantRange r{-8, 7};
  const Tensor x = vec({6.5f, 7.5f, -8.5f, 2.5f, -0.5f, 3.5f});
  const Tensor y = fake_quantize_forward(x, vec({1}), vec({0}), r, Granularity::PerTensor);
  CHECK(y.to_vector() == std::vector<float>{6, 7, -8, 2, 0, 4});
  const Tensor dx = fake_quantize_backward(vec({1, 1, 1, 1, 1, 1}), x, vec({1}), vec({0}), r, Granularity::PerTensor);
  CHECK(dx.to_vector() == std::vector<float>{1, 0, 1, 1, 1, 1});
}

TEST_CASE("fake quantization: the known answers D1 (asymmetric) and D2 (symmetric, full range)") {
  // D1: 8-bit asymmetric over [-1, 3]: scale 4/255, zero point 64; [-1, 0, 3, 0.5] -> q = [0, 64,
  // 255, 96] and 0 is exact.
  const QParams d1 = qparams_from_range(vec({-1}), vec({3}), {0, 255}, false, 1e-7f);
  CHECK(d1.scale.item() == 4.0f / 255.0f);
  CHECK(d1.zero_point.item() == 64.0f);
  const Tensor y1 = fake_quantize_forward(vec({-1, 0, 3, 0.5f}), d1.scale, d1.zero_point, {0, 255},
                                          Granularity::PerTensor);
  const float s1 = d1.scale.item();
  CHECK(y1.to_vector() == std::vector<float>{(0 - 64) * s1, 0.0f, (255 - 64) * s1, (96 - 64) * s1});
  // D2: symmetric over max|x| = 1, range [-128, 127]: scale 1/127.5; [-1, -.5, .3, 1]. In exact
  // arithmetic q = [-128, -64, 38, 127] (-127.5 rounds to even, 127.5 rounds up and clamps). In
  // float the scale is fl(1/127.5) and its reciprocal fl(1/fl(1/127.5)) = 127.49999, so -1 maps to
  // -127.49999 -> -127, as PyTorch's fake_quantize_per_tensor_affine gives too (checked with
  // PyTorch 1.13: [-127, -64, 38, 127]).
  const QParams d2 = qparams_from_range(vec({-1}), vec({1}), {-128, 127}, true, 1e-7f);
  CHECK(d2.scale.item() == 1.0f / 127.5f);
  CHECK(d2.zero_point.item() == 0.0f);
  const float s2 = d2.scale.item();
  CHECK(1.0f / s2 == 127.49999f);
  const Tensor y2 = fake_quantize_forward(vec({-1, -0.5f, 0.3f, 1}), d2.scale, d2.zero_point, {-128, 127},
                                          Granularity::PerTensor);
  CHECK(y2.to_vector() == std::vector<float>{-127 * s2, -64 * s2, 38 * s2, 127 * s2});
  // With a scale whose reciprocal is exact (0.5: range [-64, 63.5]), the tie at -128 rounds to even.
  const Tensor y3 = fake_quantize_forward(vec({-64, -63.75f, 63.75f}), vec({0.5f}), vec({0}), {-128, 127},
                                          Granularity::PerTensor);
  CHECK(y3.to_vector() == std::vector<float>{-64, -64, 63.5f});
}

TEST_CASE("fake quantization per channel: each channel is the per-tensor op with its own qparams") {
  const Shape shape{4, 3, 5};
  const float scales[] = {0.05f, 0.3f, 0.0071f, 1.0f}, zps[] = {0, -3, 7, 2};
  const QuantRange r{-8, 7};
  const Tensor x = Tensor::uniform(shape, -3, 3, 7), dy = Tensor::normal(shape, 0, 1, 8);
  const Tensor s = vec({scales[0], scales[1], scales[2], scales[3]}), z = vec({zps[0], zps[1], zps[2], zps[3]});
  const Tensor y = fake_quantize_forward(x, s, z, r, Granularity::PerChannel);
  const Tensor dx = fake_quantize_backward(dy, x, s, z, r, Granularity::PerChannel);
  for (int64_t c = 0; c < 4; ++c) {
    CAPTURE(c);
    const Tensor xc = x.slice(c * 15, {15}), dyc = dy.slice(c * 15, {15});
    const Tensor sc = vec({scales[c]}), zc = vec({zps[c]});
    CHECK_EQUAL_TENSORS(y.slice(c * 15, {15}), fake_quantize_forward(xc, sc, zc, r, Granularity::PerTensor), "y");
    CHECK_EQUAL_TENSORS(dx.slice(c * 15, {15}), fake_quantize_backward(dyc, xc, sc, zc, r, Granularity::PerTensor),
                        "dx");
  }
  // Changing channel 1's data and qparams leaves the other channels' outputs unchanged.
  Tensor x2 = x.clone(), s2 = s.clone(), z2 = z.clone();
  for (int64_t i = 15; i < 30; ++i) x2.data()[i] *= -4.0f;
  s2.data()[1] = 0.9f;
  z2.data()[1] = 0;
  const Tensor y2 = fake_quantize_forward(x2, s2, z2, r, Granularity::PerChannel);
  for (int64_t c : {0, 2, 3}) CHECK_EQUAL_TENSORS(y2.slice(c * 15, {15}), y.slice(c * 15, {15}), "other channel");
}

TEST_CASE("fake quantization: NaN stays NaN with no gradient; infinities saturate") {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor x = vec({std::nanf(""), inf, -inf});
  const std::vector<float> y = fake_quantize_forward(x, vec({0.5f}), vec({1}), {0, 15}, Granularity::PerTensor).to_vector();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == (15 - 1) * 0.5f);
  CHECK(y[2] == (0 - 1) * 0.5f);
  CHECK(fake_quantize_backward(vec({1, 1, 1}), x, vec({0.5f}), vec({1}), {0, 15}, Granularity::PerTensor).to_vector() ==
        std::vector<float>{0, 0, 0});
}

TEST_CASE("fake quantization (autograd): the kernel's value, and the straight-through gradient into x") {
  const Setting s = kSettings[3];
  const Tensor x = spread(s, 40, 3), dy = Tensor::normal({40}, 0, 1, 4);
  Variable v(x.clone(), true);
  Variable y = fake_quantize(v, vec({s.scale}), vec({s.zero_point}), s.range, Granularity::PerTensor);
  CHECK_EQUAL_TENSORS(y.value(), fake_quantize_forward(x, vec({s.scale}), vec({s.zero_point}), s.range, Granularity::PerTensor), "y");
  y.backward(dy);
  CHECK_EQUAL_TENSORS(v.grad(),
                      fake_quantize_backward(dy, x, vec({s.scale}), vec({s.zero_point}), s.range, Granularity::PerTensor),
                      "dx");
}

TEST_CASE("fake quantization: bad arguments are errors naming what was expected and found") {
  const Tensor x = Tensor::uniform({3, 4}, -1, 1, 5);
  const Granularity pt = Granularity::PerTensor, pc = Granularity::PerChannel;
  CHECK_THROWS_WITH_AS(quant_range(1, true), "[quant_range] bits must be 2 to 8, found 1", Error);
  CHECK_THROWS_WITH_AS(quant_range(9, false), "[quant_range] bits must be 2 to 8, found 9", Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({0}), vec({0}), {0, 15}, pt),
                       "[fake_quantize] scale must be finite and positive, found 0", Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({1, -1, 1}), vec({0, 0, 0}), {0, 15}, pc),
                       "[fake_quantize] scale must be finite and positive, found -1 in channel 1", Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({std::nanf("")}), vec({0}), {0, 15}, pt),
                       doctest::Contains("scale must be finite and positive, found nan"), Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({1, 1}), vec({0, 0}), {0, 15}, pc),
                       "[fake_quantize] per channel quantization of [3, 4] needs 3 scale(s) and zero point(s), found "
                       "scale [2] and zero point [2]",
                       Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({1}), vec({0}), {1, 15}, pt),
                       "[fake_quantize] the quantization range must contain 0 (qmin <= 0 <= qmax), found [1, 15]", Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(x, vec({1}), vec({0}), {0, 511}, pt),
                       doctest::Contains("must hold 3 to 256 levels (2 to 8 bits), found [0, 511] with 512"), Error);
  CHECK_THROWS_WITH_AS(fake_quantize_forward(Tensor::zeros({}), vec({1}), vec({0}), {0, 15}, pc),
                       doctest::Contains("per-channel quantization needs channels along axis 0"), Error);
  CHECK_THROWS_WITH_AS(fake_quantize_backward(Tensor::zeros({4, 3}), x, vec({1}), vec({0}), {0, 15}, pt),
                       "[fake_quantize_backward] the output gradient must match the input: input [3, 4] on cpu, "
                       "gradient [4, 3] on cpu",
                       Error);
  CHECK_THROWS_WITH_AS(fake_quantize(Variable(x), vec({1}), vec({2.5f}), {0, 15}, pt),
                       "[fake_quantize] zero points must be whole numbers in [0, 15], found 2.5", Error);
  CHECK_THROWS_WITH_AS(fake_quantize(Variable(x), vec({1}), vec({16}), {0, 15}, pt),
                       "[fake_quantize] zero points must be whole numbers in [0, 15], found 16", Error);
  CHECK_THROWS_WITH_AS(fake_quantize_learnable_backward(x, x, vec({1}), vec({0}), {0, 15}, pt, std::nanf("")),
                       doctest::Contains("grad_factor must be finite"), Error);
}
