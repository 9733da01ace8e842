// LSQ: the learnable fake quantizer's step-size gradient against finite differences, a
// hand-derived instance of the paper's eq. 3, the gradient scale, the zero point's optional
// gradient, and LSQ's initial step (qat/lsq.h, qat/functions.h).
//
// What finite differences can check. The forward value y = s clamp(round(x/s) + z, qmin, qmax) - s z
// is piecewise smooth in s: between rounding jumps, an element inside the range moves as
// round(x/s) s, so dy/ds = round(x/s); a clamped one as (qmax - z) s or (qmin - z) s. LSQ's
// gradient is not that derivative: its straight-through estimator differentiates the rounding as
// the identity, which adds -x/s for every element inside the range (eq. 3: -x/s + round(x/s)).
// So the check is   analytic = finite difference - sum_inside w_i x_i / s,   with the STE's term
// computed independently from x and s. The points keep every element at least 0.2 steps away
// from a rounding boundary (x = s (k + f) with |f| <= 0.3) and clamped ones at least 2.7 steps
// beyond the range, and h is small enough that no x/(s +- h) moves by more than 0.13 of a step:
// no element changes its integer or its clamping inside the difference, so the difference sees
// the smooth piece only.
#include <cmath>

#include "qat/fake_quantize.h"
#include "qat/functions.h"
#include "qat/lsq.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

struct StepCase {
  QuantRange range;
  float scale;
  float h_relative;  // h = h_relative * scale
};

// Points x = s (k + f): k uniform over the range (a sixth clamped: beyond it by 3), |f| <= 0.3.
Tensor lsq_points(const StepCase& c, int64_t n, uint64_t seed) {
  const Tensor u = Tensor::uniform({n, 2}, 0.0f, 1.0f, seed);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float a = u.data()[2 * i], b = u.data()[2 * i + 1];
    int64_t k = c.range.qmin + int64_t(a * float(c.range.levels()));
    if (i % 6 == 0) k = (i % 12 == 0) ? c.range.qmax + 3 : c.range.qmin - 3;
    x[i] = c.scale * (float(k) + 0.6f * (b - 0.5f));
  }
  return Tensor::from_vector(x, {n});
}

double weighted_output(const Tensor& x, float s, QuantRange r, const Tensor& w) {
  const Tensor y = fake_quantize_forward(x, vec({s}), vec({0}), r, Granularity::PerTensor);
  double total = 0;
  for (int64_t i = 0; i < y.numel(); ++i) total += double(w.data()[i]) * y.data()[i];
  return total;
}

}  // namespace

TEST_CASE("LSQ: the step's gradient is the finite difference plus the straight-through term -x/s") {
  // |L(s +- h) error| <= sum |w y| 2^-24 per evaluation; over 2h that is at most ~1e-3 relative
  // to these gradients (4-bit, h = 1e-2 s) and ~4e-3 (8-bit, h = 5e-4 s): rtol 1e-2.
  for (const StepCase& c : {StepCase{{-8, 7}, 0.173f, 1e-2f}, StepCase{{0, 15}, 0.05f, 1e-2f},
                            StepCase{{-128, 127}, 0.0121f, 5e-4f}, StepCase{{0, 255}, 0.9f, 5e-4f}}) {
    CAPTURE(c.range.qmin);
    CAPTURE(c.range.qmax);
    const int64_t n = 96;
    const Tensor x = lsq_points(c, n, 11 + c.range.qmax), w = Tensor::uniform({n}, -1, 1, 12);
    Variable vx(x.clone(), true), vs(vec({c.scale}), true), vz(vec({0}));
    fake_quantize_learnable(vx, vs, vz, c.range, Granularity::PerTensor, 1.0f).backward(w);
    const double analytic = vs.grad().item();

    const float sp = c.scale + c.h_relative * c.scale, sm = c.scale - c.h_relative * c.scale;
    const double numeric = (weighted_output(x, sp, c.range, w) - weighted_output(x, sm, c.range, w)) / (double(sp) - sm);
    double ste_term = 0;
    int inside = 0, clamped = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double u = double(x.data()[i]) / c.scale;
      if (u > c.range.qmin - 0.5 && u < c.range.qmax + 0.5) {
        ste_term -= w.data()[i] * u;
        ++inside;
      } else {
        ++clamped;
      }
    }
    REQUIRE(inside > 40);
    REQUIRE(clamped > 10);
    CHECK(analytic == doctest::Approx(numeric + ste_term).epsilon(1e-2));
    // Without the straight-through term the two would disagree: the term is not negligible.
    CHECK(std::fabs(ste_term) > 0.05 * std::fabs(numeric) + 0.5);
  }
}

TEST_CASE("LSQ: eq. 3 by hand, the gradient scale, and the optional zero-point gradient") {
  // s = 1, z = 0, range [-8, 7], dy = 1: x = 0.3 -> round 0: 0 - 0.3; -1.6 -> -2: -2 + 1.6;
  // 9.2 -> above: qmax = 7; -12 -> below: qmin = -8; 2.5 -> 2 (half to even): 2 - 2.5.
  const Tensor x = vec({0.3f, -1.6f, 9.2f, -12.0f, 2.5f});
  Variable vx(x.clone(), true), vs(vec({1}), true), vz(vec({0}), true);
  fake_quantize_learnable(vx, vs, vz, {-8, 7}, Granularity::PerTensor, 1.0f).backward(Tensor::full({5}, 1.0f));
  CHECK(vs.grad().item() == doctest::Approx(-0.3 - 0.4 + 7 - 8 - 0.5).epsilon(1e-6));
  CHECK(vz.grad().item() == -2.0f);  // -s for each of the two clamped elements
  CHECK(vx.grad().to_vector() == std::vector<float>{1, 1, 0, 0, 1});
  // grad_factor multiplies the qparam gradients, not x's.
  Variable wx(x.clone(), true), ws(vec({1}), true), wz(vec({0}), false);
  fake_quantize_learnable(wx, ws, wz, {-8, 7}, Granularity::PerTensor, 0.25f).backward(Tensor::full({5}, 1.0f));
  CHECK(ws.grad().item() == doctest::Approx(0.25 * (-0.3 - 0.4 + 7 - 8 - 0.5)).epsilon(1e-6));
  CHECK_FALSE(wz.grad().defined());  // LSQ proper: the zero point is not learned
  CHECK(wx.grad().to_vector() == std::vector<float>{1, 1, 0, 0, 1});
}

TEST_CASE("LSQ: the gradient scale 1/sqrt(N Q_P) and the initial step 2 mean|v| / sqrt(Q_P)") {
  CHECK(lsq_grad_factor(100, 7) == static_cast<float>(1.0 / std::sqrt(700.0)));
  CHECK(lsq_grad_factor(1, 1) == 1.0f);
  CHECK_THROWS_WITH_AS(lsq_grad_factor(0, 7), doctest::Contains("N >= 1 elements and Q_P >= 1, found N = 0"), Error);
  const Tensor v = Tensor::from_vector({1, -2, 3, -4, 0.5f, -0.5f}, {3, 2});
  CHECK(lsq_initial_scale(v, {-8, 7}, Granularity::PerTensor).to_vector() ==
        std::vector<float>{float(2.0 * (11.0 / 6.0) / std::sqrt(7.0))});
  CHECK(lsq_initial_scale(v, {0, 15}, Granularity::PerChannel).to_vector() ==
        std::vector<float>{float(2.0 * 1.5 / std::sqrt(15.0)), float(2.0 * 3.5 / std::sqrt(15.0)),
                           float(2.0 * 0.5 / std::sqrt(15.0))});
  CHECK_THROWS_WITH_AS(lsq_initial_scale(Tensor::from_vector({1, 2, 0, 0}, {2, 2}), {-8, 7}, Granularity::PerChannel),
                       "[lsq_initial_scale] 2 mean|v| / sqrt(Q_P) is 0 in channel 1 of [2, 2]: a step size must be "
                       "finite and positive",
                       Error);
}

TEST_CASE("LSQ per channel: each channel's step gets its own elements' gradient") {
  const Tensor x = Tensor::uniform({3, 8}, -2, 2, 21), dy = Tensor::normal({3, 8}, 0, 1, 22);
  const Tensor s = vec({0.1f, 0.3f, 0.05f});
  Variable vx(x.clone(), true), vs(s.clone(), true), vz(vec({0, 0, 0}));
  fake_quantize_learnable(vx, vs, vz, {-8, 7}, Granularity::PerChannel, 0.5f).backward(dy);
  for (int64_t c = 0; c < 3; ++c) {
    Variable cx(x.slice(c * 8, {8}).clone(), true), cs(vec({s.data()[c]}), true), cz(vec({0}));
    fake_quantize_learnable(cx, cs, cz, {-8, 7}, Granularity::PerTensor, 0.5f).backward(dy.slice(c * 8, {8}));
    CHECK(vs.grad().data()[c] == cs.grad().item());
    CHECK_EQUAL_TENSORS(vx.grad().slice(c * 8, {8}), cx.grad(), "dx");
  }
}
