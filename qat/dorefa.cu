// CUDA DoReFa weight quantizer: the twin of qat/dorefa.cpp. The max of |tanh w| is a reduction
// (exact in any order), the sum S of the backward pass a double reduction (qat/channel_reduce_cuda.h)
// whose second stage also forms the tie coefficient k on the device; the per-element steps use the
// formulas of qat/fake_quant_math.h. Differences from the CPU come from CUDA's tanhf only (see
// qat/dorefa.h).
#include "qat/channel_reduce.h"
#include "qat/channel_reduce_cuda.h"
#include "qat/dorefa.h"
#include "qat/fake_quant_math.h"
#include "qat/observer_math.h"

namespace qnn::cuda {

namespace {

struct MaxAcc {
  float m;
};

struct TanhMaxLoad {
  const float* w;
  float* t;
  __device__ void operator()(int64_t, int64_t i, MaxAcc& acc) const {
    const float v = tanhf(w[i]);
    t[i] = v;
    acc.m = max_keep_nan(acc.m, fabsf(v));
  }
};

struct MaxCombine {
  __device__ void operator()(MaxAcc& a, const MaxAcc& b) const { a.m = max_keep_nan(a.m, b.m); }
};

struct MaxStore {
  float* out;
  __device__ void operator()(int64_t c, const MaxAcc& acc) const { out[c] = acc.m; }
};

__global__ void normalize_kernel(const float* t, const float* max_abs, float* f, int64_t n) {
  const float m = max_abs[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    f[i] = dorefa_normalize_value(t[i], m);
}

struct TieSumLoad {
  const float *df, *t, *max_abs;
  __device__ void operator()(int64_t, int64_t i, Sum2& acc) const {
    acc.a += double(df[i]) * double(t[i]);
    if (fabsf(t[i]) == max_abs[0]) acc.b += 1.0;
  }
};

struct AddSum2 {
  __device__ void operator()(Sum2& a, const Sum2& b) const {
    a.a += b.a;
    a.b += b.b;
  }
};

struct TieCoefficientStore {
  const float* max_abs;
  float* k;
  __device__ void operator()(int64_t, const Sum2& s) const { k[0] = dorefa_tie_coefficient(s.a, s.b, max_abs[0]); }
};

__global__ void normalize_backward_kernel(const float* df, const float* t, const float* max_abs, const float* k,
                                          float* dw, int64_t n) {
  const float m = max_abs[0], kk = k[0];
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dw[i] = dorefa_normalize_grad(df[i], t[i], m, kk);
}

__global__ void levels_kernel(const float* f, float* y, int64_t n, float steps) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = dorefa_weight_level(f[i], steps);
}

}  // namespace

DorefaNormalized dorefa_normalize_forward(const Tensor& w) {
  DorefaNormalized out{Tensor(w.shape(), Device::CUDA), Tensor(w.shape(), Device::CUDA), Tensor({1}, Device::CUDA)};
  const int64_t n = w.numel();
  reduce_channels("dorefa_normalize_forward", 1, n, MaxAcc{0.0f}, TanhMaxLoad{w.data(), out.t.data()}, MaxCombine{},
                  MaxStore{out.max_abs.data()});
  normalize_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(out.t.data(), out.max_abs.data(), out.f.data(), n);
  QNN_LAUNCH_CHECK("dorefa_normalize_forward ", shape_str(w.shape()));
  return out;
}

Tensor dorefa_normalize_backward(const Tensor& df, const Tensor& t, const Tensor& max_abs) {
  const int64_t n = t.numel();
  Tensor dw(t.shape(), Device::CUDA);
  if (n == 0) return dw;
  Tensor k({1}, Device::CUDA);
  reduce_channels("dorefa_normalize_backward", 1, n, Sum2{0.0, 0.0}, TieSumLoad{df.data(), t.data(), max_abs.data()},
                  AddSum2{}, TieCoefficientStore{max_abs.data(), k.data()});
  normalize_backward_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(df.data(), t.data(), max_abs.data(), k.data(),
                                                                      dw.data(), n);
  QNN_LAUNCH_CHECK("dorefa_normalize_backward ", shape_str(t.shape()));
  return dw;
}

Tensor dorefa_weight_levels(const Tensor& f, float steps) {
  Tensor y(f.shape(), Device::CUDA);
  const int64_t n = f.numel();
  if (n == 0) return y;
  levels_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(f.data(), y.data(), n, steps);
  QNN_LAUNCH_CHECK("dorefa_weight_levels ", shape_str(f.shape()));
  return y;
}

}  // namespace qnn::cuda
