// Batch-norm folding for quantization-aware training: a convolution and the batch norm after it
// trained as the single convolution an integer engine will run, the way PyTorch's ConvBn2d
// (torch.ao.nn.intrinsic.qat) does it, after Jacob et al., "Quantization and Training of Neural
// Networks for Efficient Integer-Arithmetic-Only Inference" (CVPR 2018), section 3.2, and
// Krishnamoorthi, "Quantizing deep convolutional networks for efficient inference" (2018), 3.2.2.
//
// At inference a batch norm after a convolution is an affine map per output channel c, so it
// folds into the convolution: w_fold = w * f, bias_fold = beta - f * mu, with
//   sigma = sqrt(running_var + eps),   f = gamma / sigma.
// Quantizing w_fold, not w, is what the deployed network computes. While training, the batch
// norm should still normalise with the batch's statistics, so the folded output is divided by f
// again before it:
//   y = bn( conv(x, Q(w * f)) / f )
// Training: bn uses the batch mean and variance (and updates the running ones); the weight the
// quantizer sees is scaled by the running statistics, as in PyTorch ("approximate" folding:
// one convolution, no second pass for the batch's own sigma). Evaluation, or a frozen batch norm
// (BatchNorm2d::frozen, PyTorch's freeze_bn_stats): bn uses mu and sigma, and the expression is
// exactly conv(x, Q(w f)) + beta - f mu, the folded convolution. Gradients reach w, gamma (through
// f as well as through bn) and beta.
#pragma once
#include "nn/layers.h"
#include "nn/qat_layers.h"

namespace qnn {

// f = gamma / sqrt(running_var + eps), a Variable that carries gamma's gradient.
Variable fold_factor(const BatchNorm2d& bn);

// The folded convolution + batch norm above; conv has no bias.
Variable folded_conv_bn(const Variable& x, QatConv2d& conv, BatchNorm2d& bn);

}  // namespace qnn
