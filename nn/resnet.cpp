// CIFAR ResNet (see nn/resnet.h).
#include "nn/resnet.h"

#include "nn/init.h"

namespace qnn {

BasicBlock::BasicBlock(int64_t in_channels, int64_t out_channels, int stride, Shortcut shortcut)
    : out_channels_(out_channels), stride_(stride) {
  conv1_ = register_module("conv1", kaiming_conv(in_channels, out_channels, 3, stride, 1));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out_channels));
  conv2_ = register_module("conv2", kaiming_conv(out_channels, out_channels, 3, 1, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels));
  if (stride != 1 || in_channels != out_channels) {
    if (shortcut == Shortcut::A) {
      pad_shortcut_ = true;
    } else {
      projection_ = register_module("shortcut", std::make_shared<Sequential>());
      projection_->add(kaiming_conv(in_channels, out_channels, 1, stride, 0));
      projection_->add(std::make_shared<BatchNorm2d>(out_channels));
    }
  }
}

Variable BasicBlock::forward(const Variable& x) {
  // relu(bn1(conv1(x))), then relu(bn2(conv2(h)) + shortcut), each as one fused op.
  Variable h = bn1_->forward_relu(conv1_->forward(x));
  Variable identity = x;
  if (pad_shortcut_) identity = shortcut_pad(x, out_channels_, stride_);
  if (projection_) identity = projection_->forward(x);
  return bn2_->forward_relu(conv2_->forward(h), identity);
}

CifarResNet::CifarResNet(int depth, int64_t num_classes, Shortcut shortcut) : depth_(depth) {
  QNN_CHECK(depth >= 8 && (depth - 2) % 6 == 0, "depth must be 6n+2 (20, 32, 44, 56, 110), got ", depth);
  const int blocks = (depth - 2) / 6;
  conv1_ = register_module("conv1", kaiming_conv(3, 16, 3, 1, 1));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(16));
  int64_t in = 16;
  for (int stage = 0; stage < 3; ++stage) {
    const int64_t width = 16 << stage;
    layers_[stage] = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks; ++b) {
      layers_[stage]->add(std::make_shared<BasicBlock>(in, width, (stage > 0 && b == 0) ? 2 : 1, shortcut));
      in = width;
    }
  }
  fc_ = register_module("fc", std::make_shared<Linear>(64, num_classes));
}

Variable CifarResNet::forward(const Variable& x) {
  QNN_CHECK(x.dim() == 4 && x.size(1) == 3, "expects images [N, 3, H, W], got ", shape_str(x.shape()));
  Variable h = bn1_->forward_relu(conv1_->forward(image_input(x)));
  for (auto& stage : layers_) h = stage->forward(h);
  return fc_->forward(global_avg_pool(h));
}

int cifar_resnet_depth(const std::string& arch) {
  for (int depth : {20, 32, 44, 56, 110})
    if (arch == "resnet" + std::to_string(depth)) return depth;
  throw Error("[cifar_resnet_depth] unknown architecture '" + arch +
              "'; valid: resnet20, resnet32, resnet44, resnet56, resnet110");
}

}  // namespace qnn
