// Per-channel scaling (tensor/channel_scale.h): each op against a plain loop over the channel
// index on both channel axes batch-norm folding uses (0: a weight [O, C, K, K]; 1: activations
// [N, C, H, W]), the shape checks, and the CUDA twins against the CPU (skipped without a GPU).
#include <doctest.h>

#include <cmath>

#include "tensor/channel_scale.h"
#include "tests/gpu.h"

using namespace qnn;

TEST_CASE("channel_mul, channel_div, channel_dot: each element meets its channel's scale") {
  const Tensor x = Tensor::normal({2, 3, 4, 5}, 0, 1, 1), b = Tensor::normal({2, 3, 4, 5}, 0, 1, 2);
  for (int axis : {0, 1}) {
    CAPTURE(axis);
    const int64_t channels = x.size(axis);
    const Tensor s = Tensor::uniform({channels}, 0.5f, 2.0f, 3);
    const Tensor y = channel_mul(x, s, axis), z = channel_div(x, s, axis), d = channel_dot(x, b, axis);
    std::vector<double> dot(channels, 0.0);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t c = axis == 0 ? i / 60 : (i / 20) % 3;
      CHECK(y.data()[i] == x.data()[i] * s.data()[c]);
      CHECK(z.data()[i] == x.data()[i] / s.data()[c]);
      dot[c] += double(x.data()[i]) * b.data()[i];
    }
    for (int64_t c = 0; c < channels; ++c) CHECK(d.data()[c] == doctest::Approx(dot[c]).epsilon(1e-6));
  }
  const Tensor v = Tensor::from_vector({0.0f, 1.0f, 3.0f}, {3});
  const Tensor sd = sqrt_plus(v, 1e-5f);
  const Tensor inv = inverse_std(v, 1e-5f);
  for (int i = 0; i < 3; ++i) {
    CHECK(sd.data()[i] == std::sqrt(v.data()[i] + 1e-5f));
    CHECK(inv.data()[i] == static_cast<float>(1.0 / std::sqrt(double(v.data()[i]) + 1e-5f)));
  }
}

TEST_CASE("channel ops: a scale of the wrong length or a bad axis is an error naming the shapes") {
  const Tensor x = Tensor::zeros({2, 3, 4, 4});
  CHECK_THROWS_WITH_AS(channel_mul(x, Tensor::zeros({2}), 1), doctest::Contains("one scale per channel: 3"), Error);
  CHECK_THROWS_WITH_AS(channel_div(x, Tensor::zeros({3}), 4), doctest::Contains("outside x of shape [2, 3, 4, 4]"),
                       Error);
  CHECK_THROWS_WITH_AS(channel_dot(x, Tensor::zeros({2, 3, 4, 5}), 1), doctest::Contains("one shape"), Error);
}

GPU_TEST_CASE("channel ops cuda: equal the CPU (mul, div and sqrt bit for bit, dot to rounding)") {
  const Tensor x = Tensor::normal({8, 16, 9, 7}, 0, 1, 4), b = Tensor::normal({8, 16, 9, 7}, 0, 1, 5);
  for (int axis : {0, 1}) {
    CAPTURE(axis);
    const Tensor s = Tensor::uniform({x.size(axis)}, -2.0f, 2.0f, 6);
    const Tensor xg = x.to(Device::CUDA), bg = b.to(Device::CUDA), sg = s.to(Device::CUDA);
    CHECK(channel_mul(xg, sg, axis).to_vector() == channel_mul(x, s, axis).to_vector());
    CHECK(channel_div(xg, sg, axis).to_vector() == channel_div(x, s, axis).to_vector());
    CHECK(qnn::testing::closeness(channel_dot(xg, bg, axis), channel_dot(x, b, axis), 1e-5, 1e-6) <= 1.0);
  }
  const Tensor v = Tensor::uniform({64}, 0.0f, 4.0f, 7);
  CHECK(sqrt_plus(v.to(Device::CUDA), 1e-5f).to_vector() == sqrt_plus(v, 1e-5f).to_vector());
  CHECK(inverse_std(v.to(Device::CUDA), 1e-5f).to_vector() == inverse_std(v, 1e-5f).to_vector());
}
