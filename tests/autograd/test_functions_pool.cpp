// max_pool2d, global_avg_pool and shortcut_pad: values (PyTorch 1.13 where noted) and gradients.
#include "tests/autograd/helpers.h"
#include "tensor/pool.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// 5x5 image with x_i = (29 i) mod 31: distinct values, as in the PyTorch script.
Variable pool_input() {
  Tensor x({1, 1, 5, 5});
  for (int i = 0; i < 25; ++i) x.data()[i] = static_cast<float>((i * 29) % 31);
  return Variable(x);
}

}  // namespace

TEST_CASE("functions: max_pool2d values match PyTorch") {
  // PyTorch 1.13: F.max_pool2d(x, 3, 2, 1) and F.max_pool2d(x, 2, 2, 0).
  Variable y = max_pool2d(pool_input(), 3, 2, 1);
  CHECK(y.shape() == Shape{1, 1, 3, 3});
  check_values(y.value(), {29, 29, 25, 30, 30, 26, 30, 30, 26});
  check_values(max_pool2d(pool_input(), 2, 2, 0).value(), {29, 27, 30, 28});
  // Padding never wins, even over negative values.
  Variable neg(Tensor::from_vector({-5, -6, -7, -8}, {1, 1, 2, 2}));
  check_values(max_pool2d(neg, 2, 1, 1).value(), {-5, -5, -6, -5, -5, -6, -7, -7, -8});
  CHECK_THROWS_WITH_AS(max_pool2d(neg, 2, 1, 2), doctest::Contains("padding <= kernel / 2"), Error);
}

TEST_CASE("functions: max_pool2d sends the gradient to each window's maximum") {
  Variable x(pool_input().value(), true);
  sum(max_pool2d(x, 3, 2, 1)).backward();
  // 29 (index 1) wins two windows, 25 (3) one, 30 (16) four, 26 (18) two.
  std::vector<float> expected(25, 0.0f);
  expected[1] = 2;
  expected[3] = 1;
  expected[16] = 4;
  expected[18] = 2;
  CHECK(x.grad().to_vector() == expected);
}

TEST_CASE("functions: pooling and shortcut gradients") {
  const Tensor x = distinct({2, 3, 6, 6});
  for (int padding : {0, 1}) {
    INFO("padding ", padding);
    CHECK_GRADCHECK([padding](const std::vector<Variable>& v) { return max_pool2d(v[0], 3, 2, padding); }, {x});
  }
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return max_pool2d(v[0], 2, 2, 0); }, {x});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return global_avg_pool(v[0]); }, {x});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return shortcut_pad(v[0], 6, 2); }, {x});
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return shortcut_pad(v[0], 4, 1); }, {x});
}

TEST_CASE("functions: global_avg_pool values") {
  Variable x(Tensor::from_vector({1, 2, 3, 4, -1, -1, -1, 5}, {1, 2, 2, 2}));
  Variable y = global_avg_pool(x);
  CHECK(y.shape() == Shape{1, 2});
  check_values(y.value(), {2.5f, 0.5f});
}

TEST_CASE("functions: shortcut_pad matches PyTorch's option-A shortcut") {
  // PyTorch 1.13: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 1, 1)) for x = 1..36 as [2, 2, 3, 3].
  std::vector<float> xs(36);
  for (int i = 0; i < 36; ++i) xs[i] = static_cast<float>(i + 1);
  Variable y = shortcut_pad(Variable(Tensor::from_vector(xs, {2, 2, 3, 3})), 4, 2);
  CHECK(y.shape() == Shape{2, 4, 2, 2});
  check_values(y.value(), {0,  0,  0,  0,  1,  3,  7,  9,  10, 12, 16, 18, 0, 0, 0, 0,
                           0,  0,  0,  0,  19, 21, 25, 27, 28, 30, 34, 36, 0, 0, 0, 0});
  // Odd padding: one channel before, two after.
  Variable z = shortcut_pad(Variable(Tensor::full({1, 1, 2, 2}, 7.0f)), 4, 1);
  check_values(z.value(), {0, 0, 0, 0, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0});
  CHECK_THROWS_WITH_AS(shortcut_pad(Variable(Tensor::zeros({1, 4, 2, 2})), 2, 2),
                       "[shortcut_pad] out_channels 2 is fewer than the input's 4 channels (x [1, 4, 2, 2])",
                       Error);
}

TEST_CASE("functions: 3x3 max pooling with ties sends each gradient to the window's first maximum") {
  // Values from only four levels, so most windows hold ties: every window, inside the image and
  // on its border, must pick the first maximum in row-major order (PyTorch's choice), as the
  // reference loop written out here does, and backward must add overlapping windows' gradients.
  const int64_t n = 2, c = 3, h = 11, w = 13;
  Tensor x({n, c, h, w});
  for (int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>((i * 7919) % 4);
  for (int stride : {1, 2})
    for (int pad : {0, 1}) {
      INFO("stride ", stride, " padding ", pad);
      const PoolParams p{3, stride, pad};
      const int64_t ho = (h + 2 * pad - 3) / stride + 1, wo = (w + 2 * pad - 3) / stride + 1;
      Tensor dy({n, c, ho, wo});
      for (int64_t i = 0; i < dy.numel(); ++i) dy.data()[i] = static_cast<float>(i % 5 + 1);
      std::vector<float> y(dy.numel()), dx(x.numel(), 0.0f);
      for (int64_t q = 0; q < n * c; ++q)
        for (int64_t i = 0; i < ho; ++i)
          for (int64_t j = 0; j < wo; ++j) {
            int64_t best = -1;
            for (int64_t u = 0; u < 3; ++u)
              for (int64_t v = 0; v < 3; ++v) {
                const int64_t r = i * stride + u - pad, s = j * stride + v - pad;
                if (r < 0 || r >= h || s < 0 || s >= w) continue;
                const int64_t at = (q * h + r) * w + s;
                if (best < 0 || x.data()[at] > x.data()[best]) best = at;
              }
            const int64_t out = (q * ho + i) * wo + j;
            y[out] = x.data()[best];
            dx[best] += dy.data()[out];
          }
      CHECK(max_pool2d_forward(x, p).to_vector() == y);
      CHECK(max_pool2d_backward(dy, x, p).to_vector() == dx);
    }
}
