// Differentiable affine fake quantization, straight-through and learnable (see qat/functions.h;
// the kernels and their gradients are in qat/fake_quantize.h). The straight-through node keeps
// the qparams it was given (the observer's, which may be replaced before backward runs); the
// learnable node reads x, scale and zero point from its inputs.
#include <cmath>

#include "autograd/functions_internal.h"
#include "qat/fake_quantize.h"
#include "qat/functions.h"

namespace qnn {

namespace {

// The straight-through op takes PyTorch's integer zero points: whole numbers inside the range.
void check_integer_zero_points(const Tensor& zero_point, QuantRange range) {
  if (zero_point.is_cuda()) return;  // not read back from the GPU (see qat/fake_quantize.h)
  for (int64_t c = 0; c < zero_point.numel(); ++c) {
    const float z = zero_point.data()[c];
    if (!(z == std::nearbyint(z) && z >= float(range.qmin) && z <= float(range.qmax)))
      throw Error(str("[fake_quantize] zero points must be whole numbers in [", range.qmin, ", ", range.qmax,
                      "], found ", z, zero_point.numel() > 1 ? " in channel " + std::to_string(c) : std::string()));
  }
}

}  // namespace

Variable fake_quantize(const Variable& x, const Tensor& scale, const Tensor& zero_point, QuantRange range,
                       Granularity granularity) {
  check_defined("fake_quantize", x, "x");
  check_qparams("fake_quantize", x.value(), scale, zero_point, range, granularity);
  check_integer_zero_points(zero_point, range);
  Tensor y = fake_quantize_forward(x.value(), scale, zero_point, range, granularity);
  return make_op_result("fake_quantize", y, {x}, [scale, zero_point, range, granularity](Node& self) {
    Node& nx = *self.inputs[0];
    send_grad(self, {0}, fake_quantize_backward(self.grad, nx.value, scale, zero_point, range, granularity));
  });
}

Variable fake_quantize_learnable(const Variable& x, const Variable& scale, const Variable& zero_point,
                                 QuantRange range, Granularity granularity, float grad_factor) {
  check_defined("fake_quantize_learnable", x, "x");
  check_defined("fake_quantize_learnable", scale, "scale");
  check_defined("fake_quantize_learnable", zero_point, "zero_point");
  QNN_CHECK(std::isfinite(grad_factor), "grad_factor must be finite, found ", grad_factor);
  Tensor y = fake_quantize_forward(x.value(), scale.value(), zero_point.value(), range, granularity);
  return make_op_result(
      "fake_quantize_learnable", y, {x, scale, zero_point}, [range, granularity, grad_factor](Node& self) {
        Node& nx = *self.inputs[0];
        Node& ns = *self.inputs[1];
        Node& nz = *self.inputs[2];
        LearnableGradients g = fake_quantize_learnable_backward(self.grad, nx.value, ns.value, nz.value, range,
                                                                granularity, grad_factor);
        if (nx.requires_grad) accumulate_grad(nx, g.dx);
        if (ns.requires_grad) accumulate_grad(ns, g.dscale);
        if (nz.requires_grad) accumulate_grad(nz, g.dzero_point);
      });
}

}  // namespace qnn
