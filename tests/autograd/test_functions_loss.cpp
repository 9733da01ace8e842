// cross_entropy against PyTorch 1.13 (F.cross_entropy on the same logits), its stability on large
// logits, label errors, and its gradient by gradcheck.
#include "tests/autograd/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("functions: cross_entropy value and gradient match PyTorch") {
  // The last row has logits near 100: a naive exp would overflow.
  Variable z(Tensor::from_vector({1, 2, 0.5f, -1, 0, 0, 3, 1, 100, 90, 95, 0}, {3, 4}), true);
  Variable loss = cross_entropy(z, {1, 2, 0});
  CHECK(loss.shape() == Shape{1});
  CHECK(loss.value().item() == doctest::Approx(0.2376466542482376).epsilon(1e-6));
  loss.backward();
  check_values(z.grad(), {0.07473594f, -0.13018f, 0.04532964f, 0.01011441f, 0.01343879f, 0.01343879f,
                          -0.063408f, 0.03653042f, -0.002245883f, 1.503135e-05f, 0.00223085f, 0.0f},
               1e-5);
}

TEST_CASE("functions: cross_entropy rejects bad labels, naming index, label and class count") {
  Variable z(Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH_AS(cross_entropy(z, {0, 3}),
                       "[cross_entropy] label 3 at index 1 is out of range for 3 classes (expected an integer 0 <= label < 3)",
                       Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, {-1, 0}), doctest::Contains("label -1 at index 0"), Error);
  CHECK_THROWS_WITH_AS(cross_entropy(z, {0}), doctest::Contains("have 2 rows but 1 labels"), Error);
}

TEST_CASE("functions: cross_entropy gradient") {
  const Tensor z = Tensor::normal({5, 7}, 0, 2, 51);
  const std::vector<int32_t> labels{0, 6, 3, 3, 1};
  CHECK_GRADCHECK([&](const std::vector<Variable>& v) { return cross_entropy(v[0], labels); }, {z});
  // Composed with linear, as a classifier head uses it.
  const Tensor x = Tensor::normal({5, 4}, 0, 1, 52), w = Tensor::normal({7, 4}, 0, 1, 53);
  CHECK_GRADCHECK(
      [&](const std::vector<Variable>& v) { return cross_entropy(linear(v[0], v[1], Variable()), labels); },
      {x, w});
}
