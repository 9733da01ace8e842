// linear and conv2d: hand-computed values, PyTorch-checked values, and gradients by gradcheck
// for every input, with and without bias, strides 1 and 2, padding 0 and 1.
#include "tests/autograd/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("functions: linear values, with and without bias") {
  // x [2, 3], w [2, 3]: y = x w^T (+ b).
  Variable x(Tensor::from_vector({1, 2, 3, -1, 0, 2}, {2, 3}));
  Variable w(Tensor::from_vector({1, 0, -1, 0.5f, 0.5f, 0.5f}, {2, 3}));
  Variable b(Tensor::from_vector({10, -10}, {2}));
  check_values(linear(x, w, Variable()).value(), {-2, 3, -3, 0.5f});
  check_values(linear(x, w, b).value(), {8, -7, 7, -9.5f});
  CHECK_THROWS_WITH_AS(linear(x, Variable(Tensor::zeros({2, 4})), b),
                       "[linear_forward] input [2, 3] has 3 features, weight [2, 4] expects 4", Error);
}

TEST_CASE("functions: linear gradients") {
  const Tensor x = Tensor::normal({4, 5}, 0, 1, 11), w = Tensor::normal({3, 5}, 0, 1, 12);
  const Tensor b = Tensor::normal({3}, 0, 1, 13);
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return linear(v[0], v[1], v[2]); }, {x, w, b});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return linear(v[0], v[1], Variable()); }, {x, w});
}

TEST_CASE("functions: conv2d values") {
  // x = 1..9 in a 3x3 image, w = [[1, 0], [0, -1]]: y[i, j] = x[i, j] - x[i+1, j+1] = -4.
  Variable x(Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 1, 3, 3}));
  Variable w(Tensor::from_vector({1, 0, 0, -1}, {1, 1, 2, 2}));
  Variable y = conv2d(x, w, Variable(), {1, 0});
  CHECK(y.shape() == Shape{1, 1, 2, 2});
  check_values(y.value(), {-4, -4, -4, -4});
  // 5x5 image 1..25, 3x3 kernel, stride 2, padding 1, bias 0.5: values printed by PyTorch 1.13
  // (F.conv2d(x, w, b, stride=2, padding=1)).
  std::vector<float> xs(25);
  for (int i = 0; i < 25; ++i) xs[i] = static_cast<float>(i + 1);
  Variable x5(Tensor::from_vector(xs, {1, 1, 5, 5}));
  Variable w3(Tensor::from_vector({1, 2, 0, -1, 0, 1, 0.5f, 0, -2}, {1, 1, 3, 3}));
  Variable b(Tensor::from_vector({0.5f}, {1}));
  check_values(conv2d(x5, w3, b, {2, 1}).value(), {-11.5f, -12, 1, -9.5f, -4, 25, 54.5f, 55.5f, 35.5f});
}

TEST_CASE("functions: conv2d gradients, strides 1 and 2, padding 0 and 1, with and without bias") {
  const Tensor x = Tensor::normal({2, 3, 5, 5}, 0, 1, 21), w = Tensor::normal({4, 3, 3, 3}, 0, 0.5f, 22);
  const Tensor b = Tensor::normal({4}, 0, 1, 23);
  for (int stride : {1, 2})
    for (int padding : {0, 1}) {
      INFO("stride ", stride, " padding ", padding);
      const ConvParams p{stride, padding};
      CHECK_GRADCHECK([p](const std::vector<Variable>& v) { return conv2d(v[0], v[1], v[2], p); }, {x, w, b});
      CHECK_GRADCHECK([p](const std::vector<Variable>& v) { return conv2d(v[0], v[1], Variable(), p); }, {x, w});
    }
}

TEST_CASE("functions: conv2d with a frozen weight still trains its bias") {
  Variable x(Tensor::normal({2, 1, 3, 3}, 0, 1, 31));
  Variable w(Tensor::normal({2, 1, 2, 2}, 0, 1, 32));  // requires no gradient
  Variable b(Tensor::zeros({2}), true);
  sum(conv2d(x, w, b, {1, 0})).backward();
  CHECK(!w.grad().defined());
  check_values(b.grad(), {8, 8});  // 2 images x 2x2 outputs per channel
}
