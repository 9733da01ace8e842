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
//
// On the GPU (parameters on Device::CUDA) the momentum buffer lives there too and the step is one
// fused kernel (optim/sgd.cu) giving the CPU's results bit for bit (optim/sgd_update.h). The
// learning rate is a one-element tensor on the parameters' device that set_lr() refills (a tiny
// kernel on the stream) and the kernel reads through a pointer, so a CUDA graph that captured
// step() uses every learning rate set before its replay. Weight decay, momentum, dampening,
// nesterov and whether this is the first step are kernel arguments, frozen into a captured graph:
// capture step() only after the first step (the first step initialises the momentum buffer).
#pragma once
#include "autograd/flat_parameters.h"
#include "optim/sgd_update.h"

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
  void set_lr(float lr);
  // The learning rate as a one-element tensor on the parameters' device (what the step reads).
  const Tensor& lr_tensor() const { return lr_; }
  const SGDOptions& options() const { return options_; }

  // Optimizer state, for checkpoints: the momentum buffer (flat, same layout as the parameters)
  // and the number of steps taken (0 means the buffer is not initialised yet).
  Tensor& momentum_buffer() { return momentum_buffer_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  FlatParameters& parameters_;
  SGDOptions options_;
  Tensor lr_;  // [1], on the parameters' device
  Tensor momentum_buffer_;
  int64_t steps_ = 0;
};

// One SGD update of the flat buffers p (parameters), g (gradients) and b (momentum buffer,
// undefined when momentum is 0) with the learning rate lr[0]; the formulas of optim/sgd_update.h.
void sgd_update(Tensor& p, const Tensor& g, Tensor& b, const Tensor& lr, const SGDCoefficients& c);

// The coefficients of a step with these options; `first`: the momentum buffer is not set yet.
SGDCoefficients sgd_coefficients(const SGDOptions& options, bool first);

namespace cuda {  // optim/sgd.cu: one fused kernel. `fma`: whether the CPU build fuses (see
                  // optim/sgd_update.h); the kernel then fuses the same way.
void sgd_update(Tensor& p, const Tensor& g, Tensor& b, const Tensor& lr, const SGDCoefficients& c, bool fma);
}  // namespace cuda

}  // namespace qnn
