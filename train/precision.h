// The --precision flag shared by ./apps/cifar, ./apps/imagenet and the step benchmarks: fp32, or
// bf16 (backend_options().bf16, docs/bf16.md): on the CPU, convolutions on bf16 operands; on the
// GPU, bf16 image activations and convolutions. Weights, batch-norm statistics, the classifier, the
// loss and SGD stay float32 on both.
#pragma once
#include <string>

#include "tensor/device.h"
#include "train/flags.h"

namespace qnn {

inline std::string& add_precision_flag(Flags& flags) {
  return flags.add_string("--precision", "fp32",
                          "fp32|bf16: bf16 convolutions with float sums (CPU: AVX-512 BF16; GPU: also bf16 "
                          "activations); weights, batch-norm statistics and SGD in float32");
}

// Sets backend_options().bf16 from the flag's value; a value other than fp32 or bf16 ends the
// program through flags.fail.
inline void apply_precision_flag(const Flags& flags, const std::string& precision) {
  if (precision != "fp32" && precision != "bf16") flags.fail("bad --precision '" + precision + "'; valid: fp32, bf16");
  backend_options().bf16 = precision == "bf16";
}

}  // namespace qnn
