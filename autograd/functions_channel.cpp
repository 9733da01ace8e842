// Differentiable per-channel scaling (the kernels and formulas are in tensor/channel_scale.h):
//   mul_channels: y = x * s[c]   dx = g * s[c]   ds[c] = sum g * x
//   div_channels: y = x / s[c]   dx = g / s[c]   ds[c] = -sum g * x / s[c]^2 = -(sum g * y) / s[c]
// These carry batch-norm folding (nn/conv_bn.h): the weight scaled by gamma / sigma and the
// convolution's output divided by it again.
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/channel_scale.h"
#include "tensor/elementwise.h"

namespace qnn {

Variable mul_channels(const Variable& x, const Variable& s, int axis) {
  check_defined("mul_channels", x, "x");
  check_defined("mul_channels", s, "s");
  return make_op_result("mul_channels", channel_mul(x.value(), s.value(), axis), {x, s}, [axis](Node& self) {
    Node& nx = *self.inputs[0];
    Node& ns = *self.inputs[1];
    Tensor dx = nx.requires_grad ? channel_mul(self.grad, ns.value, axis) : Tensor();
    Tensor ds = ns.requires_grad ? channel_dot(self.grad, nx.value, axis) : Tensor();
    if (dx.defined()) accumulate_grad(nx, dx);
    if (ds.defined()) accumulate_grad(ns, ds);
  });
}

Variable div_channels(const Variable& x, const Variable& s, int axis) {
  check_defined("div_channels", x, "x");
  check_defined("div_channels", s, "s");
  Tensor y = channel_div(x.value(), s.value(), axis);
  const Tensor kept = s.requires_grad() ? y : Tensor();  // the output, for the gradient of s
  return make_op_result("div_channels", y, {x, s}, [axis, kept](Node& self) {
    Node& nx = *self.inputs[0];
    Node& ns = *self.inputs[1];
    Tensor dx = nx.requires_grad ? channel_div(self.grad, ns.value, axis) : Tensor();
    Tensor ds = ns.requires_grad ? channel_div(scale(channel_dot(self.grad, kept, axis), -1.0f), ns.value, 0) : Tensor();
    if (dx.defined()) accumulate_grad(nx, dx);
    if (ds.defined()) accumulate_grad(ns, ds);
  });
}

}  // namespace qnn
