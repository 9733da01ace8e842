// round_to_bf16 on tensors (see tensor/bf16.h).
#include "tensor/bf16.h"

namespace qnn {

Tensor round_to_bf16(const Tensor& a) {
  QNN_CHECK(!a.is_cuda(), "round_to_bf16 takes a CPU tensor");
  Tensor out(a.shape());
  const float* in = a.data();
  float* o = out.data();
  const int64_t n = a.numel();
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) o[i] = round_to_bf16(in[i]);
  return out;
}

bool bf16_instructions_built() {
#if defined(__AVX512BF16__)
  return true;
#else
  return false;
#endif
}

}  // namespace qnn
