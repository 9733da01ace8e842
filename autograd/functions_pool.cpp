// Differentiable pooling and the option-A shortcut (see autograd/functions.h; formulas in
// tensor/pool.h and tensor/shortcut.h). Max pooling finds its maxima again from x in backward,
// so none of these ops saves anything beyond its input, which the graph holds anyway.
// On bf16 activations (GPU only, docs/bf16.md) max pooling and the shortcut return bf16 values and
// gradients; global average pooling returns float values (for the float classifier) and turns
// their float gradient back into a gradient in x's type and format.
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/pool.h"
#include "tensor/shortcut.h"

namespace qnn {

Variable max_pool2d(const Variable& x, int kernel, int stride, int padding) {
  check_defined("max_pool2d", x, "x");
  const PoolParams p{kernel, stride, padding};
  return make_op_result("max_pool2d", max_pool2d_forward(x.value(), p), {x}, [p](Node& self) {
    Node& nx = *self.inputs[0];
    send_grad(self, {0}, max_pool2d_backward(self.grad, nx.value, p));
  });
}

Variable global_avg_pool(const Variable& x) {
  check_defined("global_avg_pool", x, "x");
  return make_op_result("global_avg_pool", global_avg_pool_forward(x.value()), {x}, [](Node& self) {
    const Tensor& x = self.inputs[0]->value;
    send_grad(self, {0}, global_avg_pool_backward(self.grad, x.shape(), x.format(), x.dtype()));
  });
}

Variable shortcut_pad(const Variable& x, int64_t out_channels, int stride) {
  check_defined("shortcut_pad", x, "x");
  Tensor y = shortcut_pad_forward(x.value(), out_channels, stride);
  return make_op_result("shortcut_pad", y, {x}, [stride](Node& self) {
    send_grad(self, {0}, shortcut_pad_backward(self.grad, self.inputs[0]->value.shape(), stride));
  });
}

}  // namespace qnn
