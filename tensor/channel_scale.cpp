// CPU per-channel scaling (formulas in tensor/channel_scale.h).
#include "tensor/channel_scale.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/device.h"

namespace qnn {

ChannelView channel_view(const char* op, const Tensor& x, int axis) {
  QNN_CHECK(axis >= 0 && axis < x.dim(), "[", op, "] channel axis ", axis, " is outside x of shape ",
            shape_str(x.shape()));
  if (x.is_channels_last() && axis != 0) {  // NHWC: the channels are the innermost axis
    QNN_CHECK(axis == 1, "[", op, "] channels-last x ", shape_str(x.shape()), " can be scaled along axis 0 or 1, not ",
              axis);
    return ChannelView{x.size(0) * x.size(2) * x.size(3), x.size(1), 1};
  }
  ChannelView v{1, x.size(axis), 1};
  for (int d = 0; d < axis; ++d) v.outer *= x.size(d);
  for (int d = axis + 1; d < x.dim(); ++d) v.inner *= x.size(d);
  return v;
}

namespace {

ChannelView checked_view(const char* op, const Tensor& x, const Tensor& s, int axis) {
  const ChannelView v = channel_view(op, x, axis);
  QNN_CHECK(s.dim() == 1 && s.size(0) == v.channels, "[", op, "] expects one scale per channel: ", v.channels,
            " for x of shape ", shape_str(x.shape()), " (axis ", axis, "), got s of shape ", shape_str(s.shape()));
  QNN_CHECK(s.device() == x.device(), "[", op, "] x and s must be on the same device");
  return v;
}

template <class Op>
Tensor per_channel(const Tensor& x, const Tensor& s, ChannelView v, Op op) {
  Tensor y(x.shape(), x.device());
  const float* in = x.data();
  const float* sc = s.data();
  float* out = y.data();
#pragma omp parallel for schedule(static) if (x.numel() >= 32768)
  for (int64_t q = 0; q < v.outer * v.channels; ++q) {
    const float f = sc[q % v.channels];
    for (int64_t i = 0; i < v.inner; ++i) out[q * v.inner + i] = op(in[q * v.inner + i], f);
  }
  return y;
}

}  // namespace

Tensor channel_mul(const Tensor& x, const Tensor& s, int axis) {
  const ChannelView v = checked_view("channel_mul", x, s, axis);
  QNN_ON_CUDA(x, cuda::channel_mul(x, s, v));
  return per_channel(x, s, v, [](float a, float f) { return a * f; });
}

Tensor channel_div(const Tensor& x, const Tensor& s, int axis) {
  const ChannelView v = checked_view("channel_div", x, s, axis);
  QNN_ON_CUDA(x, cuda::channel_div(x, s, v));
  return per_channel(x, s, v, [](float a, float f) { return a / f; });
}

Tensor channel_dot(const Tensor& a, const Tensor& b, int axis) {
  const ChannelView v = channel_view("channel_dot", a, axis);
  QNN_CHECK(a.shape() == b.shape() && a.device() == b.device() && a.format() == b.format(), "[channel_dot] a ",
            shape_str(a.shape()), " and b ", shape_str(b.shape()), " must have one shape, device and memory format");
  QNN_ON_CUDA(a, cuda::channel_dot(a, b, v));
  std::vector<float> d(v.channels);
  const float* pa = a.data();
  const float* pb = b.data();
#pragma omp parallel for schedule(static) if (a.numel() >= 32768)
  for (int64_t c = 0; c < v.channels; ++c) {
    // Float partial sums of kBlock products (one vectorised loop each, lanes fixed at compile
    // time), accumulated in double.
    constexpr int64_t kBlock = 256;
    double acc = 0;
    for (int64_t o = 0; o < v.outer; ++o) {
      const float* x = pa + (o * v.channels + c) * v.inner;
      const float* y = pb + (o * v.channels + c) * v.inner;
      for (int64_t b = 0; b < v.inner; b += kBlock) {
        const int64_t e = std::min(b + kBlock, v.inner);
        float block = 0.0f;
#pragma omp simd reduction(+ : block)
        for (int64_t i = b; i < e; ++i) block += x[i] * y[i];
        acc += block;
      }
    }
    d[c] = float(acc);
  }
  return Tensor::from_vector(d, {v.channels});
}

Tensor sqrt_plus(const Tensor& v, float eps) {
  QNN_ON_CUDA(v, cuda::sqrt_plus(v, eps));
  Tensor y(v.shape(), v.device());
  for (int64_t i = 0; i < v.numel(); ++i) y.data()[i] = std::sqrt(v.data()[i] + eps);
  return y;
}

Tensor inverse_std(const Tensor& v, float eps) {
  QNN_ON_CUDA(v, cuda::inverse_std(v, eps));
  Tensor y(v.shape(), v.device());
  for (int64_t i = 0; i < v.numel(); ++i)
    y.data()[i] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(v.data()[i]) + eps));
  return y;
}

}  // namespace qnn
