// Arithmetic that rounds exactly as written, on the host and in CUDA kernels alike: the tool for
// code whose CPU and GPU versions must agree bit for bit (the SGD update, the quantizers' level
// fits). nvcc contracts a * b + c into a fused multiply-add on its own and g++ -O3 -march=native
// does too (GCC's default -ffp-contract=fast), and not always the same ones. So such code writes
// every fused step as fma_rn() and every other product or sum as mul_rn()/add_rn()/sub_rn(): on
// the device these are the __f*_rn/__d*_rn intrinsics, which nvcc never contracts; on the host
// they are the plain operations, whose callers make sure nothing is left to contract (a result
// that only feeds an fma_rn or a final subtraction).
#pragma once
#include <cmath>

#include "tensor/random.h"  // QNN_HOST_DEVICE

namespace qnn {

#ifdef __CUDA_ARCH__
QNN_HOST_DEVICE float mul_rn(float a, float b) { return __fmul_rn(a, b); }
QNN_HOST_DEVICE float add_rn(float a, float b) { return __fadd_rn(a, b); }
QNN_HOST_DEVICE float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
QNN_HOST_DEVICE double mul_rn(double a, double b) { return __dmul_rn(a, b); }
QNN_HOST_DEVICE double add_rn(double a, double b) { return __dadd_rn(a, b); }
QNN_HOST_DEVICE double sub_rn(double a, double b) { return __dsub_rn(a, b); }
QNN_HOST_DEVICE double fma_rn(double a, double b, double c) { return __fma_rn(a, b, c); }
#else
QNN_HOST_DEVICE float mul_rn(float a, float b) { return a * b; }
QNN_HOST_DEVICE float add_rn(float a, float b) { return a + b; }
QNN_HOST_DEVICE float fma_rn(float a, float b, float c) { return std::fma(a, b, c); }
QNN_HOST_DEVICE double mul_rn(double a, double b) { return a * b; }
QNN_HOST_DEVICE double add_rn(double a, double b) { return a + b; }
QNN_HOST_DEVICE double sub_rn(double a, double b) { return a - b; }
QNN_HOST_DEVICE double fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
#endif

}  // namespace qnn
