// The integer ResNet (qinfer/int_resnet.h) as a Module, so that the training run's evaluation
// loop (train/trainer.h: evaluate) scores it like any model: forward takes the normalised float
// images of a batch source and returns the engine's float logits. It has no parameters and
// computes no gradients; it runs on the CPU.
#pragma once
#include <memory>

#include "nn/module.h"
#include "qinfer/int_resnet.h"

namespace qnn::qinfer {

class IntResNetModule : public Module {
 public:
  explicit IntResNetModule(std::shared_ptr<const IntResNet> engine) : engine_(std::move(engine)) {}
  Variable forward(const Variable& x) override { return Variable(engine_->forward(x.value())); }
  const IntResNet& engine() const { return *engine_; }

 private:
  std::shared_ptr<const IntResNet> engine_;
};

}  // namespace qnn::qinfer
