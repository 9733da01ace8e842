// Element-wise ops, reductions and reshape: values on small inputs, gradients by gradcheck.
#include <cmath>

#include "tests/autograd/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {
Variable var(const std::vector<float>& v, Shape s) { return Variable(Tensor::from_vector(v, s)); }
}  // namespace

TEST_CASE("functions: element-wise values") {
  Variable a = var({1, -2, 3, -4}, {2, 2});
  Variable b = var({0.5f, 0.5f, -4, 2}, {2, 2});
  check_values(add(a, b).value(), {1.5f, -1.5f, -1, -2});
  check_values(sub(a, b).value(), {0.5f, -2.5f, 7, -6});
  check_values(mul(a, b).value(), {0.5f, -1, -12, -8});
  check_values(scale(a, -0.5f).value(), {-0.5f, 1, -1.5f, 2});
  check_values(relu(a).value(), {1, 0, 3, 0});
  check_values(add_relu(a, b).value(), {1.5f, 0, 0, 0});
  check_values(sum(a).value(), {-2});
  check_values(mean(a).value(), {-0.5f});
  Variable r = reshape(a, {4});
  CHECK(r.shape() == Shape{4});
  check_values(r.value(), {1, -2, 3, -4});
}

TEST_CASE("functions: relu and add_relu keep NaN, as PyTorch does") {
  const float nan = std::nanf("");
  const std::vector<float> y = relu(var({nan, -1, 2, -nan}, {4})).value().to_vector();
  CHECK(std::isnan(y[0]));
  CHECK(y[1] == 0);
  CHECK(y[2] == 2);
  CHECK(std::isnan(y[3]));
  const std::vector<float> z = add_relu(var({nan, 1, -3}, {3}), var({1, nan, 1}, {3})).value().to_vector();
  CHECK(std::isnan(z[0]));
  CHECK(std::isnan(z[1]));
  CHECK(z[2] == 0);
}

TEST_CASE("functions: element-wise shape errors name the op and both shapes") {
  Variable a = var({1, 2, 3, 4, 5, 6}, {2, 3});
  Variable b = var({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK_THROWS_WITH_AS(add(a, b),
                       "[add] shapes must match exactly (no broadcasting): a is [2, 3], b is [3, 2]", Error);
  CHECK_THROWS_WITH_AS(mul(a, b), doctest::Contains("[mul]"), Error);
  CHECK_THROWS_WITH_AS(reshape(a, {4}),
                       "[reshape] cannot reshape [2, 3] (6 elements) to [4] (4 elements)", Error);
  CHECK_THROWS_WITH_AS(add(a, Variable()), "[add] input 'b' is an undefined Variable", Error);
}

TEST_CASE("functions: element-wise gradients match finite differences") {
  const Tensor a = away_from_zero({3, 4}, 1), b = away_from_zero({3, 4}, 2);
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return add(v[0], v[1]); }, {a, b});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return sub(v[0], v[1]); }, {a, b});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return mul(v[0], v[1]); }, {a, b});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return mul(v[0], v[0]); }, {a});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return scale(v[0], -2.5f); }, {a});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return relu(v[0]); }, {a});
  // a + b away from zero too: shift b so that no sum is near the kink.
  Tensor b2 = b.clone();
  for (int64_t i = 0; i < b2.numel(); ++i) {
    const float s = a.data()[i] + b2.data()[i];
    if (s > -0.1f && s < 0.1f) b2.data()[i] += 0.3f;
  }
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return add_relu(v[0], v[1]); }, {a, b2});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return sum(v[0]); }, {a});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return mean(v[0]); }, {a});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return mul(reshape(v[0], {2, 6}), reshape(v[1], {2, 6})); },
                  {a, b});
}

TEST_CASE("functions: relu passes gradient only where the output is positive") {
  Variable a(Tensor::from_vector({-1, 2, -3, 4}, {4}), true);
  sum(relu(a)).backward();
  CHECK(a.grad().to_vector() == std::vector<float>{0, 1, 0, 1});
}
