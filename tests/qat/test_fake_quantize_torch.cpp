// qnn's affine fake quantization against PyTorch 1.13 (tests/fixtures/fake_quant.safetensors, see
// scripts/make_fake_quant_fixture.py). The per-element arithmetic is PyTorch's, so every output
// and every per-element gradient must be equal exactly:
//   - fake_quantize_per_tensor_affine / _per_channel_affine: y and the STE's dx (pt*, pc*);
//   - _fake_quantize_learnable_per_tensor_affine / _per_channel_affine: y and dx (lpt*, lpc*), and
//     in lpc0 (one element per channel) each dscale and dzero_point entry, a single term.
// The summed scale and zero-point gradients differ in summation only: PyTorch adds the float terms
// in float, qnn in double. PyTorch's float sum of n terms is within (n - 1) 2^-24 sum|t| of the
// exact sum (the worst-case bound of recursive summation), and every term is bounded by
// |dy| B g, with B = max(|qmin - z|, |qmax - z|, 1) for the scale (a term inside the range is
// |dy (x_fq - x)/s| g <= |dy| g / 2) and B = s for the zero point: that bound is the tolerance.
#include <algorithm>
#include <cmath>

#include "qat/fake_quantize.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

const Tensor& get(const std::string& name) { return fake_quant_fixture().get(name); }

int count_cases(const std::string& prefix) {
  int n = 0;
  while (fake_quant_fixture().has(prefix + std::to_string(n) + ".x")) ++n;
  return n;
}

// Bound on the difference between PyTorch's float sum and qnn's double sum of the per-element
// gradient terms of one channel (elements [begin, end) of dy), as explained above.
double sum_tolerance(const Tensor& dy, int64_t begin, int64_t end, double term_bound, double grad_factor) {
  double total = 0;
  for (int64_t i = begin; i < end; ++i) total += std::fabs(double(dy.data()[i]));
  return double(end - begin) * std::ldexp(1.0, -24) * total * term_bound * std::fabs(grad_factor) + 1e-30;
}

}  // namespace

TEST_CASE("fake quantization (straight-through) equals torch.fake_quantize_per_tensor_affine bit for bit") {
  const int cases = count_cases("pt");
  REQUIRE(cases >= 8);
  for (int i = 0; i < cases; ++i) {
    const std::string p = "pt" + std::to_string(i) + ".";
    CAPTURE(p);
    const QuantRange range = fixture_range(get(p + "range"));
    const Tensor y = fake_quantize_forward(get(p + "x"), get(p + "scale"), get(p + "zero_point"), range,
                                           Granularity::PerTensor);
    CHECK_EQUAL_TENSORS(y, get(p + "y"), p + "y");
    const Tensor dx = fake_quantize_backward(get(p + "dy"), get(p + "x"), get(p + "scale"), get(p + "zero_point"),
                                             range, Granularity::PerTensor);
    CHECK_EQUAL_TENSORS(dx, get(p + "dx"), p + "dx");
  }
}

TEST_CASE("fake quantization (straight-through) equals torch.fake_quantize_per_channel_affine bit for bit") {
  const int cases = count_cases("pc");
  REQUIRE(cases >= 3);
  for (int i = 0; i < cases; ++i) {
    const std::string p = "pc" + std::to_string(i) + ".";
    CAPTURE(p);
    const QuantRange range = fixture_range(get(p + "range"));
    const Tensor y = fake_quantize_forward(get(p + "x"), get(p + "scale"), get(p + "zero_point"), range,
                                           Granularity::PerChannel);
    CHECK_EQUAL_TENSORS(y, get(p + "y"), p + "y");
    const Tensor dx = fake_quantize_backward(get(p + "dy"), get(p + "x"), get(p + "scale"), get(p + "zero_point"),
                                             range, Granularity::PerChannel);
    CHECK_EQUAL_TENSORS(dx, get(p + "dx"), p + "dx");
  }
}

TEST_CASE("the fixture holds the inputs that tell PyTorch's arithmetic from the alternatives") {
  // x * (1/s) against x / s in the forward, and fma(x, 1/s, z) against a separate product and sum
  // in the learnable backward: each alternative must round some fixture value differently, or the
  // exact comparisons above could not tell the formulas apart.
  int reciprocal_matters = 0, fma_matters = 0;
  for (int i = 0; i < count_cases("pt"); ++i) {
    const std::string p = "pt" + std::to_string(i) + ".";
    const float s = get(p + "scale").data()[0], inv = 1.0f / s;
    for (float x : get(p + "x").to_vector()) reciprocal_matters += std::nearbyint(x * inv) != std::nearbyint(x / s);
  }
  for (int i = 0; i < count_cases("lpt"); ++i) {
    const std::string p = "lpt" + std::to_string(i) + ".";
    const float s = get(p + "scale").data()[0], inv = 1.0f / s, z = get(p + "zero_point").data()[0];
    for (float x : get(p + "x").to_vector()) {
      volatile float product = x * inv;  // rounded on its own
      fma_matters += std::nearbyint(std::fma(x, inv, z)) != std::nearbyint(z + product);
    }
  }
  CHECK(reciprocal_matters >= 6);
  CHECK(fma_matters >= 6);
}

TEST_CASE("learnable fake quantization equals torch._fake_quantize_learnable_per_tensor_affine") {
  const int cases = count_cases("lpt");
  REQUIRE(cases >= 6);
  for (int i = 0; i < cases; ++i) {
    const std::string p = "lpt" + std::to_string(i) + ".";
    CAPTURE(p);
    const QuantRange range = fixture_range(get(p + "range"));
    const Tensor &x = get(p + "x"), &dy = get(p + "dy"), &scale = get(p + "scale"), &zp = get(p + "zero_point");
    const float gf = get(p + "grad_factor").data()[0];
    CHECK_EQUAL_TENSORS(fake_quantize_forward(x, scale, zp, range, Granularity::PerTensor), get(p + "y"), p + "y");
    const LearnableGradients g = fake_quantize_learnable_backward(dy, x, scale, zp, range, Granularity::PerTensor, gf);
    CHECK_EQUAL_TENSORS(g.dx, get(p + "dx"), p + "dx");
    const float s = scale.data()[0], z = std::trunc(zp.data()[0] + 0.5f);
    const double bound = std::max({std::fabs(range.qmin - z), std::fabs(range.qmax - z), 1.0f});
    CHECK_CLOSE_TENSORS(g.dscale, get(p + "dscale"), sum_tolerance(dy, 0, x.numel(), bound, gf), 0, p + "dscale");
    CHECK_CLOSE_TENSORS(g.dzero_point, get(p + "dzero_point"), sum_tolerance(dy, 0, x.numel(), s, gf), 0,
                        p + "dzero_point");
  }
}

TEST_CASE("learnable fake quantization equals torch._fake_quantize_learnable_per_channel_affine") {
  const int cases = count_cases("lpc");
  REQUIRE(cases >= 3);
  for (int i = 0; i < cases; ++i) {
    const std::string p = "lpc" + std::to_string(i) + ".";
    CAPTURE(p);
    const QuantRange range = fixture_range(get(p + "range"));
    const Tensor &x = get(p + "x"), &dy = get(p + "dy"), &scale = get(p + "scale"), &zp = get(p + "zero_point");
    const float gf = get(p + "grad_factor").data()[0];
    CHECK_EQUAL_TENSORS(fake_quantize_forward(x, scale, zp, range, Granularity::PerChannel), get(p + "y"), p + "y");
    const LearnableGradients g = fake_quantize_learnable_backward(dy, x, scale, zp, range, Granularity::PerChannel, gf);
    CHECK_EQUAL_TENSORS(g.dx, get(p + "dx"), p + "dx");
    const int64_t channels = scale.numel(), inner = x.numel() / channels;
    if (inner == 1) {  // single terms: exact
      CHECK_EQUAL_TENSORS(g.dscale, get(p + "dscale"), p + "dscale (single terms)");
      CHECK_EQUAL_TENSORS(g.dzero_point, get(p + "dzero_point"), p + "dzero_point (single terms)");
      continue;
    }
    for (int64_t c = 0; c < channels; ++c) {
      CAPTURE(c);
      const float s = scale.data()[c], z = std::nearbyint(zp.data()[c]);
      const double bound = std::max({std::fabs(range.qmin - z), std::fabs(range.qmax - z), 1.0f});
      CHECK(std::fabs(double(g.dscale.data()[c]) - get(p + "dscale").data()[c]) <=
            sum_tolerance(dy, c * inner, (c + 1) * inner, bound, gf));
      CHECK(std::fabs(double(g.dzero_point.data()[c]) - get(p + "dzero_point").data()[c]) <=
            sum_tolerance(dy, c * inner, (c + 1) * inner, s, gf));
    }
  }
}

TEST_CASE("the learnable backward's zero point: truncated per tensor, rounded half to even per channel") {
  // PyTorch's own quirk, reproduced: with zero point 2.5 the forward uses 2 but the per-tensor
  // backward uses trunc(2.5 + 0.5) = 3; per channel both use round(2.5) = 2. For x far above the
  // range, dscale = dy (qmax - z) g.
  const QuantRange range{-8, 7};
  const Tensor x = vec({30.0f}), dy = vec({1.0f}), s = vec({1.0f});
  for (const auto& [zp, per_tensor, per_channel] :
       {std::tuple{2.5f, 4.0f, 5.0f}, {-1.7f, 8.0f, 9.0f}, {3.5f, 3.0f, 3.0f}, {-2.5f, 9.0f, 9.0f}}) {
    CAPTURE(zp);
    const Tensor z = vec({zp});
    CHECK(fake_quantize_learnable_backward(dy, x, s, z, range, Granularity::PerTensor, 1.0f).dscale.item() ==
          per_tensor);
    CHECK(fake_quantize_learnable_backward(dy.view({1, 1}), x.view({1, 1}), s, z, range, Granularity::PerChannel, 1.0f)
              .dscale.item() == per_channel);
  }
}
