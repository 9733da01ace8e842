// CPU clamped uniform quantizer and its straight-through gradient (see qat/uniform_quantize.h).
#include "qat/uniform_quantize.h"

#include <cmath>

#include "qat/fake_quant_math.h"
#include "tensor/device.h"

namespace qnn {

namespace {

constexpr int64_t kParallelMin = 32768;

void check_bounds(const char* op, float lo, float hi) {
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo < hi))
    throw Error(str("[", op, "] the clamp range must be finite with lo < hi, found [", lo, ", ", hi, "]"));
}

}  // namespace

Tensor clamp_quantize_forward(const Tensor& x, float lo, float hi, int64_t steps) {
  check_bounds("clamp_quantize_forward", lo, hi);
  QNN_CHECK(steps >= 1 && steps <= 255, "the number of steps must be 1 to 255 (at most 8 bits), found ", steps);
  const float n = float(steps);
  QNN_ON_CUDA(x, cuda::clamp_quantize_forward(x, lo, hi, n));
  Tensor y(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const int64_t count = x.numel();
#pragma omp parallel for if (count >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < count; ++i) py[i] = clamp_quantize_value(px[i], lo, hi, n);
  return y;
}

Tensor clamp_quantize_backward(const Tensor& dy, const Tensor& x, float lo, float hi) {
  check_bounds("clamp_quantize_backward", lo, hi);
  if (dy.shape() != x.shape() || dy.device() != x.device() || dy.format() != x.format())
    throw Error(str("[clamp_quantize_backward] the output gradient ", shape_str(dy.shape()), " on ",
                    device_name(dy.device()), " must match the input ", shape_str(x.shape()), " on ",
                    device_name(x.device()), " in memory format too"));
  QNN_ON_CUDA(x, cuda::clamp_quantize_backward(dy, x, lo, hi));
  Tensor dx(x.shape());
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = dx.data();
  const int64_t count = x.numel();
#pragma omp parallel for if (count >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < count; ++i) pd[i] = pg[i] * (clamp_passes(px[i], lo, hi) ? 1.0f : 0.0f);
  return dx;
}

}  // namespace qnn
