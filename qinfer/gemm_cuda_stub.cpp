// The integer GEMM's GPU entry points in a build without the CUDA backend (qinfer/gemm_cuda.h):
// unavailable, and an error naming why when called.
#include "qinfer/gemm_cuda.h"

#include "tensor/check.h"

#ifndef QNN_CUDA
namespace qnn::qinfer {

bool cuda_gemm_available() { return false; }

void gemm_u8s8_requant_cuda(const uint8_t*, int64_t, int64_t, const PackedWeights&, const Requant&, uint8_t*, int64_t) {
  throw Error("[gemm_u8s8_requant_cuda] this build has no CUDA backend (built with CUDA=0 or without nvcc)");
}

}  // namespace qnn::qinfer
#endif
