// bfloat16: the upper half of an IEEE float (sign, 8 exponent bits, 7 mantissa bits), so a float
// becomes a bf16 by rounding away its low 16 bits. `--precision bf16` (backend_options().bf16)
// rounds the two operands of every CPU convolution to bf16 and multiplies them with AVX-512 BF16's
// VDPBF16PS, which takes pairs of bf16 per 32-bit lane and adds both products to a float
// accumulator; on a core that has it the instruction does twice the multiply-adds of a float FMA.
// Products of two bf16 are exact in float, so what bf16 changes is only the operands' rounding
// (relative error at most 2^-8): sums, batch norm, the loss and SGD stay in float
// (Kalamkar et al., "A study of BFLOAT16 for deep learning training", 2019).
//
// The rounding is the one the hardware conversion VCVTNEPS2BF16 performs, emulated exactly here
// for the scalar paths: round to nearest, ties to even; subnormal inputs become a signed zero
// (the instruction treats them as zero); NaN stays a quiet NaN.
// VDPBF16PS itself, per lane i, adds the odd pair's product first, each addition rounded once:
//   acc = fma(a[2i+1], b[2i+1], acc); acc = fma(a[2i], b[2i], acc)
// (Intel's instruction set reference; tests/tensor/test_bf16.cpp checks this CPU against it).
#pragma once
#include <cstdint>

#include "tensor/float_bits.h"
#include "tensor/random.h"  // QNN_HOST_DEVICE
#include "tensor/tensor.h"

namespace qnn {

// The bf16 nearest to f (VCVTNEPS2BF16's rounding, see above), as its 16 bits. The bf16 tensors
// qnn's own kernels write on the GPU are rounded by this same function, so both devices hold the
// same bits there. cuDNN's bf16 outputs are rounded by cuDNN, which keeps subnormals (below
// 2^-126, about 1.2e-38) where this flushes them to zero: those may differ.
QNN_HOST_DEVICE uint16_t bf16_bits(float f) {
  uint32_t u = float_bits(f);
  if ((u & 0x7F800000u) == 0) return static_cast<uint16_t>((u >> 16) & 0x8000u);  // zero, subnormal
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

QNN_HOST_DEVICE float bf16_to_float(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

QNN_HOST_DEVICE float round_to_bf16(float f) { return bf16_to_float(bf16_bits(f)); }

// Element access for CUDA kernels templated on the stored type T: float, or uint16_t holding a
// bf16's bits (a DType::bf16 tensor's elements). Values are read as float, computed in float,
// and rounded once when stored.
QNN_HOST_DEVICE float to_float(float v) { return v; }
QNN_HOST_DEVICE float to_float(uint16_t v) { return bf16_to_float(v); }
template <class T>
QNN_HOST_DEVICE T from_float(float f);
template <>
QNN_HOST_DEVICE float from_float<float>(float f) { return f; }
template <>
QNN_HOST_DEVICE uint16_t from_float<uint16_t>(float f) { return bf16_bits(f); }

// A float tensor holding round_to_bf16 of every element of a CPU tensor.
Tensor round_to_bf16(const Tensor& a);

// Whether this build's bf16 convolutions multiply with VDPBF16PS (compiled for a CPU with AVX-512
// BF16); otherwise they round their operands and multiply in float, slower than float itself.
bool bf16_instructions_built();

}  // namespace qnn
