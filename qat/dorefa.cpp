// CPU DoReFa weight normalisation, its gradient and the weight levels (see qat/dorefa.h).
#include "qat/dorefa.h"

#include <cmath>

#include "qat/channel_reduce.h"
#include "qat/fake_quant_math.h"
#include "qat/observer_math.h"  // max_keep_nan
#include "qat/quant_range.h"
#include "tensor/device.h"

namespace qnn {

namespace {

constexpr int64_t kParallelMin = 32768;

struct MaxAcc {
  float m;
};

}  // namespace

DorefaNormalized dorefa_normalize_forward(const Tensor& w) {
  QNN_CHECK(w.defined() && w.numel() > 0, "the weights must be a non-empty tensor");
  QNN_ON_CUDA(w, cuda::dorefa_normalize_forward(w));
  DorefaNormalized out{Tensor(w.shape()), Tensor(w.shape()), Tensor({1})};
  const float* pw = w.data();
  float* pt = out.t.data();
  const std::vector<MaxAcc> m = reduce_channels(
      1, w.numel(), MaxAcc{0.0f},
      [&](int64_t, int64_t i, MaxAcc& acc) {
        pt[i] = std::tanh(pw[i]);
        acc.m = max_keep_nan(acc.m, std::fabs(pt[i]));
      },
      [](MaxAcc& a, const MaxAcc& b) { a.m = max_keep_nan(a.m, b.m); });
  const float max_abs = m[0].m;
  out.max_abs.data()[0] = max_abs;
  float* pf = out.f.data();
  const int64_t n = w.numel();
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) pf[i] = dorefa_normalize_value(pt[i], max_abs);
  return out;
}

Tensor dorefa_normalize_backward(const Tensor& df, const Tensor& t, const Tensor& max_abs) {
  if (df.shape() != t.shape() || df.device() != t.device() || max_abs.numel() != 1 ||
      max_abs.device() != t.device())
    throw Error(str("[dorefa_normalize_backward] expected the gradient of f and tanh(w) of one shape and M [1] on "
                    "one device, found ",
                    shape_str(df.shape()), ", ", shape_str(t.shape()), " and ", shape_str(max_abs.shape())));
  QNN_ON_CUDA(t, cuda::dorefa_normalize_backward(df, t, max_abs));
  const float m = max_abs.data()[0];
  const float* pg = df.data();
  const float* pt = t.data();
  // S = sum df_i t_i and the number of elements at the max.
  const std::vector<Sum2> s = reduce_channels(
      1, t.numel(), Sum2{0.0, 0.0},
      [&](int64_t, int64_t i, Sum2& acc) {
        acc.a += double(pg[i]) * double(pt[i]);
        if (std::fabs(pt[i]) == m) acc.b += 1.0;
      },
      [](Sum2& a, const Sum2& b) {
        a.a += b.a;
        a.b += b.b;
      });
  const float k = dorefa_tie_coefficient(s[0].a, s[0].b, m);
  Tensor dw(t.shape());
  float* pd = dw.data();
  const int64_t n = t.numel();
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) pd[i] = dorefa_normalize_grad(pg[i], pt[i], m, k);
  return dw;
}

Tensor dorefa_weight_levels(const Tensor& f, int bits) {
  const float n = float(quant_range(bits, false).qmax);
  QNN_ON_CUDA(f, cuda::dorefa_weight_levels(f, n));
  Tensor y(f.shape());
  const float* pf = f.data();
  float* py = y.data();
  const int64_t count = f.numel();
#pragma omp parallel for if (count >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < count; ++i) py[i] = dorefa_weight_level(pf[i], n);
  return y;
}

}  // namespace qnn
