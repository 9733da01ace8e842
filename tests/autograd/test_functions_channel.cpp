// mul_channels and div_channels (autograd/functions_channel.cpp): gradients of x and of the
// per-channel scale against finite differences, on both channel axes.
#include <doctest.h>

#include "tests/autograd/helpers.h"

using namespace qnn;

TEST_CASE("mul_channels and div_channels: gradients match finite differences") {
  const Tensor x = Tensor::uniform({2, 3, 2, 2}, -1.0f, 1.0f, 11);
  for (int axis : {0, 1}) {
    CAPTURE(axis);
    const Tensor s = Tensor::uniform({x.size(axis)}, 0.5f, 1.5f, 12 + axis);
    CHECK_GRADCHECK([axis](const std::vector<Variable>& v) { return mul_channels(v[0], v[1], axis); }, {x, s});
    CHECK_GRADCHECK([axis](const std::vector<Variable>& v) { return div_channels(v[0], v[1], axis); }, {x, s});
  }
  // The same Variable as value and scale: both gradient paths add up.
  const Tensor w = Tensor::uniform({4}, 0.5f, 1.5f, 13);
  CHECK_GRADCHECK([](const std::vector<Variable>& v) { return div_channels(v[0], v[0], 0); }, {w});
}
