// Differentiable batch normalisation (see autograd/functions.h and, for the formulas,
// tensor/batchnorm.h). The node keeps x (its input) and two [C] tensors: the mean and invstd that
// normalised x, batch statistics in training and running ones in evaluation. Nothing the size of
// x is saved beyond x itself.
#include "autograd/functions.h"
#include "autograd/functions_internal.h"
#include "tensor/batchnorm.h"
#include "tensor/channel_scale.h"

namespace qnn {

Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                    float eps) {
  check_defined("batch_norm", x, "x");
  check_defined("batch_norm", gamma, "gamma");
  check_defined("batch_norm", beta, "beta");
  QNN_CHECK(eps > 0.0f && momentum >= 0.0f && momentum <= 1.0f,
            "expected eps > 0 and 0 <= momentum <= 1, got eps ", eps, ", momentum ", momentum);
  Tensor y, mean, invstd;
  if (training) {
    y = batch_norm_forward_training(x.value(), gamma.value(), beta.value(), running_mean,
                                    running_var, momentum, eps, mean, invstd);
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
                                           nx.requires_grad);
    if (nx.requires_grad) accumulate_grad(nx, g.dx);
    if (ng.requires_grad) accumulate_grad(ng, g.dgamma);
    if (nb.requires_grad) accumulate_grad(nb, g.dbeta);
  });
}

}  // namespace qnn
