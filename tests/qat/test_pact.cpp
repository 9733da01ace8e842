// PACT (qat/pact.h): known values, the gradients of x and alpha, alpha against finite differences,
// the alpha floor, and errors.
//
// What finite differences can check. PACT's alpha gradient is 1 for every x >= alpha and 0 below
// (the paper's eq. 4, the straight-through estimator taking the rounding as the identity). The
// forward value is alpha itself for x >= alpha (a true derivative of 1), 0 for x <= 0, and
// round(x n / alpha) alpha / n in between, whose true derivative is round(x n / alpha) / n: PACT
// drops that term on purpose. So: (1) with every x either <= 0 or at least 0.1 above alpha (no x
// crosses alpha within +-h), PACT's gradient must equal the finite difference; (2) with x inside
// (0, alpha), 0.2 steps away from every rounding boundary, the finite difference must equal
// sum w round(x n/alpha)/n while PACT's gradient stays 0: the documented departure, measured.
#include <cmath>

#include "qat/functions.h"
#include "qat/pact.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

double weighted_pact(const Tensor& x, float alpha, int bits, const Tensor& w) {
  const Tensor y = pact_forward(x, vec({alpha}), bits);
  double total = 0;
  for (int64_t i = 0; i < y.numel(); ++i) total += double(w.data()[i]) * y.data()[i];
  return total;
}

}  // namespace

TEST_CASE("PACT: clip to [0, alpha], then 2^k - 1 steps on it (values by hand)") {
  // bits 2, alpha 1.5: n = 3, step 0.5. 0.3 -> 0.6 steps -> 1; 0.76 -> 1.52 -> 2; 0.25 -> 0.5 -> 0
  // (half to even); 1.4 -> 2.8 -> 3; 2 and 1.5 saturate at 1.5; negatives give 0.
  const Tensor x = vec({-1, 0.2f, 0.3f, 0.76f, 0.25f, 1.4f, 2, 1.5f});
  CHECK(pact_forward(x, vec({1.5f}), 2).to_vector() == std::vector<float>{0, 0, 0.5f, 1, 0, 1.5f, 1.5f, 1.5f});
  // 8 bits, alpha 8 (Distiller's initial value): the step is 8/255; outputs are multiples of it.
  const Tensor x8 = Tensor::uniform({500}, -2, 10, 3);
  const std::vector<float> y8 = pact_forward(x8, vec({8}), 8).to_vector();
  const float s = 8.0f / 255.0f;
  int off = 0;
  for (float v : y8) {
    const float k = std::nearbyint(v / s);
    off += !(k >= 0 && k <= 255 && v == k * s);
  }
  CHECK(off == 0);
}

TEST_CASE("PACT: x's gradient passes on (0, alpha); alpha's gradient sums dy where x >= alpha") {
  Variable x(vec({-1, 0, 0.5f, 1.49f, 1.5f, 3}), true), alpha(vec({1.5f}), true);
  pact(x, alpha, 4).backward(vec({1, 2, 3, 4, 5, 6}));
  CHECK(x.grad().to_vector() == std::vector<float>{0, 0, 3, 4, 0, 0});
  CHECK(alpha.grad().item() == 11.0f);
}

TEST_CASE("PACT: alpha's gradient equals finite differences where PACT claims a true derivative") {
  const int64_t n = 64;
  const float alpha = 2.3f, h = 1e-2f;
  for (int bits : {2, 4, 8}) {
    CAPTURE(bits);
    Tensor x = Tensor::uniform({n}, -3.0f, 6.0f, 5 + bits);
    for (int64_t i = 0; i < n; ++i)  // either <= 0 or at least 0.1 above alpha
      if (x.data()[i] > 0.0f && x.data()[i] < alpha + 0.1f) x.data()[i] = i % 2 ? -x.data()[i] : alpha + 0.1f + x.data()[i];
    const Tensor w = Tensor::uniform({n}, -1, 1, 6);
    Variable vx(x.clone(), true), va(vec({alpha}), true);
    pact(vx, va, bits).backward(w);
    const double numeric = (weighted_pact(x, alpha + h, bits, w) - weighted_pact(x, alpha - h, bits, w)) /
                           (double(alpha + h) - double(alpha - h));
    // The saturated outputs are n * fl(alpha / n), within an ulp or two of alpha: over 2h that is
    // ~1e-5 per element.
    CHECK(va.grad().item() == doctest::Approx(numeric).epsilon(1e-3));
    CHECK(std::fabs(va.grad().item()) > 0.1);  // a real signal, not 0 = 0
  }
}

TEST_CASE("PACT: inside (0, alpha) the finite difference sees round(x n/alpha)/n, which PACT's gradient drops") {
  const int bits = 3;
  const float alpha = 2.0f, n = 7.0f, step = alpha / n, h = 1e-3f;
  const int64_t count = 40;
  const Tensor u = Tensor::uniform({count, 2}, 0, 1, 9);
  std::vector<float> xs(count);
  for (int64_t i = 0; i < count; ++i)  // x = step (k + f), k in 1..6, |f| <= 0.3
    xs[i] = step * (1.0f + std::floor(u.data()[2 * i] * 6.0f) + 0.6f * (u.data()[2 * i + 1] - 0.5f));
  const Tensor x = Tensor::from_vector(xs, {count}), w = Tensor::uniform({count}, -1, 1, 10);
  Variable vx(x.clone(), true), va(vec({alpha}), true);
  pact(vx, va, bits).backward(w);
  CHECK(va.grad().item() == 0.0f);
  double true_derivative = 0;
  for (int64_t i = 0; i < count; ++i) true_derivative += w.data()[i] * std::nearbyint(xs[i] / step) / n;
  const double numeric = (weighted_pact(x, alpha + h, bits, w) - weighted_pact(x, alpha - h, bits, w)) /
                         (double(alpha + h) - double(alpha - h));
  CHECK(numeric == doctest::Approx(true_derivative).epsilon(1e-2));
  CHECK(std::fabs(true_derivative) > 0.1);
}

TEST_CASE("PACT: alpha is used as max(alpha, alpha_min), and its gradient passes the floor") {
  const Tensor x = vec({-1, 0.0004f, 0.002f, 5});
  // alpha -1 -> 1e-3: outputs in [0, 1e-3]; the two x >= 1e-3 send their gradient to alpha.
  Variable vx(x.clone(), true), va(vec({-1}), true);
  Variable y = pact(vx, va, 2);
  const float s = kPactAlphaMin / 3.0f;
  CHECK(y.value().to_vector() == std::vector<float>{0, std::nearbyint(0.0004f * (1.0f / s)) * s, 3 * s, 3 * s});
  y.backward(vec({1, 1, 1, 1}));
  CHECK(va.grad().item() == 2.0f);
  CHECK(vx.grad().to_vector() == std::vector<float>{0, 1, 0, 0});
  CHECK(pact_forward(x, vec({0.5f}), 2, 0.75f).to_vector() == pact_forward(x, vec({0.75f}), 2, 0.75f).to_vector());
}

TEST_CASE("PACT: bad arguments are errors") {
  const Tensor x = vec({1, 2});
  CHECK_THROWS_WITH_AS(pact_forward(x, vec({1, 2}), 4),
                       "[pact_forward] alpha must be one value on the input's device (cpu), found [2] on cpu", Error);
  CHECK_THROWS_WITH_AS(pact_forward(x, vec({1}), 1), "[pact_forward] bits must be 2 to 8, found 1", Error);
  CHECK_THROWS_WITH_AS(pact_forward(x, vec({std::nanf("")}), 4), "[pact_forward] alpha is NaN", Error);
  CHECK_THROWS_WITH_AS(pact_forward(x, vec({1}), 4, 0.0f), "[pact_forward] alpha_min must be finite and positive, found 0",
                       Error);
  CHECK_THROWS_WITH_AS(pact_backward(vec({1}), x, vec({1}), 4), doctest::Contains("must match the input [2]"), Error);
  CHECK_THROWS_WITH_AS(pact(Variable(x), Variable(), 4), "[pact] input 'alpha' is an undefined Variable", Error);
}
