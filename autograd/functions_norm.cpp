// Differentiable batch normalisation (see autograd/functions.h and, for the formulas,
// tensor/batchnorm.h). The node keeps x (its input) and two [C] tensors: the mean and invstd that
// normalised x, batch statistics in training and running ones in evaluation. Nothing the size of
// x is saved beyond x itself.
//
// batch_norm_relu is relu(batch_norm(x)) or relu(batch_norm(x) + residual) as one node: its
// value is the ReLU'd output and it keeps x, so the pre-ReLU tensor is never stored. Backward
// applies the ReLU mask (y > 0) inside batch_norm_relu_backward; without a residual the mask is
// recomputed from x and the per-channel map forward applied (2C floats kept), so y is not read.
// With a residual, the masked gradient g' = relu_backward(g, y) is written out by the same pass
// and handed to the residual as its gradient (no copy: nothing else holds it).
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/batchnorm.h"
#include "tensor/channel_scale.h"

namespace qnn {

namespace {
// gamma's and beta's gradients where they exist already (a parameter's is a view into the flat
// gradient buffer): backward adds into them, with no separate addition.
BatchNormGradTargets grad_targets(const Node& gamma, const Node& beta) {
  BatchNormGradTargets into;
  if (gamma.requires_grad) into.dgamma = gamma.grad;
  if (beta.requires_grad) into.dbeta = beta.grad;
  return into;
}

// Hands dgamma and dbeta to gamma and beta where backward did not add them in already.
void keep_affine_grads(Node& gamma, Node& beta, const BatchNormGrads& g) {
  if (gamma.requires_grad && !gamma.grad.defined()) accumulate_grad(gamma, g.dgamma);
  if (beta.requires_grad && !beta.grad.defined()) accumulate_grad(beta, g.dbeta);
}

void check_batch_norm_args(const char* op, const Variable& x, const Variable& gamma,
                           const Variable& beta, float momentum, float eps) {
  check_defined(op, x, "x");
  check_defined(op, gamma, "gamma");
  check_defined(op, beta, "beta");
  QNN_CHECK(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f,
            "expected eps > 0 and 0 <= momentum <= 1, got eps ", eps, ", momentum ", momentum);
}
}  // namespace

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                    float eps, Tensor* batches_tracked) {
  check_batch_norm_args("batch_norm", x, gamma, beta, momentum, eps);
  Tensor y, mean, invstd;
  if (training) {
    y = batch_norm_forward_training(x.value(), gamma.value(), beta.value(), running_mean,
                                    running_var, momentum, eps, mean, invstd, batches_tracked);
  } else {
    y = batch_norm_forward_eval(x.value(), gamma.value(), beta.value(), running_mean, running_var, eps);
    if (grad_enabled()) {  // the statistics as they were, should the buffers change before backward
      mean = running_mean.clone();
      invstd = inverse_std(running_var, eps);  // on the buffers' device: no wait for the host
    }
  }
  return make_op_result("batch_norm", y, {x, gamma, beta}, [mean, invstd, training](Node& self) {
    Node& nx = *self.inputs[0];
    Node& ng = *self.inputs[1];
    Node& nb = *self.inputs[2];
    BatchNormGrads g = batch_norm_backward(self.grad, nx.value, ng.value, mean, invstd, training,
                                           nx.requires_grad, grad_targets(ng, nb));
    if (nx.requires_grad) accumulate_grad(nx, g.dx);
    keep_affine_grads(ng, nb, g);
  });
}

Variable batch_norm_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                         Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                         float eps, const Variable& residual, Tensor* batches_tracked) {
  check_batch_norm_args("batch_norm_relu", x, gamma, beta, momentum, eps);
  const Tensor r = residual.defined() ? residual.value() : Tensor();
  // Without a residual, backward recomputes the ReLU's mask from x and the map applied.
  Tensor y, mean, invstd, affine;
  Tensor* save_affine = residual.defined() ? nullptr : &affine;
  if (training) {
    y = batch_norm_relu_forward_training(x.value(), r, gamma.value(), beta.value(), running_mean,
                                         running_var, momentum, eps, mean, invstd, save_affine,
                                         batches_tracked);
  } else {
    y = batch_norm_relu_forward_eval(x.value(), r, gamma.value(), beta.value(), running_mean,
                                     running_var, eps, save_affine);
    if (grad_enabled()) {  // as in batch_norm
      mean = running_mean.clone();
      invstd = inverse_std(running_var, eps);
    }
  }
  std::vector<Variable> inputs{x, gamma, beta};
  if (residual.defined()) inputs.push_back(residual);
  const bool has_residual = residual.defined();
  return make_op_result("batch_norm_relu", y, inputs, [mean, invstd, affine, training, has_residual](Node& self) {
    Node& nx = *self.inputs[0];
    Node& ng = *self.inputs[1];
    Node& nb = *self.inputs[2];
    // The masked gradient g' is kept for a residual that needs it.
    const bool keep = has_residual && self.inputs[3]->requires_grad;
    BatchNormGrads g = batch_norm_relu_backward(self.grad, self.value, nx.value, ng.value, mean,
                                                invstd, training, nx.requires_grad, keep, affine,
                                                grad_targets(ng, nb));
    if (nx.requires_grad) accumulate_grad(nx, g.dx);
    keep_affine_grads(ng, nb, g);
    if (keep) accumulate_grad(*self.inputs[3], g.dy_masked);
  });
}

}  // namespace qnn
