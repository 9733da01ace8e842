// Batch-norm folding for QAT (see nn/qat_conv_bn.h).
#include "nn/qat_conv_bn.h"

#include "tensor/channel_scale.h"

namespace qnn {

Variable fold_factor(const BatchNorm2d& bn) {
  const Variable sigma(sqrt_plus(*bn.running_var, bn.eps));  // a constant: running statistics get no gradient
  return div_channels(bn.weight, sigma, 0);
}

Variable folded_conv_bn(const Variable& x, QatConv2d& conv, BatchNorm2d& bn) {
  QNN_CHECK(!conv.bias.defined(), "batch-norm folding expects a convolution without bias");
  QNN_CHECK(bn.weight.size(0) == conv.weight.size(0), "the batch norm has ", bn.weight.size(0),
            " channels, the convolution ", conv.weight.size(0), " outputs");
  const Variable f = fold_factor(bn);
  const Variable folded_weight = conv.weight_fake_quant->forward(mul_channels(conv.weight, f, 0));
  const Variable y = div_channels(conv2d(x, folded_weight, Variable(), conv.params), f, 1);
  return bn.forward(y);
}

}  // namespace qnn
