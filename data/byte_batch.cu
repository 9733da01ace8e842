// CUDA normalisation of a byte batch: the twin of data/byte_batch.cpp (see data/byte_batch.h).
// One thread per value, a table lookup, no arithmetic on the value: the CPU's floats exactly.
#include "data/byte_batch.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

__global__ void normalize_bytes_kernel(const uint8_t* bytes, const float* table, int64_t total, int64_t plane,
                                       int64_t channels, float* images) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    images[t] = table[((t / plane) % channels) * 256 + bytes[t]];
}

}  // namespace

void normalize_bytes(const uint8_t* bytes, const Tensor& table, Tensor& images) {
  const int64_t total = images.numel();
  if (total == 0) return;
  const int64_t plane = images.size(2) * images.size(3);
  normalize_bytes_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(bytes, table.data(), total, plane,
                                                                       images.size(1), images.data());
  QNN_LAUNCH_CHECK("normalize_bytes images ", shape_str(images.shape()));
}

}  // namespace qnn::cuda
