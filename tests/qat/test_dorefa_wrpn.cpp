// DoReFa and WRPN quantizers (qat/dorefa.h, qat/uniform_quantize.h, qat/functions.h).
//
// What a gradient check can reach. DoReFa's weights are w_q = 2 quantize_k(f(w)) - 1 with
// f = tanh(w) / (2 max|tanh w|) + 1/2. quantize_k is a staircase: its true derivative is 0 almost
// everywhere, so finite differences of w_q say nothing about the straight-through gradient. f is
// smooth away from ties for the max, so (1) gradcheck checks dorefa_normalize against central
// differences (inputs with one clear maximum of |w|), including the path through the max;
// (2) dorefa_weight's gradient must be exactly the normalisation's gradient of 2 dy (the STE
// of the levels is dw_q/df = 2), checked bit for bit; (3) the levels are checked against their
// definition. Ties for the max, where f is not differentiable, get the even split that PyTorch
// and TensorFlow use, checked by hand.
#include <cmath>

#include "qat/dorefa.h"
#include "qat/functions.h"
#include "qat/uniform_quantize.h"
#include "tensor/elementwise.h"
#include "tests/autograd/helpers.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// Seeded weights in [-1, 1] whose largest |w| (element 5, 1.6) stands 0.6 clear of the rest.
Tensor clear_max_weights(Shape shape, uint64_t seed) {
  Tensor w = Tensor::uniform(std::move(shape), -1.0f, 1.0f, seed);
  w.data()[5] = -1.6f;
  return w;
}

}  // namespace

TEST_CASE("DoReFa: the normalisation's gradient (through tanh and the max) matches finite differences") {
  const Fn normalize = [](const std::vector<Variable>& v) { return dorefa_normalize(v[0]); };
  CHECK_GRADCHECK(normalize, {clear_max_weights({4, 6}, 1)}, 1e-2f, 1e-2f, 1e-3f);
  CHECK_GRADCHECK(normalize, {clear_max_weights({3, 2, 3, 3}, 2)}, 1e-2f, 1e-2f, 1e-3f);
  // The max's own path matters: the largest element's gradient differs from the plain
  // tanh'(w) dy / (2M) by the max's term.
  const Tensor w = clear_max_weights({8}, 3), dy = Tensor::uniform({8}, -1, 1, 4);
  Variable v(w.clone(), true);
  dorefa_normalize(v).backward(dy);
  const float t5 = std::tanh(-1.6f), m = std::fabs(t5);
  CHECK(std::fabs(v.grad().data()[5] - dy.data()[5] / (2 * m) * (1 - t5 * t5)) > 1e-3);
}

TEST_CASE("DoReFa: the weights' gradient is the normalisation's gradient of 2 dy (straight-through levels)") {
  for (int bits : {2, 3, 8}) {
    CAPTURE(bits);
    const Tensor w = clear_max_weights({5, 7}, 10 + bits), dy = Tensor::normal({5, 7}, 0, 1, 20 + bits);
    Variable a(w.clone(), true), b(w.clone(), true);
    dorefa_weight(a, bits).backward(dy);
    dorefa_normalize(b).backward(scale(dy, 2.0f));
    CHECK_EQUAL_TENSORS(a.grad(), b.grad(), "dw");
    Variable f(Tensor::uniform({6}, 0, 1, 5), true);
    dorefa_weight_levels(f, bits).backward(dy.slice(0, {6}));
    CHECK_EQUAL_TENSORS(f.grad(), scale(dy.slice(0, {6}), 2.0f), "df");
  }
}

TEST_CASE("DoReFa: weights land on the odd levels 2k/n - 1 of [-1, 1]; the largest |w| maps to +-1") {
  for (int bits : {2, 4, 8}) {
    CAPTURE(bits);
    const float n = float((1 << bits) - 1);
    const Tensor w = Tensor::normal({300}, 0, 0.1f, 30 + bits);
    const std::vector<float> q = dorefa_weight(Variable(w), bits).value().to_vector();
    int off = 0;
    for (float v : q) {
      const float k = std::nearbyint((v + 1.0f) / 2.0f * n);
      off += !(k >= 0 && k <= n && v == 2.0f * (k / n) - 1.0f);
    }
    CHECK(off == 0);
    // The element with the largest |w| has f = 0 or 1.
    int64_t arg = 0;
    for (int64_t i = 1; i < 300; ++i) arg = std::fabs(w.data()[i]) > std::fabs(w.data()[arg]) ? i : arg;
    CHECK(std::fabs(q[arg]) == 1.0f);
  }
  // Known values, bits 2 (n = 3): w = [0.5, -0.5, 0.1, 0]: t/(2M) + 1/2 = [1, 0, 0.5 + tanh(0.1)/(2 tanh 0.5), 0.5];
  // f n = [3, 0, 1.78.., 1.5] -> [3, 0, 2, 2] -> 2 k/3 - 1 = [1, -1, 1/3, 1/3] (1.5 rounds to 2).
  const std::vector<float> q = dorefa_weight(Variable(vec({0.5f, -0.5f, 0.1f, 0})), 2).value().to_vector();
  CHECK(q == std::vector<float>{1, -1, 2.0f * (2.0f / 3.0f) - 1.0f, 2.0f * (2.0f / 3.0f) - 1.0f});
}

TEST_CASE("DoReFa: ties for the max share its gradient evenly; all-zero weights map to f = 1/2 with no gradient") {
  // w = [a, -a, b], |b| < a: M = tanh a is attained twice, sign +1 and -1. With dy = [1, 0, 0]:
  // S = t_0 = M, k = S / (2 M^2 * 2) = 1 / (4M); dt_0 = 1/(2M) - k, dt_1 = 0 + k, dt_2 = 0.
  const float a = 0.8f, m = std::tanh(a);
  Variable v(vec({a, -a, 0.3f}), true);
  dorefa_normalize(v).backward(vec({1, 0, 0}));
  const float k = float(double(m) / (2.0 * double(m) * double(m) * 2.0));
  const float sech2 = std::fma(-m, m, 1.0f);
  CHECK(v.grad().to_vector() == std::vector<float>{(1.0f / (2.0f * m) - k) * sech2, (0.0f / (2.0f * m) + k) * sech2, 0});
  Variable z(Tensor::zeros({4}), true);
  Variable f = dorefa_normalize(z);
  CHECK(f.value().to_vector() == std::vector<float>{0.5f, 0.5f, 0.5f, 0.5f});
  f.backward(vec({1, 2, 3, 4}));
  CHECK(z.grad().to_vector() == std::vector<float>{0, 0, 0, 0});
}

TEST_CASE("DoReFa and WRPN activations: clamp to [0, 1], 2^k - 1 steps; gradient inside [0, 1]") {
  // bits 2: n = 3. 0.1 -> 0.3 -> 0; 0.5 -> 1.5 -> 2 (half to even); 0.9 -> 2.7 -> 3.
  for (auto fn : {dorefa_activation, wrpn_activation}) {
    Variable x(vec({-0.5f, 0, 0.1f, 0.5f, 0.9f, 1, 1.2f}), true);
    Variable y = fn(x, 2);
    CHECK(y.value().to_vector() == std::vector<float>{0, 0, 0, 2.0f / 3.0f, 1, 1, 1});
    y.backward(vec({1, 2, 3, 4, 5, 6, 7}));
    CHECK(x.grad().to_vector() == std::vector<float>{0, 2, 3, 4, 5, 6, 0});
  }
  // Idempotent, and on the grid k/n, at 8 bits.
  const Tensor x = Tensor::uniform({400}, -0.5f, 1.5f, 40);
  const Tensor y = clamp_quantize_forward(x, 0.0f, 1.0f, 255);
  CHECK_EQUAL_TENSORS(clamp_quantize_forward(y, 0.0f, 1.0f, 255), y, "idempotent");
  int off = 0;
  for (float v : y.to_vector()) off += v != std::nearbyint(v * 255.0f) / 255.0f;
  CHECK(off == 0);
}

TEST_CASE("WRPN weights: clamp to [-1, 1], k - 1 magnitude bits and a sign") {
  // bits 4: n = 2^3 - 1 = 7. -0.5 -> -3.5 -> -4 (half to even); 0.3 -> 2.1 -> 2; 2 -> 1.
  Variable w(vec({-2, -0.5f, 0, 0.3f, 1, 2}), true);
  Variable q = wrpn_weight(w, 4);
  CHECK(q.value().to_vector() == std::vector<float>{-1, -4.0f / 7.0f, 0, 2.0f / 7.0f, 1, 1});
  q.backward(vec({1, 1, 1, 1, 1, 1}));
  CHECK(w.grad().to_vector() == std::vector<float>{0, 1, 1, 1, 1, 0});
  // bits 2: ternary {-1, 0, 1}.
  const std::vector<float> t = wrpn_weight(Variable(vec({-0.7f, -0.4f, 0.2f, 0.6f})), 2).value().to_vector();
  CHECK(t == std::vector<float>{-1, 0, 0, 1});
  // Symmetric: q(-w) = -q(w) away from ties, and 0 is a level.
  const Tensor r = Tensor::uniform({200}, -1.5f, 1.5f, 50);
  const Tensor qr = wrpn_weight(Variable(r), 5).value(), qn = wrpn_weight(Variable(scale(r, -1.0f)), 5).value();
  CHECK_EQUAL_TENSORS(qn, scale(qr, -1.0f), "odd symmetry");
}

TEST_CASE("DoReFa and WRPN: bad bit widths and bounds are errors") {
  const Variable x(vec({0.5f}));
  CHECK_THROWS_WITH_AS(dorefa_weight(x, 1), "[quant_range] bits must be 2 to 8, found 1", Error);
  CHECK_THROWS_WITH_AS(dorefa_activation(x, 9), "[quant_range] bits must be 2 to 8, found 9", Error);
  CHECK_THROWS_WITH_AS(wrpn_weight(x, 0), "[quant_range] bits must be 2 to 8, found 0", Error);
  CHECK_THROWS_WITH_AS(clamp_quantize_forward(vec({1}), 1.0f, 0.0f, 3),
                       "[clamp_quantize_forward] the clamp range must be finite with lo < hi, found [1, 0]", Error);
  CHECK_THROWS_WITH_AS(clamp_quantize_forward(vec({1}), 0.0f, 1.0f, 0),
                       "[clamp_quantize_forward] the number of steps must be 1 to 255 (at most 8 bits), found 0", Error);
  CHECK_THROWS_WITH_AS(dorefa_normalize_forward(Tensor()), doctest::Contains("the weights must be a non-empty tensor"),
                       Error);
}
