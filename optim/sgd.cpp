// SGD step, one fused pass over the flat buffers (formulas in optim/sgd.h).
#include "optim/sgd.h"

namespace qnn {

SGD::SGD(FlatParameters& parameters, SGDOptions options)
    : parameters_(parameters), options_(options) {
  QNN_CHECK(options.lr >= 0, "learning rate must be >= 0, got ", options.lr);
  QNN_CHECK(options.momentum >= 0, "momentum must be >= 0, got ", options.momentum);
  QNN_CHECK(options.weight_decay >= 0, "weight decay must be >= 0, got ", options.weight_decay);
  QNN_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
            "nesterov needs momentum > 0 and dampening 0 (as in PyTorch)");
  if (options.momentum > 0) momentum_buffer_ = Tensor::zeros({parameters.numel()});
}

void SGD::step() {
  float* p = parameters_.values().data();
  const float* g = parameters_.grads().data();
  const int64_t n = parameters_.numel();
  const float lr = options_.lr, wd = options_.weight_decay, mu = options_.momentum;
  const float keep = 1.0f - options_.dampening;
  const bool first = steps_ == 0, nesterov = options_.nesterov;
  if (mu == 0.0f) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] -= lr * (g[i] + wd * p[i]);
  } else {
    float* b = momentum_buffer_.data();
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * p[i];
      b[i] = first ? d : mu * b[i] + keep * d;
      p[i] -= lr * (nesterov ? d + mu * b[i] : b[i]);
    }
  }
  ++steps_;
}

}  // namespace qnn
