// The SGD update on the GPU (optim/sgd.cu) against the CPU loop (optim/sgd.cpp): several steps
// with momentum, dampening, nesterov and weight decay, and a learning rate changed between steps
// through the learning-rate tensor, as set_lr() does. Both sides run the same per-element
// function (optim/sgd_update.h) with the same fused multiply-adds, so parameters and momentum
// buffers must be equal bit for bit after every step.
#include <doctest.h>

#include <cmath>
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

SGDCoefficients coefficients(const Run& run, int step) {
  return sgd_coefficients(SGDOptions{0.0f, run.momentum, run.dampening, run.weight_decay, run.nesterov}, step == 0);
}

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
      const SGDCoefficients c = coefficients(run, step);
      sgd_update(p, g, b, lr, c);
      sgd_update(gp, g.to(Device::CUDA), gb, glr, c);
      CHECK(gp.to_vector() == p.to_vector());
      if (run.momentum > 0) CHECK(gb.to_vector() == b.to_vector());
    }
    // The updates did something (the test can fail): parameters moved from their start.
    CHECK(p.to_vector() != Tensor::normal({n}, 0.0f, 1.0f, 1).to_vector());
  }
}

namespace {

// a * b + c rounded once (fused) or twice. The product goes through a volatile so that g++, which
// contracts a * b + c into an FMA on a CPU that has one, rounds it on its own.
float mul_add(bool fused, float a, float b, float c) {
  if (fused) return std::fma(a, b, c);
  volatile float product = a * b;
  return product + c;
}

// The update as optim/sgd_update.h states it, one element: returns p, updates the buffer b.
float reference_step(bool fused, float p, float g, float& b, float lr, const SGDCoefficients& c) {
  const float d = mul_add(fused, c.weight_decay, p, g);
  if (c.momentum == 0) return mul_add(fused, -lr, d, p);
  volatile float kept = c.keep * d;
  b = c.first ? d : mul_add(fused, c.momentum, b, kept);
  const float x = c.nesterov ? mul_add(fused, c.momentum, b, d) : b;
  return mul_add(fused, -lr, x, p);
}

}  // namespace

// The kernel's two forms, fused multiply-adds and separately rounded products and sums, against
// the update's formulas computed on the host in the same form. The test above reaches only the
// form of the CPU build it runs in (fused where the CPU has FMA); a build without FMA (PORTABLE=1
// on an old target) asks the kernel for the other.
GPU_TEST_CASE("sgd: the kernel's fused and unfused forms each equal the formulas bit for bit") {
  const int64_t n = 4099;
  bool forms_differ = false;
  for (bool fused : {true, false})
    for (const Run& run : {Run{"plain with weight decay", 0.0f, 0.0f, 5e-4f, false},
                           Run{"nesterov with weight decay", 0.9f, 0.0f, 5e-4f, true},
                           Run{"momentum with dampening", 0.9f, 0.3f, 1e-4f, false}}) {
      CAPTURE(fused); CAPTURE(run.name);
      std::vector<float> p = Tensor::normal({n}, 0.0f, 1.0f, 3).to_vector(), b(size_t(n), 0.0f);
      Tensor gp = Tensor::from_vector(p, {n}).to(Device::CUDA), gb;
      if (run.momentum > 0) gb = Tensor::zeros({n}, Device::CUDA);
      const Tensor lr = Tensor::full({1}, 0.05f, Device::CUDA);
      for (int step = 0; step < 3; ++step) {
        CAPTURE(step);
        const Tensor g = Tensor::normal({n}, 0.0f, 0.5f, 4, static_cast<uint64_t>(step));
        const SGDCoefficients c = coefficients(run, step);
        for (int64_t i = 0; i < n; ++i) {
          float other_b = b[size_t(i)];
          const float other = reference_step(!fused, p[size_t(i)], g.data()[i], other_b, 0.05f, c);
          p[size_t(i)] = reference_step(fused, p[size_t(i)], g.data()[i], b[size_t(i)], 0.05f, c);
          forms_differ |= other != p[size_t(i)];
        }
        cuda::sgd_update(gp, g.to(Device::CUDA), gb, lr, c, fused);
        CHECK(gp.to_vector() == p);
        if (run.momentum > 0) CHECK(gb.to_vector() == b);
      }
    }
  CHECK(forms_differ);  // the two forms round differently somewhere, so each check tells them apart
}
