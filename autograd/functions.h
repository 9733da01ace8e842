// Differentiable functions on Variables: each computes its value with a kernel from tensor/ and
// records a backward closure (autograd/variable.h). These are what nn layers are built from.
// Shapes follow PyTorch: images NCHW, Linear weight [out, in], conv weight [O, C, KH, KW].
#pragma once
#include <cstdint>
#include <vector>

#include "autograd/variable.h"
#include "tensor/conv.h"

namespace qnn {

// Element-wise (shapes must match exactly; no broadcasting).
Variable add(const Variable& a, const Variable& b);
Variable sub(const Variable& a, const Variable& b);
Variable mul(const Variable& a, const Variable& b);
Variable scale(const Variable& a, float s);
Variable relu(const Variable& a);
// relu(a + b): the residual join of a ResNet block in one pass.
Variable add_relu(const Variable& a, const Variable& b);

// Reductions to a one-element tensor of shape [1].
Variable sum(const Variable& a);
Variable mean(const Variable& a);

Variable reshape(const Variable& a, Shape shape);
// The same values stored channels-last (an image batch on the GPU, tensor/tensor.h); the
// gradient goes back in x's format.
Variable to_channels_last(const Variable& x);
// x in another element type (float32 <-> bf16, on the GPU); its gradient comes back in x's type.
Variable to_dtype(const Variable& x, DType dtype);

// Per-channel scaling by s [C], C = x.size(axis): y = x * s[c] or y = x / s[c] (batch-norm
// folding, nn/conv_bn.h; kernels in tensor/channel_scale.h).
Variable mul_channels(const Variable& x, const Variable& s, int axis);
Variable div_channels(const Variable& x, const Variable& s, int axis);

// x [N, in], w [out, in], b [out] or undefined Variable -> [N, out] = x w^T + b.
Variable linear(const Variable& x, const Variable& w, const Variable& b);

// x [N, C, H, W], w [O, C, KH, KW], b [O] or undefined Variable.
Variable conv2d(const Variable& x, const Variable& w, const Variable& b, ConvParams p);

// Batch normalisation over (N, H, W) per channel C of x [N, C, H, W] (PyTorch's BatchNorm2d).
// Training: normalises with the batch's mean and biased variance, and updates the running
// statistics in place: running = (1 - momentum) * running + momentum * batch statistic, with the
// unbiased variance (n / (n - 1)). Evaluation: normalises with the running statistics.
// gamma, beta: [C] parameters; running_mean, running_var: [C] buffers (not differentiated).
// batches_tracked, where given (the layer's one-element count), is incremented in training.
// Backward adds dgamma and dbeta straight into gamma's and beta's gradients when they exist.
Variable batch_norm(const Variable& x, const Variable& gamma, const Variable& beta,
                    Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                    float eps, Tensor* batches_tracked = nullptr);

// relu(batch_norm(...)), or relu(batch_norm(...) + residual) when residual is defined (x's shape):
// the two ends of a ResNet block's convolutions as one node and one pass over the output, with
// results bit-identical to the separate ops; the pre-ReLU tensor is never kept.
Variable batch_norm_relu(const Variable& x, const Variable& gamma, const Variable& beta,
                         Tensor& running_mean, Tensor& running_var, bool training, float momentum,
                         float eps, const Variable& residual = Variable(),
                         Tensor* batches_tracked = nullptr);

// Max pooling over kernel x kernel windows (zero-padding never wins: padded cells are -inf).
Variable max_pool2d(const Variable& x, int kernel, int stride, int padding);
// Mean over H and W: [N, C, H, W] -> [N, C].
Variable global_avg_pool(const Variable& x);

// Option-A ResNet shortcut (He et al. 2016, CIFAR): takes every `stride`-th pixel and pads the
// channels with zeros, half before and half after: [N, C, H, W] -> [N, out_channels, H/s, W/s].
Variable shortcut_pad(const Variable& x, int64_t out_channels, int stride);

// Mean over the batch of -log softmax(logits)[label]: logits [N, classes], labels in [0, classes)
// as a float tensor [N] on the logits' device (tensor/softmax_xent.h), or as integers.
Variable cross_entropy(const Variable& logits, const Tensor& labels);
Variable cross_entropy(const Variable& logits, const std::vector<int32_t>& labels);

}  // namespace qnn
