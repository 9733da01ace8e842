// Differentiable clipping quantizers: PACT, DoReFa and WRPN (see qat/functions.h; kernels in
// qat/pact.h, qat/dorefa.h and qat/uniform_quantize.h).
//   pact:                 dx = dy where 0 < x < alpha;  dalpha = sum of dy where x >= alpha
//   dorefa_normalize:     dw through tanh and the max (qat/fake_quant_math.h)
//   dorefa_weight_levels: df = 2 dy (the straight-through estimator of 2 quantize_k(f) - 1)
//   dorefa_activation, wrpn_weight, wrpn_activation: dx = dy inside the clamp range
// Each node keeps only what its backward reads: x (its input), and for the normalisation
// tanh(w) and the max.
#include "autograd/functions_internal.h"
#include "qat/dorefa.h"
#include "qat/functions.h"
#include "qat/uniform_quantize.h"
#include "tensor/elementwise.h"

namespace qnn {

namespace {

// A clamp-then-quantize op on [lo, hi] with `steps` steps and the straight-through gradient.
Variable clamp_quantize(const char* op, const Variable& x, float lo, float hi, int64_t steps) {
  check_defined(op, x, "x");
  Tensor y = clamp_quantize_forward(x.value(), lo, hi, steps);
  return make_op_result(op, y, {x}, [lo, hi](Node& self) {
    send_grad(self, {0}, clamp_quantize_backward(self.grad, self.inputs[0]->value, lo, hi));
  });
}

}  // namespace

Variable pact(const Variable& x, const Variable& alpha, int bits, float alpha_min) {
  check_defined("pact", x, "x");
  check_defined("pact", alpha, "alpha");
  Tensor y = pact_forward(x.value(), alpha.value(), bits, alpha_min);
  return make_op_result("pact", y, {x, alpha}, [bits, alpha_min](Node& self) {
    Node& nx = *self.inputs[0];
    Node& na = *self.inputs[1];
    PactGradients g = pact_backward(self.grad, nx.value, na.value, bits, alpha_min);
    if (nx.requires_grad) accumulate_grad(nx, g.dx);
    if (na.requires_grad) accumulate_grad(na, g.dalpha);
  });
}

Variable dorefa_normalize(const Variable& w) {
  check_defined("dorefa_normalize", w, "w");
  DorefaNormalized n = dorefa_normalize_forward(w.value());
  return make_op_result("dorefa_normalize", n.f, {w}, [t = n.t, max_abs = n.max_abs](Node& self) {
    send_grad(self, {0}, dorefa_normalize_backward(self.grad, t, max_abs));
  });
}

Variable dorefa_weight_levels(const Variable& f, int bits) {
  check_defined("dorefa_weight_levels", f, "f");
  Tensor y = dorefa_weight_levels(f.value(), bits);
  return make_op_result("dorefa_weight_levels", y, {f},
                        [](Node& self) { send_grad(self, {0}, scale(self.grad, 2.0f)); });
}

Variable dorefa_weight(const Variable& w, int bits) {
  quant_range(bits, false);  // checks bits before any work
  return dorefa_weight_levels(dorefa_normalize(w), bits);
}

Variable dorefa_activation(const Variable& x, int bits) {
  return clamp_quantize("dorefa_activation", x, 0.0f, 1.0f, quant_range(bits, false).qmax);
}

Variable wrpn_weight(const Variable& w, int bits) {
  return clamp_quantize("wrpn_weight", w, -1.0f, 1.0f, quant_range(bits, true).qmax);
}

Variable wrpn_activation(const Variable& x, int bits) {
  return clamp_quantize("wrpn_activation", x, 0.0f, 1.0f, quant_range(bits, false).qmax);
}

}  // namespace qnn
