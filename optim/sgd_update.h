// The per-element SGD update of optim/sgd.h, written once for the CPU loop (optim/sgd.cpp) and
// the CUDA kernel (optim/sgd.cu) so that both perform the same float operations:
//   d = fma(wd, p, g)                            g + wd * p, rounded once
//   b = d (first step)  or  fma(mu, b, keep * d)  mu * b + (1 - dampening) * d
//   x = fma(mu, b, d) (nesterov)  or  b
//   p = fma(-lr, x, p)                           p - lr * x, rounded once
// Those are exactly the fused multiply-adds g++ -O3 -march=native forms from the plain
// expressions on a CPU with FMA (GCC contracts across statements by default in C++, even with
// -std=c++17): checked against scalar references, so making them explicit keeps the CPU results
// unchanged. On a CPU build without FMA (PORTABLE=1 on an old target) every multiply and add is
// rounded separately instead; the CPU tells the GPU kernel which form it uses (kFma), and the
// kernel uses __fmaf_rn or __fmul_rn/__fadd_rn accordingly (intrinsics nvcc never re-contracts),
// so GPU and CPU agree bit for bit in either build (the operations come from tensor/exact_math.h).
#pragma once
#include <cmath>

#include "tensor/exact_math.h"

namespace qnn {

// The constant coefficients of a step. keep = 1 - dampening.
struct SGDCoefficients {
  float weight_decay = 0, momentum = 0, keep = 1;
  bool nesterov = false;
  bool first = false;  // first step: the momentum buffer is set to d, not blended
};

// a * b + c: one rounding when kFma, two otherwise (tensor/exact_math.h).
template <bool kFma>
QNN_HOST_DEVICE float sgd_mul_add(float a, float b, float c) {
  return kFma ? fma_rn(a, b, c) : add_rn(mul_rn(a, b), c);
}

// Plain SGD (no momentum): returns the new parameter.
template <bool kFma>
QNN_HOST_DEVICE float sgd_plain(float p, float g, float lr, float weight_decay) {
  const float d = sgd_mul_add<kFma>(weight_decay, p, g);
  return sgd_mul_add<kFma>(-lr, d, p);
}

// SGD with momentum: updates the buffer element b and returns the new parameter.
template <bool kFma>
QNN_HOST_DEVICE float sgd_momentum(float p, float g, float& b, float lr, const SGDCoefficients& c) {
  const float d = sgd_mul_add<kFma>(c.weight_decay, p, g);
  const float buffer = c.first ? d : sgd_mul_add<kFma>(c.momentum, b, mul_rn(c.keep, d));
  b = buffer;
  const float x = c.nesterov ? sgd_mul_add<kFma>(c.momentum, buffer, d) : buffer;
  return sgd_mul_add<kFma>(-lr, x, p);
}

}  // namespace qnn
