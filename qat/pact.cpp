// CPU PACT forward and backward (see qat/pact.h; per-element formulas in qat/fake_quant_math.h).
#include "qat/pact.h"

#include <algorithm>
#include <cmath>

#include "qat/channel_reduce.h"
#include "qat/fake_quant_math.h"
#include "qat/quant_range.h"
#include "tensor/device.h"

namespace qnn {

namespace {

constexpr int64_t kParallelMin = 32768;

// Checks the arguments; returns n = 2^bits - 1.
float check_pact(const char* op, const Tensor& x, const Tensor& alpha, int bits, float alpha_min) {
  QNN_CHECK(x.defined() && alpha.defined(), op, ": x and alpha must be defined tensors");
  if (alpha.numel() != 1 || alpha.device() != x.device())
    throw Error(str("[", op, "] alpha must be one value on the input's device (", device_name(x.device()),
                    "), found ", shape_str(alpha.shape()), " on ", device_name(alpha.device())));
  if (!(std::isfinite(alpha_min) && alpha_min > 0.0f))
    throw Error(str("[", op, "] alpha_min must be finite and positive, found ", alpha_min));
  if (bits < 2 || bits > 8) throw Error(str("[", op, "] bits must be 2 to 8, found ", bits));
  if (!alpha.is_cuda() && std::isnan(alpha.data()[0])) throw Error(str("[", op, "] alpha is NaN"));
  return float(quant_range(bits, false).qmax);
}

}  // namespace

Tensor pact_forward(const Tensor& x, const Tensor& alpha, int bits, float alpha_min) {
  const float n = check_pact("pact_forward", x, alpha, bits, alpha_min);
  QNN_ON_CUDA(x, cuda::pact_forward(x, alpha, n, alpha_min));
  const float a = pact_clip_level(alpha.data()[0], alpha_min);
  const float s = a / n, inv = 1.0f / s;
  Tensor y(x.shape());
  const float* px = x.data();
  float* py = y.data();
  const int64_t count = x.numel();
#pragma omp parallel for if (count >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < count; ++i) py[i] = fake_quantize_value(px[i], s, inv, 0.0f, 0.0f, n);
  return y;
}

PactGradients pact_backward(const Tensor& dy, const Tensor& x, const Tensor& alpha, int bits, float alpha_min) {
  check_pact("pact_backward", x, alpha, bits, alpha_min);
  if (dy.shape() != x.shape() || dy.device() != x.device() || dy.format() != x.format())
    throw Error(str("[pact_backward] the output gradient ", shape_str(dy.shape()), " on ", device_name(dy.device()),
                    " must match the input ", shape_str(x.shape()), " on ", device_name(x.device()),
                    " in memory format too"));
  QNN_ON_CUDA(x, cuda::pact_backward(dy, x, alpha, alpha_min));
  const float a = pact_clip_level(alpha.data()[0], alpha_min);
  PactGradients g{Tensor(x.shape()), Tensor({1})};
  const float* px = x.data();
  const float* pg = dy.data();
  float* pd = g.dx.data();
  const std::vector<Sum1> sum = reduce_channel_chunks(
      1, x.numel(), Sum1{0.0},
      [px, pg, pd, a](int64_t, int64_t begin, int64_t end) {
        // Float partial sums over blocks of kBlock elements (one vectorised loop each, its
        // lanes fixed at compile time), accumulated in double.
        constexpr int64_t kBlock = 256;
        double clipped = 0.0;
        for (int64_t b = begin; b < end; b += kBlock) {
          const int64_t e = std::min(b + kBlock, end);
          float block = 0.0f;
#pragma omp simd reduction(+ : block)
          for (int64_t i = b; i < e; ++i) {
            const float x = px[i], g = pg[i];
            pd[i] = g * (x > 0.0f && x < a ? 1.0f : 0.0f);
            block += x >= a ? g : 0.0f;
          }
          clipped += block;
        }
        return Sum1{clipped};
      },
      [](Sum1& s, const Sum1& t) { s.a += t.a; });
  g.dalpha.data()[0] = static_cast<float>(sum[0].a);
  return g;
}

}  // namespace qnn
