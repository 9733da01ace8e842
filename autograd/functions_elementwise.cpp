// Differentiable element-wise ops, reductions and reshape (see autograd/functions.h).
// Gradients, for the output's gradient g:
//   add: da = g, db = g          sub: da = g, db = -g          mul: da = g * b, db = g * a
//   scale: da = s g              relu: da = g where y > 0      add_relu: da = db = g where y > 0
//   sum: da_i = g                mean: da_i = g / n            reshape: da = g in a's shape
//   to_channels_last: da = g in a's memory format       to_dtype: da = g in a's element type
// relu and add_relu test their output y (kept by the node) rather than saving their input.
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/elementwise.h"

namespace qnn {

Variable add(const Variable& a, const Variable& b) {
  check_defined("add", a, "a");
  check_defined("add", b, "b");
  return make_op_result("add", add(a.value(), b.value()), {a, b},
                        [](Node& self) { send_grad(self, {0, 1}, self.grad); });
}

Variable sub(const Variable& a, const Variable& b) {
  check_defined("sub", a, "a");
  check_defined("sub", b, "b");
  return make_op_result("sub", sub(a.value(), b.value()), {a, b}, [](Node& self) {
    if (self.inputs[1]->requires_grad) accumulate_grad(*self.inputs[1], scale(self.grad, -1.0f));
    send_grad(self, {0}, self.grad);
  });
}

Variable mul(const Variable& a, const Variable& b) {
  check_defined("mul", a, "a");
  check_defined("mul", b, "b");
  return make_op_result("mul", mul(a.value(), b.value()), {a, b}, [](Node& self) {
    Node& na = *self.inputs[0];
    Node& nb = *self.inputs[1];
    // Both products are formed before either is added, in case a and b are the same node.
    Tensor da = na.requires_grad ? mul(self.grad, nb.value) : Tensor();
    Tensor db = nb.requires_grad ? mul(self.grad, na.value) : Tensor();
    if (da.defined()) accumulate_grad(na, da);
    if (db.defined()) accumulate_grad(nb, db);
  });
}

Variable scale(const Variable& a, float s) {
  check_defined("scale", a, "a");
  return make_op_result("scale", scale(a.value(), s), {a},
                        [s](Node& self) { send_grad(self, {0}, scale(self.grad, s)); });
}

Variable relu(const Variable& a) {
  check_defined("relu", a, "a");
  return make_op_result("relu", relu(a.value()), {a}, [](Node& self) {
    send_grad(self, {0}, relu_backward(self.grad, self.value));
  });
}

Variable add_relu(const Variable& a, const Variable& b) {
  check_defined("add_relu", a, "a");
  check_defined("add_relu", b, "b");
  return make_op_result("add_relu", add_relu(a.value(), b.value()), {a, b}, [](Node& self) {
    send_grad(self, {0, 1}, relu_backward(self.grad, self.value));
  });
}

Variable sum(const Variable& a) {
  check_defined("sum", a, "a");
  Tensor total = Tensor::full({1}, static_cast<float>(sum_all(a.value())), a.value().device());
  return make_op_result("sum", total, {a}, [](Node& self) {
    Node& in = *self.inputs[0];
    send_grad(self, {0}, Tensor::full(in.value.shape(), self.grad.item(), in.value.device()));
  });
}

Variable mean(const Variable& a) {
  check_defined("mean", a, "a");
  const int64_t n = a.numel();
  QNN_CHECK(n > 0, "mean of an empty tensor ", shape_str(a.shape()));
  Tensor avg = Tensor::full({1}, static_cast<float>(sum_all(a.value()) / n), a.value().device());
  return make_op_result("mean", avg, {a}, [n](Node& self) {
    Node& in = *self.inputs[0];
    const float g = self.grad.item() / static_cast<float>(n);
    send_grad(self, {0}, Tensor::full(in.value.shape(), g, in.value.device()));
  });
}

Variable reshape(const Variable& a, Shape shape) {
  check_defined("reshape", a, "a");
  QNN_CHECK(shape_numel(shape) == a.numel(), "cannot reshape ", shape_str(a.shape()), " (",
            a.numel(), " elements) to ", shape_str(shape), " (", shape_numel(shape), " elements)");
  // The output shares the input's storage; its gradient is the incoming one, viewed.
  return make_op_result("reshape", a.value().view(std::move(shape)), {a},
                        [](Node& self) { send_grad(self, {0}, self.grad); });
}

Variable to_channels_last(const Variable& x) {
  check_defined("to_channels_last", x, "x");
  if (x.value().is_channels_last()) return x;
  return make_op_result("to_channels_last", x.value().channels_last(), {x},
                        [](Node& self) { send_grad(self, {0}, self.grad.contiguous()); });
}

Variable to_dtype(const Variable& x, DType dtype) {
  check_defined("to_dtype", x, "x");
  if (x.value().dtype() == dtype) return x;
  const DType from = x.value().dtype();
  return make_op_result("to_dtype", x.value().to_dtype(dtype), {x},
                        [from](Node& self) { send_grad(self, {0}, self.grad.to_dtype(from)); });
}

}  // namespace qnn
