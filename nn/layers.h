// The layers a CIFAR ResNet is built from, each a thin Module over a function in
// autograd/functions.h. Parameter and buffer names are PyTorch's (weight, bias, running_mean,
// running_var, num_batches_tracked), so state dicts line up name for name.
#pragma once
#include <memory>

#include "autograd/functions.h"
#include "nn/module.h"

namespace qnn {

// The images a model's first layer reads: x itself, or, where x is on the GPU, x stored
// channels-last if backend_options().channels_last is set (docs/channels-last.md) and in bf16 if
// backend_options().bf16 is (docs/bf16.md). The layers after it keep that format and type.
Variable image_input(const Variable& x);

// y = conv(x, weight) + bias; weight [out, in, k, k], default init U(+-1/sqrt(in*k*k)).
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride = 1, int padding = 0,
         bool bias = false);
  Variable forward(const Variable& x) override;
  Variable weight, bias;  // bias undefined when disabled
  ConvParams params;
};

// A convolution without bias whose weights are Kaiming-normal (fan_out, ReLU gain): how He et
// al. 2016 and torchvision initialise a ResNet's convolutions.
std::shared_ptr<Conv2d> kaiming_conv(int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding);

// Per-channel batch normalisation with running statistics (momentum 0.1, eps 1e-5). A frozen
// layer normalises with its running statistics and leaves them as they are even in training mode
// (gamma and beta still train): PyTorch's freeze_bn_stats, the last phase of QAT.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t channels, float eps = 1e-5f, float momentum = 0.1f);
  Variable forward(const Variable& x) override;
  // relu(forward(x)), or relu(forward(x) + residual) with a residual, as one fused op
  // (autograd/functions.h, batch_norm_relu): same results, one pass, no pre-ReLU tensor kept.
  Variable forward_relu(const Variable& x, const Variable& residual = Variable());
  // Whether forward normalises with (and updates) the batch's statistics.
  bool uses_batch_statistics() const { return training() && !frozen; }
  Variable weight, bias;
  Tensor *running_mean, *running_var, *num_batches_tracked;
  float eps, momentum;
  bool frozen = false;
};

// y = x weight^T + bias; weight [out, in], default init U(+-1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Variable forward(const Variable& x) override;
  Variable weight, bias;
};

class ReLU : public Module {
 public:
  Variable forward(const Variable& x) override { return relu(x); }
};

class MaxPool2d : public Module {
 public:
  MaxPool2d(int kernel, int stride, int padding = 0) : kernel_(kernel), stride_(stride), padding_(padding) {}
  Variable forward(const Variable& x) override { return max_pool2d(x, kernel_, stride_, padding_); }

 private:
  int kernel_, stride_, padding_;
};

// [N, C, H, W] -> [N, C]: the mean over each feature map.
class GlobalAvgPool : public Module {
 public:
  Variable forward(const Variable& x) override { return global_avg_pool(x); }
};

// Children run in order; they are named "0", "1", ... as in PyTorch's nn.Sequential.
class Sequential : public Module {
 public:
  template <class M>
  std::shared_ptr<M> add(std::shared_ptr<M> module) {
    layers_.push_back(module);
    return register_module(std::to_string(layers_.size() - 1), module);
  }
  Variable forward(const Variable& x) override;
  size_t size() const { return layers_.size(); }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

}  // namespace qnn
