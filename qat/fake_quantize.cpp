// CPU affine fake quantization and its two backward passes (see qat/fake_quantize.h); the
// per-element formulas are in qat/fake_quant_math.h, shared with the CUDA twin.
#include "qat/fake_quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "qat/channel_reduce.h"
#include "qat/fake_quant_math.h"
#include "tensor/device.h"

namespace qnn {

namespace {

constexpr int64_t kParallelMin = 32768;

void check_same_tensor_shape(const char* op, const Tensor& dy, const Tensor& x) {
  if (dy.shape() != x.shape() || dy.device() != x.device() || dy.format() != x.format())
    throw Error(str("[", op, "] the output gradient must match the input: input ", shape_str(x.shape()), " on ",
                    device_name(x.device()), x.is_channels_last() ? " (channels-last)" : "", ", gradient ",
                    shape_str(dy.shape()), " on ", device_name(dy.device()),
                    dy.is_channels_last() ? " (channels-last)" : ""));
}

// Per-channel constants for the CPU loops.
struct ChannelParams {
  std::vector<float> scale, inv_scale, zero_point;
};

ChannelParams channel_params(const Tensor& scale, const Tensor& zero_point, QuantRange range, bool backward_rounding,
                             Granularity granularity) {
  const int64_t c = scale.numel();
  ChannelParams p{std::vector<float>(c), std::vector<float>(c), std::vector<float>(c)};
  const float qmin = float(range.qmin), qmax = float(range.qmax);
  for (int64_t i = 0; i < c; ++i) {
    p.scale[i] = scale.data()[i];
    p.inv_scale[i] = 1.0f / p.scale[i];
    const float zp = zero_point.data()[i];
    p.zero_point[i] = backward_rounding && granularity == Granularity::PerTensor
                          ? backward_zero_point_per_tensor(zp, qmin, qmax)
                          : forward_zero_point(zp, qmin, qmax);
  }
  return p;
}

}  // namespace

void check_qparams(const char* op, const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantRange range,
                   Granularity granularity) {
  check_quant_range(op, range);
  const int64_t count = qparam_count(op, x, granularity);
  if (!scale.defined() || !zero_point.defined())
    throw Error(str("[", op, "] scale and zero point must be defined tensors"));
  if (scale.numel() != count || zero_point.numel() != count)
    throw Error(str("[", op, "] ", granularity_name(granularity), " quantization of ", shape_str(x.shape()),
                    " needs ", count, " scale(s) and zero point(s), found scale ", shape_str(scale.shape()),
                    " and zero point ", shape_str(zero_point.shape())));
  if (scale.device() != x.device() || zero_point.device() != x.device())
    throw Error(str("[", op, "] scale (", device_name(scale.device()), ") and zero point (",
                    device_name(zero_point.device()), ") must be on the input's device (", device_name(x.device()),
                    ")"));
  if (x.is_cuda()) return;
  for (int64_t c = 0; c < count; ++c) {
    const float s = scale.data()[c], z = zero_point.data()[c];
    if (!(std::isfinite(s) && s > 0.0f))
      throw Error(str("[", op, "] scale must be finite and positive, found ", s, count > 1 ? " in channel " : "",
                      count > 1 ? std::to_string(c) : std::string()));
    if (!std::isfinite(z))
      throw Error(str("[", op, "] zero point must be finite, found ", z, count > 1 ? " in channel " : "",
                      count > 1 ? std::to_string(c) : std::string()));
  }
}

Tensor fake_quantize_forward(const Tensor& x, const Tensor& scale, const Tensor& zero_point, QuantRange range,
                             Granularity granularity) {
  check_qparams("fake_quantize", x, scale, zero_point, range, granularity);
  QNN_ON_CUDA(x, cuda::fake_quantize_forward(x, scale, zero_point, range));
  const ChannelParams p = channel_params(scale, zero_point, range, false, granularity);
  const int64_t n = x.numel(), inner = n / scale.numel();
  const float qmin = float(range.qmin), qmax = float(range.qmax);
  Tensor y(x.shape());
  const float* px = x.data();
  float* py = y.data();
  for_channel_chunks(scale.numel(), inner, [&p, px, py, qmin, qmax](int64_t c, int64_t begin, int64_t end) {
    const float s = p.scale[c], inv = p.inv_scale[c], z = p.zero_point[c], lo = qmin, hi = qmax;
    const float* x = px;
    float* y = py;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = fake_quantize_value(x[i], s, inv, z, lo, hi);
  });
  return y;
}

Tensor fake_quantize_backward(const Tensor& dy, const Tensor& x, const Tensor& scale, const Tensor& zero_point,
                              QuantRange range, Granularity granularity) {
  check_same_tensor_shape("fake_quantize_backward", dy, x);
  check_qparams("fake_quantize_backward", x, scale, zero_point, range, granularity);
  QNN_ON_CUDA(x, cuda::fake_quantize_backward(dy, x, scale, zero_point, range));
  const ChannelParams p = channel_params(scale, zero_point, range, false, granularity);
  const int64_t n = x.numel(), inner = n / scale.numel();
  const float qmin = float(range.qmin), qmax = float(range.qmax);
  Tensor dx(x.shape());
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = dx.data();
  // dy times the 0/1 mask, as PyTorch multiplies by its cached mask (so -0 and NaN come out alike).
  for_channel_chunks(scale.numel(), inner, [&p, px, pg, pd, qmin, qmax](int64_t c, int64_t begin, int64_t end) {
    const float inv = p.inv_scale[c], z = p.zero_point[c], lo = qmin, hi = qmax;
    const float* x = px;
    const float* g = pg;
    float* d = pd;
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) d[i] = g[i] * (fake_quantize_passes(x[i], inv, z, lo, hi) ? 1.0f : 0.0f);
  });
  return dx;
}

LearnableGradients fake_quantize_learnable_backward(const Tensor& dy, const Tensor& x, const Tensor& scale,
                                                    const Tensor& zero_point, QuantRange range,
                                                    Granularity granularity, float grad_factor) {
  check_same_tensor_shape("fake_quantize_learnable_backward", dy, x);
  check_qparams("fake_quantize_learnable_backward", x, scale, zero_point, range, granularity);
  QNN_CHECK(std::isfinite(grad_factor), "grad_factor must be finite, found ", grad_factor);
  QNN_ON_CUDA(x, cuda::fake_quantize_learnable_backward(dy, x, scale, zero_point, range, granularity, grad_factor));
  const ChannelParams p = channel_params(scale, zero_point, range, true, granularity);
  const int64_t channels = scale.numel(), inner = x.numel() / channels;
  const float qmin = float(range.qmin), qmax = float(range.qmax);
  LearnableGradients g{Tensor(x.shape()), Tensor(scale.shape()), Tensor(zero_point.shape())};
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = g.dx.data();
  // Per channel chunk: float partial sums over blocks of kBlock elements (one vectorised loop
  // each, lanes fixed at compile time), accumulated in double.
  const std::vector<Sum2> sums = reduce_channel_chunks(
      channels, inner, Sum2{0.0, 0.0},
      [&p, px, pg, pd, qmin, qmax, grad_factor](int64_t c, int64_t begin, int64_t end) {
        constexpr int64_t kBlock = 256;
        const float s = p.scale[c], inv = p.inv_scale[c], z = p.zero_point[c];
        const float lo = qmin, hi = qmax, factor = grad_factor;  // locals: stores to dx cannot alias them
        const float* x = px;
        const float* dy = pg;
        float* dx = pd;
        Sum2 acc{0.0, 0.0};
        for (int64_t b = begin; b < end; b += kBlock) {
          const int64_t e = std::min(b + kBlock, end);
          float ds = 0.0f, dz = 0.0f;
#pragma omp simd reduction(+ : ds, dz)
          for (int64_t i = b; i < e; ++i) {
            const LearnableGrads t = fake_quantize_learnable_grads(x[i], dy[i], s, inv, z, lo, hi, factor);
            dx[i] = t.dx;
            ds += t.dscale;
            dz += t.dzero_point;
          }
          acc.a += ds;
          acc.b += dz;
        }
        return acc;
      },
      [](Sum2& a, const Sum2& b) {
        a.a += b.a;
        a.b += b.b;
      });
  for (int64_t c = 0; c < channels; ++c) {
    g.dscale.data()[c] = static_cast<float>(sums[c].a);
    g.dzero_point.data()[c] = static_cast<float>(sums[c].b);
  }
  return g;
}

}  // namespace qnn
