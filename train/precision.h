// The --precision flag shared by ./apps/cifar, ./apps/imagenet and the step benchmarks: fp32, or
// bf16 convolution operands on the CPU (backend_options().bf16, docs/bf16.md).
#pragma once
#include <string>

#include "tensor/device.h"
#include "train/flags.h"

namespace qnn {

inline std::string& add_precision_flag(Flags& flags) {
  return flags.add_string("--precision", "fp32",
                          "fp32|bf16: CPU convolutions on bf16 operands (AVX-512 BF16), float sums, weights, "
                          "batch norm and SGD");
}

// Sets backend_options().bf16 from the flag's value; a value other than fp32 or bf16, and bf16 on
// the GPU (which has no bf16 path), end the program through flags.fail.
inline void apply_precision_flag(const Flags& flags, const std::string& precision, bool on_gpu) {
  if (precision != "fp32" && precision != "bf16") flags.fail("bad --precision '" + precision + "'; valid: fp32, bf16");
  if (precision == "bf16" && on_gpu)
    flags.fail("--precision bf16 is implemented for the CPU convolutions; on the GPU use fp32 (TF32 convolutions), "
               "or --device cpu");
  backend_options().bf16 = precision == "bf16";
}

}  // namespace qnn
