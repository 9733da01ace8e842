// stream_time_ms of a CPU-only build (tensor/stream_timer.h): there is no GPU to time.
#ifndef QNN_CUDA
#include "tensor/check.h"
#include "tensor/stream_timer.h"

namespace qnn {

double stream_time_ms(const std::function<void()>&, int, int) {
  QNN_CHECK(false, "stream_time_ms: this build has no CUDA backend");
  return 0.0;
}

}  // namespace qnn
#endif
