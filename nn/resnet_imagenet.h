// ResNets for ImageNet (He et al., "Deep Residual Learning for Image Recognition", 2016, table 1):
// ResNet-18 and ResNet-34 built from basic blocks, ResNet-50 from bottleneck blocks, with the
// module and parameter names of torchvision's models/resnet.py, so a torchvision state dict
// converted to safetensors (scripts/convert_torchvision.py) loads name for name.
//
//   conv1    7x7 conv, 64 channels, stride 2, padding 3, no bias      [N, 3, H, W] -> H/2
//   bn1, relu, maxpool (3x3, stride 2, padding 1)                                    -> H/4
//   layer1..layer4   stages of blocks "0", "1", ... at 64, 128, 256, 512 base channels;
//                    the first block of layer2..layer4 has stride 2              -> H/32
//   global average pool, fc (Linear 512 * expansion -> num_classes)
//
// Basic block (expansion 1):      out = relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)
//   conv1 3x3 stride s, conv2 3x3.
// Bottleneck block (expansion 4): out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))
//                                        + identity)
//   conv1 1x1 to the base width, conv2 3x3 stride s, conv3 1x1 to 4x the base width. The stride
//   sits on the 3x3 conv, as in torchvision (the "ResNet v1.5" variant; the paper strides the
//   first 1x1 conv).
// identity = x, or downsample(x) where the shape changes: downsample.0 a 1x1 conv with stride s
// and no bias, downsample.1 a BatchNorm2d (the paper's projection shortcut, option B).
//
// Initialisation as torchvision: convolutions Kaiming-normal (fan_out, ReLU gain), BN weight 1
// and bias 0, fc PyTorch's default Linear init. With zero_init_residual the last BN weight of
// every block (bn2 of a basic block, bn3 of a bottleneck) starts at 0, so each block starts as
// the identity (Goyal et al., "Accurate, Large Minibatch SGD", 2017).
// Parameter counts with 1000 classes: ResNet-18 11,689,512; ResNet-34 21,797,672;
// ResNet-50 25,557,032.
#pragma once
#include <array>
#include <memory>
#include <string>

#include "nn/layers.h"

namespace qnn {

enum class ResidualBlockKind { Basic, Bottleneck };

// A block of an ImageNet ResNet; last_bn() is the BN whose weight zero_init_residual zeroes.
class ResidualBlock : public Module {
 public:
  virtual BatchNorm2d& last_bn() = 0;

 protected:
  // Registers downsample.0 (1x1 conv, stride `stride`) and downsample.1 (BN) when the block
  // changes the shape (stride != 1 or in_channels != out_channels).
  void add_downsample_if_needed(int64_t in_channels, int64_t out_channels, int stride);
  Variable shortcut(const Variable& x);

 private:
  std::shared_ptr<Sequential> downsample_;
};

// Two 3x3 convs; out_channels = base width (expansion 1).
class ImageNetBasicBlock : public ResidualBlock {
 public:
  ImageNetBasicBlock(int64_t in_channels, int64_t width, int stride);
  Variable forward(const Variable& x) override;
  BatchNorm2d& last_bn() override { return *bn2_; }
  static constexpr int64_t expansion = 1;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_;
};

// 1x1 (to width), 3x3 with the stride, 1x1 (to 4 * width).
class BottleneckBlock : public ResidualBlock {
 public:
  BottleneckBlock(int64_t in_channels, int64_t width, int stride);
  Variable forward(const Variable& x) override;
  BatchNorm2d& last_bn() override { return *bn3_; }
  static constexpr int64_t expansion = 4;

 private:
  std::shared_ptr<Conv2d> conv1_, conv2_, conv3_;
  std::shared_ptr<BatchNorm2d> bn1_, bn2_, bn3_;
};

class ImageNetResNet : public Module {
 public:
  // blocks_per_stage: {2, 2, 2, 2} for ResNet-18, {3, 4, 6, 3} for ResNet-34 and ResNet-50.
  ImageNetResNet(ResidualBlockKind kind, std::array<int, 4> blocks_per_stage, int64_t num_classes = 1000,
                 bool zero_init_residual = false);
  // x [N, 3, H, W] -> logits [N, num_classes]; H and W are reduced 32x (rounding up) before the
  // global average pool.
  Variable forward(const Variable& x) override;
  ResidualBlockKind kind() const { return kind_; }
  // Every block in order (layer1.0, layer1.1, ..., layer4.last).
  const std::vector<std::shared_ptr<ResidualBlock>>& blocks() const { return blocks_; }

 private:
  ResidualBlockKind kind_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Sequential> layers_[4];
  std::shared_ptr<Linear> fc_;
  std::vector<std::shared_ptr<ResidualBlock>> blocks_;
};

// "resnet18", "resnet34" or "resnet50" with `num_classes` outputs; an error listing the valid
// names otherwise.
std::shared_ptr<ImageNetResNet> make_imagenet_resnet(const std::string& arch, int64_t num_classes = 1000,
                                                     bool zero_init_residual = false);

}  // namespace qnn
