// The bits of a float and the float of some bits, on the host and in CUDA kernels alike: what
// bf16 rounding (tensor/bf16.h) and the quantizers' finite checks (quant/bucket_math.h) look at.
#pragma once
#include <cstdint>
#include <cstring>

#include "tensor/random.h"  // QNN_HOST_DEVICE

namespace qnn {

QNN_HOST_DEVICE uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

QNN_HOST_DEVICE float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

}  // namespace qnn
