// Differentiable linear and 2-D convolution layers (see autograd/functions.h). The kernels live in
// tensor/linear.h and tensor/conv.h; here each op records which inputs need gradients:
//   linear: dx = g w,  dw += g^T x,  db += sum_rows g
//   conv2d: dx = conv_transpose(g, w),  dw += correlate(x, g),  db += sum_{n,i,j} g
// An undefined bias Variable means "no bias"; it is then not an input of the node. The weight
// gradient is added straight into the weight's gradient buffer (for parameters, a view into the
// flat gradient buffer), so no temporary is made for it (on the GPU, bf16 or channels-last images
// excepted: see tensor/conv.cu, and autograd/conv_weight_forms.h for a training step's way).
#include "autograd/conv_weight_forms.h"
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/linear.h"

namespace qnn {

namespace {

// The gradient buffers the weight kernels add into: the weight's and, when present and wanted,
// the bias's. A weight that needs no gradient still gets a scratch buffer when the bias needs one
// (the kernels compute both together); that case is rare (frozen weights, trained bias).
struct WeightGrads {
  Tensor dw, db;
};

WeightGrads weight_grad_buffers(Node& self, bool has_bias) {
  WeightGrads g;
  Node& w = *self.inputs[1];
  const bool want_db = has_bias && self.inputs[2]->requires_grad;
  if (w.requires_grad) g.dw = grad_slot(w);
  else if (want_db) g.dw = Tensor::zeros(w.value.shape(), w.value.device());
  if (want_db) g.db = grad_slot(*self.inputs[2]);
  return g;
}

std::vector<Variable> op_inputs(const Variable& x, const Variable& w, const Variable& b) {
  if (b.defined()) return {x, w, b};
  return {x, w};
}

}  // namespace

Variable linear(const Variable& x, const Variable& w, const Variable& b) {
  check_defined("linear", x, "x");
  check_defined("linear", w, "w");
  const bool has_bias = b.defined();
  Tensor y = linear_forward(x.value(), w.value(), has_bias ? b.value() : Tensor());
  return make_op_result("linear", y, op_inputs(x, w, b), [has_bias](Node& self) {
    Node& nx = *self.inputs[0];
    Node& nw = *self.inputs[1];
    if (nx.requires_grad) accumulate_grad(nx, linear_backward_data(self.grad, nw.value));
    WeightGrads g = weight_grad_buffers(self, has_bias);
    if (g.dw.defined()) linear_backward_weight(nx.value, self.grad, g.dw, g.db);
  });
}

Variable conv2d(const Variable& x, const Variable& w, const Variable& b, ConvParams p) {
  check_defined("conv2d", x, "x");
  check_defined("conv2d", w, "w");
  const bool has_bias = b.defined();
  // The weight in the form the device multiplies (on the GPU: bf16 for bf16 images, KRSC for
  // channels-last ones; tensor/conv.h), kept for the input gradient: inside a training step that
  // keeps its weights' forms, that form and its gradient (autograd/conv_weight_forms.h), else a
  // copy made here.
  Tensor w_used, dw_form;
  if (has_bias || !ConvWeightForms::lookup(w, x.value(), w_used, dw_form)) w_used = conv2d_weight_for(x.value(), w.value());
  Tensor y = conv2d_forward(x.value(), w_used, has_bias ? b.value() : Tensor(), p);
  return make_op_result("conv2d", y, op_inputs(x, w, b), [has_bias, p, w_used, dw_form](Node& self) {
    Node& nx = *self.inputs[0];
    if (nx.requires_grad && nx.grad.defined())  // added into the gradient already there
      conv2d_backward_data_add(self.grad, w_used, nx.grad, p);
    else if (nx.requires_grad)
      accumulate_grad(nx, conv2d_backward_data(self.grad, w_used, nx.value.shape(), p));
    if (dw_form.defined()) {  // folded into the weight's gradient at the end of backward
      Tensor form_grad = dw_form;
      if (self.inputs[1]->requires_grad) conv2d_backward_weight_into_form(nx.value, self.grad, form_grad, p);
      return;
    }
    WeightGrads g = weight_grad_buffers(self, has_bias);
    if (g.dw.defined()) conv2d_backward_weight(nx.value, self.grad, g.dw, g.db, p);
  });
}

}  // namespace qnn
