// TF32, the operand format of tensor cores' float32 products (10 mantissa bits), for the
// emulated cuBLAS and cuDNN: an operand is rounded to it before a product that allows TF32, so
// that a caller that should not have allowed TF32, or a test whose tolerance does not cover it,
// sees its error (about 1e-3 relative) on the emulator as on a GPU.
#pragma once
#include <cstdint>
#include <cstring>

namespace qnn_emu {

// x with its mantissa rounded to TF32's 10 bits, to nearest with ties away from zero (PTX's
// cvt.rna.tf32.f32): half a unit of the last kept bit is added to the magnitude, then the 13
// dropped bits are cleared. Infinities and NaN stay as they are.
inline float round_to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

}  // namespace qnn_emu
