// The emulated cuDNN's handle and descriptors (emu/cudnn.cpp, emu/cudnn_descriptors.cpp): what
// qnn's calls set, kept as plain values.
#pragma once
#include <cudnn.h>

#include "emu/convolution.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  int n = 0, c = 0, h = 0, w = 0;
  bool nhwc = false;
  bool bf16 = false;  // CUDNN_DATA_BFLOAT16, else CUDNN_DATA_FLOAT
};
struct cudnnFilterStruct {
  int k = 0, c = 0, h = 0, w = 0;
  bool bf16 = false;
  bool krsc = false;  // CUDNN_TENSOR_NHWC: [k, h, w, c] in memory
};
struct cudnnConvolutionStruct {
  qnn_emu::ConvolutionParams params;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace qnn_emu {

// The output size of a convolution along one dimension.
inline int output_size(int in, int pad, int filter, int dilation, int stride) {
  return (in + 2 * pad - ((filter - 1) * dilation + 1)) / stride + 1;
}

}  // namespace qnn_emu
