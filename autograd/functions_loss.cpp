// Differentiable softmax cross-entropy (see autograd/functions.h; formulas in
// tensor/softmax_xent.h). The node keeps the labels and the per-row log-sum-exp (N floats), and
// recomputes the softmax from the logits in backward.
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/softmax_xent.h"

namespace qnn {

Variable cross_entropy(const Variable& logits, const std::vector<int32_t>& labels) {
  check_defined("cross_entropy", logits, "logits");
  return cross_entropy(logits, label_tensor(labels, logits.value().device()));
}

Variable cross_entropy(const Variable& logits, const Tensor& labels) {
  check_defined("cross_entropy", logits, "logits");
  Tensor lse;
  Tensor loss = cross_entropy_forward(logits.value(), labels, lse);
  // Without a graph to record (evaluation), skip copying the labels into a closure.
  if (!grad_enabled() || !logits.requires_grad()) return make_op_result("cross_entropy", loss, {logits}, nullptr);
  return make_op_result("cross_entropy", loss, {logits}, [labels, lse](Node& self) {
    Node& nz = *self.inputs[0];
    send_grad(self, {0}, cross_entropy_backward(self.grad, nz.value, labels, lse));
  });
}

}  // namespace qnn
