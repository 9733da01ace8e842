// The test runner: doctest's main. Tests mirror the source tree (tests/tensor, tests/autograd...).
// Tests that need data print why they skip and pass; tests that need a GPU (tests/gpu.h) are
// counted as skipped when none is usable, and the line printed first here says why.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest.h>

#include <cstdio>

#include "tensor/device.h"

int main(int argc, char** argv) {
  const qnn::CudaStatus& cuda = qnn::cuda_status();
  std::printf("qnn tests: GPU %s\n", cuda.usable ? qnn::describe_cuda(cuda).c_str()
                                                 : ("tests skipped, " + qnn::describe_cuda(cuda)).c_str());
  std::fflush(stdout);
  doctest::Context context(argc, argv);
  return context.run();
}
