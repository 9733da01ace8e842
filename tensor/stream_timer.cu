// stream_time_ms with CUDA events (see tensor/stream_timer.h).
#include "tensor/cuda_runtime.h"
#include "tensor/stream_timer.h"

namespace qnn {

double stream_time_ms(const std::function<void()>& work, int warmup, int repeats) {
  QNN_CHECK(repeats >= 1 && warmup >= 0, "needs repeats >= 1 and warmup >= 0, got ", repeats, ", ", warmup);
  for (int i = 0; i < warmup; ++i) work();
  cudaEvent_t start, stop;
  QNN_CUDA_CHECK(cudaEventCreate(&start), "stream_time_ms");
  QNN_CUDA_CHECK(cudaEventCreate(&stop), "stream_time_ms");
  QNN_CUDA_CHECK(cudaEventRecord(start, cuda::stream()), "stream_time_ms");
  for (int i = 0; i < repeats; ++i) work();
  QNN_CUDA_CHECK(cudaEventRecord(stop, cuda::stream()), "stream_time_ms");
  QNN_CUDA_CHECK(cudaEventSynchronize(stop), "stream_time_ms");
  float ms = 0;
  QNN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "stream_time_ms");
  QNN_CUDA_CHECK(cudaEventDestroy(start), "stream_time_ms");
  QNN_CUDA_CHECK(cudaEventDestroy(stop), "stream_time_ms");
  return double(ms) / repeats;
}

}  // namespace qnn
