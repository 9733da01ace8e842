// Stochastic gradient descent over a model's flat parameter buffer, exactly as PyTorch's
// torch.optim.SGD defines it (per element, g the gradient, p the parameter, b the momentum buffer):
//   d = g + weight_decay * p
//   b = d                                  on the first step (no dampening)
//   b = momentum * b + (1 - dampening) * d on later steps
//   d = d + momentum * b  (nesterov)   or   d = b  (plain momentum)
//   p = p - lr * d
// One pass over the whole model. Gradient hooks (quantizers) have already run on g by the time
// step() is called: backward() runs them. So quantization sees the raw loss gradient and never
// the weight-decay term, as the reference experiments do.
#pragma once
#include "autograd/flat_parameters.h"

namespace qnn {

struct SGDOptions {
  float lr = 0.1f;
  float momentum = 0.0f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;
};

class SGD {
 public:
  SGD(FlatParameters& parameters, SGDOptions options);
  void step();
  void zero_grad() { parameters_.zero_grad(); }

  float lr() const { return options_.lr; }
  void set_lr(float lr) { options_.lr = lr; }
  const SGDOptions& options() const { return options_; }

  // Optimizer state, for checkpoints: the momentum buffer (flat, same layout as the parameters)
  // and the number of steps taken (0 means the buffer is not initialised yet).
  Tensor& momentum_buffer() { return momentum_buffer_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  FlatParameters& parameters_;
  SGDOptions options_;
  Tensor momentum_buffer_;
  int64_t steps_ = 0;
};

}  // namespace qnn
