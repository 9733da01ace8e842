// Timing GPU work with CUDA events (for benchmarks): events recorded on the backend's stream
// around `repeats` calls, after `warmup` untimed calls, so the figure is the GPU's time per call
// with the launches queued back to back (host overhead hidden unless it is the bottleneck).
// A CPU-only build has no GPU: the function throws there.
#pragma once
#include <functional>

namespace qnn {

// Milliseconds per call of `work` (which enqueues GPU work on the backend's stream).
double stream_time_ms(const std::function<void()>& work, int warmup, int repeats);

}  // namespace qnn
