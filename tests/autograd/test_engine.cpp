// The autograd engine through the differentiable functions: accumulation across backward calls,
// shared values (diamonds), no_grad, leaf hooks, flat parameter buffers with their hooks, and
// gradients on the wrong device.
#include "autograd/flat_parameters.h"
#include "tests/autograd/helpers.h"
#include "tests/gpu.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("engine: gradients accumulate across backward calls until zeroed") {
  Variable x(Tensor::from_vector({1, -2, 3}, {3}), true);
  sum(mul(x, x)).backward();
  check_values(x.grad(), {2, -4, 6});
  sum(mul(x, x)).backward();
  check_values(x.grad(), {4, -8, 12});
  x.grad().zero();
  sum(scale(x, 3)).backward();
  check_values(x.grad(), {3, 3, 3});
}

TEST_CASE("engine: a value used twice gets the sum of both gradients (diamond)") {
  Variable x(Tensor::from_vector({1, 2}, {2}), true);
  Variable a = scale(x, 2), b = scale(x, 3);
  sum(mul(a, b)).backward();  // 6 x^2 -> 12 x
  check_values(x.grad(), {12, 24});

  Variable y(Tensor::from_vector({1, 2}, {2}), true);
  sum(add(y, y)).backward();  // the same node as both inputs of one op
  check_values(y.grad(), {2, 2});
}

TEST_CASE("engine: gradients of two inputs never share storage") {
  // add hands its incoming gradient to a and a copy to b; a then receives scale's gradient too,
  // which must not leak into b.
  Variable a(Tensor::from_vector({1, 1}, {2}), true), b(Tensor::from_vector({1, 1}, {2}), true);
  sum(add(add(a, b), scale(a, 2))).backward();
  check_values(a.grad(), {3, 3});
  check_values(b.grad(), {1, 1});
  CHECK(!a.grad().shares_storage(b.grad()));
}

TEST_CASE("engine: no_grad records no graph") {
  Variable x(Tensor::from_vector({1, 2}, {2}), true);
  {
    NoGradGuard guard;
    CHECK(!grad_enabled());
    Variable y = sum(mul(x, x));
    CHECK(!y.requires_grad());
    CHECK(y.is_leaf());
    CHECK(y.node().inputs.empty());
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("does not require a gradient"), Error);
  }
  CHECK(grad_enabled());
  Variable z = sum(mul(x, x));
  CHECK(z.requires_grad());
  CHECK(!z.is_leaf());
  // Inputs that need no gradient record no graph either.
  Variable c(Tensor::from_vector({1, 2}, {2}));
  CHECK(!relu(c).requires_grad());
}

TEST_CASE("engine: hooks on a leaf run after each backward and may modify the gradient") {
  Variable x(Tensor::from_vector({1, 2}, {2}), true);
  int calls = 0;
  x.register_hook([&calls](Tensor& g) {
    ++calls;
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= 10;
  });
  sum(scale(x, 2)).backward();
  CHECK(calls == 1);
  check_values(x.grad(), {20, 20});
  Variable y = relu(x);
  CHECK_THROWS_WITH_AS(y.register_hook([](Tensor&) {}), doctest::Contains("hooks go on leaves"), Error);
}

TEST_CASE("engine: flat parameters are views, gradients land in the flat buffer, hooks run once") {
  Variable a(Tensor::from_vector({1, 2}, {2}), true);
  Variable w(Tensor::from_vector({1, 0, 0, 1, 1, 1}, {3, 2}), true);
  FlatParameters flat({a, w});
  CHECK(flat.numel() == 8);
  CHECK(a.value().shares_storage(flat.values()));
  CHECK(w.value().shares_storage(flat.values()));
  check_values(flat.values(), {1, 2, 1, 0, 0, 1, 1, 1});
  int calls = 0;
  flat.add_grad_hook([&calls](Tensor& g) {
    ++calls;
    g.data()[0] += 100;  // visible through the first leaf's gradient view
  });

  // loss = sum(linear(a as [1, 2], w)) = sum_o (w_o . a): dw_o = a, da = sum_o w_o.
  Variable x = reshape(a, {1, 2});
  sum(linear(x, w, Variable())).backward();
  CHECK(calls == 1);
  check_values(flat.grads(), {102, 2, 1, 2, 1, 2, 1, 2});
  check_values(a.grad(), {102, 2});
  CHECK(a.grad().shares_storage(flat.grads()));

  flat.zero_grad();
  check_values(a.grad(), {0, 0});
  sum(mul(a, a)).backward();  // only one of the two leaves takes part: the hook still runs once
  CHECK(calls == 2);
  check_values(flat.grads(), {102, 4, 0, 0, 0, 0, 0, 0});
}

GPU_TEST_CASE("engine: a seed or gradient on another device than its value is refused") {
  // The loss's backward kernel would read a host seed through a device pointer.
  Variable logits(gpu(Tensor::normal({4, 10}, 0, 1, 3)), true);
  const Variable loss = cross_entropy(logits, std::vector<int32_t>{1, 2, 3, 4});
  CHECK_THROWS_WITH_AS(loss.backward(Tensor::full({1}, 1.0f)), doctest::Contains("a cpu gradient of [1] for a cuda value"),
                       Error);
  loss.backward(gpu(Tensor::full({1}, 1.0f)));
  CHECK(logits.grad().is_cuda());
}
