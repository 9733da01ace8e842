// CUDA kernels of the range observers: the twins of qat/observer_kernels.cpp, with the formulas
// of qat/observer_math.h. Minima and maxima are exact in any order, so the channel range equals
// the CPU's bit for bit (up to the sign of a zero minimum, which no qparam depends on); the
// update and the qparams run one thread per channel with the CPU's operations.
#include "qat/channel_reduce_cuda.h"
#include "qat/observer_kernels.h"
#include "qat/observer_math.h"

namespace qnn::cuda {

namespace {

struct MinMaxAcc {
  float lo, hi;
};

struct MinMaxLoad {
  const float* x;
  __device__ void operator()(int64_t, int64_t i, MinMaxAcc& acc) const {
    acc.lo = min_keep_nan(acc.lo, x[i]);
    acc.hi = max_keep_nan(acc.hi, x[i]);
  }
};

struct MinMaxCombine {
  __device__ void operator()(MinMaxAcc& a, const MinMaxAcc& b) const {
    a.lo = min_keep_nan(a.lo, b.lo);
    a.hi = max_keep_nan(a.hi, b.hi);
  }
};

struct MinMaxStore {
  float *lo, *hi;
  __device__ void operator()(int64_t c, const MinMaxAcc& acc) const {
    lo[c] = acc.lo;
    hi[c] = acc.hi;
  }
};

__global__ void update_range_kernel(float* lo, float* hi, const float* blo, const float* bhi, int64_t channels,
                                    bool moving_average, float c, bool first) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= channels) return;
  if (first) {
    lo[i] = blo[i];
    hi[i] = bhi[i];
  } else if (!moving_average) {
    lo[i] = min_keep_nan(blo[i], lo[i]);
    hi[i] = max_keep_nan(bhi[i], hi[i]);
  } else {
    lo[i] = moving_average_step(lo[i], blo[i], c);
    hi[i] = moving_average_step(hi[i], bhi[i], c);
  }
}

__global__ void qparams_kernel(const float* lo, const float* hi, float* scale, float* zero_point, int64_t channels,
                               float qmin, float qmax, bool symmetric, float eps) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= channels) return;
  const ChannelQParams q = channel_qparams(lo[i], hi[i], qmin, qmax, symmetric, eps);
  scale[i] = q.scale;
  zero_point[i] = q.zero_point;
}

unsigned channel_blocks(int64_t channels) { return unsigned((channels + kThreads - 1) / kThreads); }

}  // namespace

ChannelRange channel_min_max(const Tensor& x, int64_t channels) {
  ChannelRange out{Tensor({channels}, Device::CUDA), Tensor({channels}, Device::CUDA)};
  reduce_channels("channel_min_max", channels, x.numel() / channels, MinMaxAcc{INFINITY, -INFINITY},
                  MinMaxLoad{x.data()}, MinMaxCombine{}, MinMaxStore{out.min.data(), out.max.data()});
  return out;
}

void update_running_range(Tensor& running_min, Tensor& running_max, const ChannelRange& batch, RangeUpdate update,
                          float averaging_constant, bool first) {
  const int64_t channels = running_min.numel();
  update_range_kernel<<<channel_blocks(channels), kThreads, 0, stream()>>>(
      running_min.data(), running_max.data(), batch.min.data(), batch.max.data(), channels,
      update == RangeUpdate::MovingAverage, averaging_constant, first);
  QNN_LAUNCH_CHECK("update_running_range ", channels, " channels");
}

QParams qparams_from_range(const Tensor& min, const Tensor& max, QuantRange range, bool symmetric, float eps) {
  const int64_t channels = min.numel();
  QParams p{Tensor(min.shape(), Device::CUDA), Tensor(min.shape(), Device::CUDA)};
  qparams_kernel<<<channel_blocks(channels), kThreads, 0, stream()>>>(min.data(), max.data(), p.scale.data(),
                                                                      p.zero_point.data(), channels, float(range.qmin),
                                                                      float(range.qmax), symmetric, eps);
  QNN_LAUNCH_CHECK("qparams_from_range ", channels, " channels");
  return p;
}

}  // namespace qnn::cuda
