// The integer GEMM of qinfer/gemm.h on an NVIDIA GPU: dp4a (four u8 x s8 products added to an
// s32 in one instruction, PTX dp4a.u32.s32, sm_61 and later) with the same requantization, so its
// bytes equal the CPU paths' (the epilogue's float operations are the same fused multiply-adds
// and conversions, rounded to nearest even on both). Host arrays in and out: it copies A and
// the weights to the GPU, runs one thread per output and copies the bytes back. It serves the
// CPU/GPU parity test; the integer ResNet itself runs on the CPU.
#pragma once
#include "qinfer/gemm.h"

namespace qnn::qinfer {

// Whether this build has the CUDA kernel and a GPU is usable.
bool cuda_gemm_available();
// As gemm_u8s8_requant (same arguments, host pointers), on the GPU. Throws when
// !cuda_gemm_available().
void gemm_u8s8_requant_cuda(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, const Requant& rq,
                            uint8_t* out, int64_t ldo);

}  // namespace qnn::qinfer
