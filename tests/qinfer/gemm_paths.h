// Test helpers for the integer kernels: the GEMM paths this CPU can run, and a guard that puts
// the automatic path and convolution choice back when a test ends.
#pragma once
#include <doctest.h>

#include <vector>

#include "qinfer/conv.h"
#include "qinfer/gemm.h"

namespace qnn::qinfer::testing {

struct PathGuard {
  ~PathGuard() {
    set_gemm_path(GemmPath::Auto);
    set_conv_algorithm(ConvAlgorithm::Auto);
  }
};

// The scalar path, and the AVX-512 VNNI one where the CPU has it.
inline std::vector<GemmPath> paths() {
  std::vector<GemmPath> p = {GemmPath::Scalar};
  if (vnni_supported()) p.push_back(GemmPath::Vnni);
  else MESSAGE("this CPU has no AVX-512 VNNI: only the scalar path is checked");
  return p;
}

}  // namespace qnn::qinfer::testing
