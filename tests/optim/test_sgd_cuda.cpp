// The SGD update on the GPU (optim/sgd.cu) against the CPU loop (optim/sgd.cpp): several steps
// with momentum, dampening, nesterov and weight decay, and a learning rate changed between steps
// through the learning-rate tensor, as set_lr() does. Both sides run the same per-element
// function (optim/sgd_update.h) with the same fused multiply-adds, so parameters and momentum
// buffers must be equal bit for bit after every step.
#include <doctest.h>

#include <vector>

#include "optim/sgd.h"
#include "tests/gpu.h"

using namespace qnn;

namespace {

struct Run {
  const char* name;
  float momentum, dampening, weight_decay;
  bool nesterov;
};

}  // namespace

GPU_TEST_CASE("sgd: the fused CUDA step equals the CPU loop bit for bit") {
  const int64_t n = 100003;  // not a multiple of the block size
  for (const Run& run : {Run{"plain with weight decay", 0.0f, 0.0f, 5e-4f, false},
                         Run{"momentum with dampening", 0.9f, 0.3f, 1e-4f, false},
                         Run{"nesterov with weight decay", 0.9f, 0.0f, 5e-4f, true},
                         Run{"momentum, no weight decay", 0.8f, 0.0f, 0.0f, false}}) {
    CAPTURE(run.name);
    Tensor p = Tensor::normal({n}, 0.0f, 1.0f, 1), gp = p.to(Device::CUDA);
    Tensor b, gb;
    if (run.momentum > 0) {
      b = Tensor::zeros({n});
      gb = Tensor::zeros({n}, Device::CUDA);
    }
    Tensor lr = Tensor::full({1}, 0.1f), glr = Tensor::full({1}, 0.1f, Device::CUDA);
    const float rates[] = {0.1f, 0.1f, 0.05f, 0.0123f, 0.2f};
    for (int step = 0; step < 5; ++step) {
      CAPTURE(step);
      lr.fill(rates[step]);
      glr.fill(rates[step]);  // what set_lr() does: a fill the kernel reads on the device
      const Tensor g = Tensor::normal({n}, 0.0f, 0.5f, 2, static_cast<uint64_t>(step));
      SGDCoefficients c;
      c.weight_decay = run.weight_decay;
      c.momentum = run.momentum;
      c.keep = 1.0f - run.dampening;
      c.nesterov = run.nesterov;
      c.first = step == 0;
      sgd_update(p, g, b, lr, c);
      sgd_update(gp, g.to(Device::CUDA), gb, glr, c);
      CHECK(gp.to_vector() == p.to_vector());
      if (run.momentum > 0) CHECK(gb.to_vector() == b.to_vector());
    }
    // The updates did something (the test can fail): parameters moved from their start.
    CHECK(p.to_vector() != Tensor::normal({n}, 0.0f, 1.0f, 1).to_vector());
  }
}
