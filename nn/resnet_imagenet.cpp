// ImageNet ResNets with torchvision's names (see nn/resnet_imagenet.h).
#include "nn/resnet_imagenet.h"

#include "nn/init.h"

namespace qnn {

namespace {

struct ArchSpec {
  const char* name;
  ResidualBlockKind kind;
  std::array<int, 4> blocks_per_stage;
};
constexpr ArchSpec kArchs[] = {
    {"resnet18", ResidualBlockKind::Basic, {2, 2, 2, 2}},
    {"resnet34", ResidualBlockKind::Basic, {3, 4, 6, 3}},
    {"resnet50", ResidualBlockKind::Bottleneck, {3, 4, 6, 3}},
};
}  // namespace

void ResidualBlock::add_downsample_if_needed(int64_t in_channels, int64_t out_channels, int stride) {
  if (stride == 1 && in_channels == out_channels) return;
  downsample_ = register_module("downsample", std::make_shared<Sequential>());
  downsample_->add(kaiming_conv(in_channels, out_channels, 1, stride, 0));
  downsample_->add(std::make_shared<BatchNorm2d>(out_channels));
}

Variable ResidualBlock::shortcut(const Variable& x) { return downsample_ ? downsample_->forward(x) : x; }

ImageNetBasicBlock::ImageNetBasicBlock(int64_t in_channels, int64_t width, int stride) {
  conv1_ = register_module("conv1", kaiming_conv(in_channels, width, 3, stride, 1));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(width));
  conv2_ = register_module("conv2", kaiming_conv(width, width, 3, 1, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(width));
  add_downsample_if_needed(in_channels, width * expansion, stride);
}

Variable ImageNetBasicBlock::forward(const Variable& x) {
  Variable h = bn1_->forward_relu(conv1_->forward(x));
  return bn2_->forward_relu(conv2_->forward(h), shortcut(x));
}

BottleneckBlock::BottleneckBlock(int64_t in_channels, int64_t width, int stride) {
  conv1_ = register_module("conv1", kaiming_conv(in_channels, width, 1, 1, 0));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(width));
  conv2_ = register_module("conv2", kaiming_conv(width, width, 3, stride, 1));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(width));
  conv3_ = register_module("conv3", kaiming_conv(width, width * expansion, 1, 1, 0));
  bn3_ = register_module("bn3", std::make_shared<BatchNorm2d>(width * expansion));
  add_downsample_if_needed(in_channels, width * expansion, stride);
}

Variable BottleneckBlock::forward(const Variable& x) {
  Variable h = bn1_->forward_relu(conv1_->forward(x));
  h = bn2_->forward_relu(conv2_->forward(h));
  return bn3_->forward_relu(conv3_->forward(h), shortcut(x));
}

ImageNetResNet::ImageNetResNet(ResidualBlockKind kind, std::array<int, 4> blocks_per_stage, int64_t num_classes,
                               bool zero_init_residual)
    : kind_(kind) {
  QNN_CHECK(num_classes > 0, "num_classes must be positive, got ", num_classes);
  for (int blocks : blocks_per_stage)
    QNN_CHECK(blocks > 0, "every stage needs at least one block, got ", blocks, " in {", blocks_per_stage[0], ", ",
              blocks_per_stage[1], ", ", blocks_per_stage[2], ", ", blocks_per_stage[3], "}");
  const int64_t expansion =
      kind == ResidualBlockKind::Basic ? ImageNetBasicBlock::expansion : BottleneckBlock::expansion;
  conv1_ = register_module("conv1", kaiming_conv(3, 64, 7, 2, 3));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
  int64_t in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t width = int64_t{64} << stage;
    layers_[stage] = register_module("layer" + std::to_string(stage + 1), std::make_shared<Sequential>());
    for (int b = 0; b < blocks_per_stage[stage]; ++b) {
      const int stride = (stage > 0 && b == 0) ? 2 : 1;
      std::shared_ptr<ResidualBlock> block;
      if (kind == ResidualBlockKind::Basic)
        block = std::make_shared<ImageNetBasicBlock>(in, width, stride);
      else
        block = std::make_shared<BottleneckBlock>(in, width, stride);
      blocks_.push_back(layers_[stage]->add(block));
      in = width * expansion;
    }
  }
  fc_ = register_module("fc", std::make_shared<Linear>(512 * expansion, num_classes));
  if (zero_init_residual)
    for (auto& block : blocks_) block->last_bn().weight.value().zero();
}

Variable ImageNetResNet::forward(const Variable& x) {
  QNN_CHECK(x.dim() == 4 && x.size(1) == 3, "expects images [N, 3, H, W], got ", shape_str(x.shape()));
  Variable h = bn1_->forward_relu(conv1_->forward(image_input(x)));
  h = max_pool2d(h, 3, 2, 1);
  for (auto& stage : layers_) h = stage->forward(h);
  return fc_->forward(global_avg_pool(h));
}

std::shared_ptr<ImageNetResNet> make_imagenet_resnet(const std::string& arch, int64_t num_classes,
                                                     bool zero_init_residual) {
  std::string valid;
  for (const ArchSpec& spec : kArchs) {
    if (arch == spec.name)
      return std::make_shared<ImageNetResNet>(spec.kind, spec.blocks_per_stage, num_classes, zero_init_residual);
    valid += valid.empty() ? spec.name : std::string(", ") + spec.name;
  }
  throw Error("[make_imagenet_resnet] unknown architecture '" + arch + "'; valid: " + valid);
}

}  // namespace qnn
