// FakeQuantizer (qat/fake_quantizer.h): what a quantized layer will call. Observer mode must give
// exactly fake_quantize with the observer's qparams and stop observing when frozen; learnable
// mode must start from LSQ's step, send gradients to its scale (and zero point when asked), and
// stop them when frozen; configurations that make no sense are errors.
#include <cmath>

#include "qat/fake_quantize.h"
#include "qat/fake_quantizer.h"
#include "qat/functions.h"
#include "qat/lsq.h"
#include "tensor/elementwise.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("FakeQuantizer (observer): observe, then fake-quantize with the observer's qparams; freeze stops observing") {
  FakeQuantizerConfig c;
  c.bits = 4;
  FakeQuantizer q(c);
  const Tensor a = Tensor::uniform({2, 8}, -1, 3, 1);
  Variable x(a.clone(), true);
  Variable y = q(x);
  Observer reference({ObserverKind::MovingAverageMinMax, {0, 15}});
  reference.observe(a);
  const QParams p = reference.qparams();
  CHECK_EQUAL_TENSORS(y.value(), fake_quantize_forward(a, p.scale, p.zero_point, {0, 15}, Granularity::PerTensor), "y");
  y.backward(Tensor::full({2, 8}, 1.0f));
  CHECK_EQUAL_TENSORS(x.grad(), fake_quantize_backward(Tensor::full({2, 8}, 1.0f), a, p.scale, p.zero_point, {0, 15},
                                                       Granularity::PerTensor), "dx");
  q.freeze();
  const float before = q.qparams().scale.item();
  q(Variable(scale(a, 10.0f)));
  CHECK(q.qparams().scale.item() == before);
  q.freeze(false);
  q(Variable(scale(a, 10.0f)));
  CHECK(q.qparams().scale.item() != before);
}

TEST_CASE("FakeQuantizer (learnable, per channel): LSQ's initial step, gradients to the scale, frozen stops them") {
  FakeQuantizerConfig c;
  c.bits = 4;
  c.is_signed = true;
  c.symmetric = true;
  c.granularity = Granularity::PerChannel;
  c.channels = 3;
  c.learnable = true;
  FakeQuantizer q(c);
  CHECK_FALSE(q.initialized());
  const Tensor w = Tensor::normal({3, 2, 4}, 0, 0.2f, 2);
  Variable wv(w.clone(), true);
  Variable y = q(wv);
  CHECK(q.initialized());
  CHECK_EQUAL_TENSORS(q.scale().value(), lsq_initial_scale(w, {-8, 7}, Granularity::PerChannel), "s0");
  const float g = lsq_grad_factor(w.numel(), 7);
  CHECK_EQUAL_TENSORS(y.value(), fake_quantize_forward(w, q.scale().value(), q.zero_point().value(), {-8, 7},
                                                       Granularity::PerChannel), "y");
  const Tensor dy = Tensor::normal({3, 2, 4}, 0, 1, 3);
  y.backward(dy);
  const LearnableGradients expected = fake_quantize_learnable_backward(dy, w, q.scale().value(), q.zero_point().value(),
                                                                       {-8, 7}, Granularity::PerChannel, g);
  CHECK_EQUAL_TENSORS(q.scale().grad(), expected.dscale, "dscale");
  CHECK_FALSE(q.zero_point().requires_grad());
  // Frozen: the scale is a constant; x still gets its gradient.
  q.scale().grad().zero();
  q.freeze();
  Variable wv2(w.clone(), true);
  q(wv2).backward(dy);
  CHECK(q.scale().grad().to_vector() == std::vector<float>{0, 0, 0});
  CHECK_EQUAL_TENSORS(wv2.grad(), expected.dx, "dx");
}

TEST_CASE("FakeQuantizer (learnable zero point, LSQ+): the zero point receives its gradient") {
  FakeQuantizerConfig c;
  c.bits = 2;
  c.learnable = true;
  c.learn_zero_point = true;
  FakeQuantizer q(c);
  // LSQ's step 2 mean|x| / sqrt(3) = 3.18: -5 and -6 round to -2, below the range [0, 3]; the
  // small values round to 0, inside.
  Variable x(vec({-5, -6, 0.01f, 0.02f}), true);
  q(x).backward(vec({1, 1, 1, 1}));
  REQUIRE(q.zero_point().grad().defined());
  // Two elements clamp: each sends -s g to the zero point.
  const float s = q.scale().value().item(), g = lsq_grad_factor(4, 3);
  CHECK(q.zero_point().grad().item() == doctest::Approx(2 * (-1.0f * s * g)).epsilon(1e-6));
}

TEST_CASE("FakeQuantizer: bad configurations and inputs are errors") {
  FakeQuantizerConfig b;
  b.bits = 9;
  CHECK_THROWS_WITH_AS(FakeQuantizer{b}, "[quant_range] bits must be 2 to 8, found 9", Error);
  FakeQuantizerConfig c;
  c.learn_zero_point = true;
  CHECK_THROWS_WITH_AS(FakeQuantizer{c},
                       "[FakeQuantizer] learn_zero_point needs learnable = true (an observer's zero point is not learned)",
                       Error);
  FakeQuantizerConfig pc;
  pc.granularity = Granularity::PerChannel;
  pc.channels = 4;
  FakeQuantizer q(pc);
  CHECK_THROWS_WITH_AS(q(Variable(Tensor::zeros({3, 2}))),
                       "[operator()] a per-channel quantizer of 4 channels cannot quantize [3, 2] (axis 0 must have 4)",
                       Error);
  FakeQuantizerConfig t;
  t.channels = 2;
  CHECK_THROWS_WITH_AS(FakeQuantizer{t}, "[FakeQuantizer] a per-tensor quantizer has one channel, found channels = 2",
                       Error);
  FakeQuantizerConfig l;
  l.learnable = true;
  CHECK_THROWS_WITH_AS(FakeQuantizer(l).qparams(),
                       "[qparams] the learned scale is not initialised yet: call the quantizer on a tensor first", Error);
}
