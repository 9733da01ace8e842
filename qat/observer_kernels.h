// The kernels of the range observers (qat/observer.h), on CPU and GPU (qat/observer_kernels.cu
// beside qat/observer_kernels.cpp): a batch's minimum and maximum per channel, the running-range
// update, and the (scale, zero point) that PyTorch's observers compute from a range. Formulas in
// qat/observer_math.h. Every result stays on the input's device: an observer on the GPU never
// waits for a copy to the host.
#pragma once
#include "qat/quant_range.h"
#include "tensor/tensor.h"

namespace qnn {

struct ChannelRange {
  Tensor min, max;  // [channels] each
};

// Minimum and maximum of x, over the whole tensor ([1]) or per slice along axis 0 ([x.size(0)]).
// NaN propagates (as torch.aminmax). On the CPU a NaN or infinite result is an error naming the
// channel: a range that is not finite gives no usable scale.
ChannelRange channel_min_max(const Tensor& x, Granularity granularity);

enum class RangeUpdate { MinMax, MovingAverage };

// Updates the running range in place from a batch's range (all [channels], one device). `first`:
// this is the first batch, which sets the range for both kinds.
void update_running_range(Tensor& running_min, Tensor& running_max, const ChannelRange& batch, RangeUpdate update,
                          float averaging_constant, bool first);

// The scale and zero point of each channel's range (fresh [channels] tensors on the range's device).
struct QParams {
  Tensor scale, zero_point;
};
QParams qparams_from_range(const Tensor& min, const Tensor& max, QuantRange range, bool symmetric, float eps);

namespace cuda {
ChannelRange channel_min_max(const Tensor& x, int64_t channels);
void update_running_range(Tensor& running_min, Tensor& running_max, const ChannelRange& batch, RangeUpdate update,
                          float averaging_constant, bool first);
QParams qparams_from_range(const Tensor& min, const Tensor& max, QuantRange range, bool symmetric, float eps);
}  // namespace cuda

}  // namespace qnn
