// ResNets for CIFAR (He et al., "Deep Residual Learning for Image Recognition", 2016, sec. 4.2).
//
// depth = 6n + 2 (20, 32, 44, 56, 110): a 3x3 conv to 16 channels, then three stages of n basic
// blocks at 16, 32 and 64 channels (32x32, 16x16, 8x8 maps; the first block of stages 2 and 3
// has stride 2), global average pooling and a linear classifier. A basic block is
//   out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).
// Shortcuts where the shape changes: option A (the paper's CIFAR choice, no parameters) takes
// every second pixel and zero-pads the channels; option B is a 1x1 strided conv + batch norm.
// Convolutions are Kaiming-normal initialised (fan_out, ReLU gain); BN weight 1, bias 0.
// ResNet-20 with option A has exactly 269,722 parameters.
// Names follow PyTorch: conv1, bn1, layer1.0.conv1, ..., layer3.2.bn2, fc; option-B shortcuts
// are layerK.0.shortcut.0 (conv) and layerK.0.shortcut.1 (bn).
#pragma once
#include <memory>
#include <string>

#include "nn/layers.h"

namespace qnn {

enum class Shortcut { A, B };

class BasicBlock : public Module {
 public:
  BasicBlock(int64_t in_channels, int64_t out_channels, int stride, Shortcut shortcut);
  Variable forward(const Variable& x) override;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
  std::shared_ptr<Sequential> projection_;  // option B only
  int64_t out_channels_;
  int stride_;
  bool pad_shortcut_ = false;  // option A with a shape change
};

class CifarResNet : public Module {
 public:
  CifarResNet(int depth, int64_t num_classes = 10, Shortcut shortcut = Shortcut::A);
  Variable forward(const Variable& x) override;
  int depth() const { return depth_; }

 private:
  int depth_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Sequential> layers_[3];
  std::shared_ptr<Linear> fc_;
};

// "resnet20", "resnet32", "resnet44", "resnet56", "resnet110" -> depth; an error listing the
// valid names otherwise.
int cifar_resnet_depth(const std::string& arch);

}  // namespace qnn
