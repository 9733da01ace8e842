// The distinct convolution shapes of the networks bench/conv_layers.cpp times, with how many
// layers of each network have each shape. bench/conv_layers_torch.py lists the same shapes.
//   resnet20: CIFAR ResNet-20 (He et al., "Deep residual learning for image recognition", 2016)
//   resnet18, resnet50: torchvision's ImageNet models at 224x224 (ResNet-50 with the stride on the
//   3x3 convolution of each bottleneck, as torchvision builds it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

struct ConvShape {
  int64_t c, o, hw;  // input channels, output channels, input height = width
  int k, stride, pad;
  int count;         // layers of the network with this shape
  bool needs_dx;     // false for the first layer (its input is the image)
};

struct ConvNet {
  const char* name;
  int64_t batch;
  int repeats;  // default repeats: enough for a stable best, a minute or two in all
  std::vector<ConvShape> layers;
};

inline const ConvNet* find_conv_net(const std::string& name) {
  static const std::vector<ConvNet> nets = {
      {"resnet20", 128, 10,
       {{3, 16, 32, 3, 1, 1, 1, false},
        {16, 16, 32, 3, 1, 1, 6, true},
        {16, 32, 32, 3, 2, 1, 1, true},
        {32, 32, 16, 3, 1, 1, 5, true},
        {32, 64, 16, 3, 2, 1, 1, true},
        {64, 64, 8, 3, 1, 1, 5, true}}},
      {"resnet18", 16, 3,
       {{3, 64, 224, 7, 2, 3, 1, false},
        {64, 64, 56, 3, 1, 1, 4, true},
        {64, 128, 56, 3, 2, 1, 1, true},
        {64, 128, 56, 1, 2, 0, 1, true},
        {128, 128, 28, 3, 1, 1, 3, true},
        {128, 256, 28, 3, 2, 1, 1, true},
        {128, 256, 28, 1, 2, 0, 1, true},
        {256, 256, 14, 3, 1, 1, 3, true},
        {256, 512, 14, 3, 2, 1, 1, true},
        {256, 512, 14, 1, 2, 0, 1, true},
        {512, 512, 7, 3, 1, 1, 3, true}}},
      {"resnet50", 16, 2,
       {{3, 64, 224, 7, 2, 3, 1, false},
        // layer1, 56x56: width 64, out 256
        {64, 64, 56, 1, 1, 0, 1, true},
        {256, 64, 56, 1, 1, 0, 2, true},
        {64, 64, 56, 3, 1, 1, 3, true},
        {64, 256, 56, 1, 1, 0, 4, true},  // 3 expansions + the projection shortcut
        // layer2, 56 -> 28: width 128, out 512
        {256, 128, 56, 1, 1, 0, 1, true},
        {128, 128, 56, 3, 2, 1, 1, true},
        {256, 512, 56, 1, 2, 0, 1, true},
        {128, 512, 28, 1, 1, 0, 4, true},
        {512, 128, 28, 1, 1, 0, 3, true},
        {128, 128, 28, 3, 1, 1, 3, true},
        // layer3, 28 -> 14: width 256, out 1024
        {512, 256, 28, 1, 1, 0, 1, true},
        {256, 256, 28, 3, 2, 1, 1, true},
        {512, 1024, 28, 1, 2, 0, 1, true},
        {256, 1024, 14, 1, 1, 0, 6, true},
        {1024, 256, 14, 1, 1, 0, 5, true},
        {256, 256, 14, 3, 1, 1, 5, true},
        // layer4, 14 -> 7: width 512, out 2048
        {1024, 512, 14, 1, 1, 0, 1, true},
        {512, 512, 14, 3, 2, 1, 1, true},
        {1024, 2048, 14, 1, 2, 0, 1, true},
        {512, 2048, 7, 1, 1, 0, 3, true},
        {2048, 512, 7, 1, 1, 0, 2, true},
        {512, 512, 7, 3, 1, 1, 2, true}}},
  };
  for (const ConvNet& n : nets)
    if (name == n.name) return &n;
  return nullptr;
}

// "64->128 3x3/2 56->28" style label.
inline std::string conv_shape_name(const ConvShape& s) {
  const int64_t out = (s.hw + 2 * s.pad - s.k) / s.stride + 1;
  std::string name = std::to_string(s.c) + "->" + std::to_string(s.o) + " " + std::to_string(s.k) + "x" +
                     std::to_string(s.k);
  if (s.stride != 1) name += "/" + std::to_string(s.stride);
  name += " " + std::to_string(s.hw);
  if (out != s.hw) name += "->" + std::to_string(out);
  return name;
}

}  // namespace qnn
