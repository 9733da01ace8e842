// CPU element-wise kernels and the deterministic sum (see tensor/elementwise.h). The checks here
// run before a CUDA tensor is sent to its twin (tensor/elementwise.cu) and read no elements:
// operands must agree in element type as in shape, device and format; whether an op takes bf16
// at all (add_into does, the others refuse it by name) is for the CUDA twin, since only the GPU
// holds bf16 tensors.
#include "tensor/elementwise.h"

#include "tensor/device.h"

#include <algorithm>
#include <vector>

namespace qnn {

namespace {

// Below this many elements a loop runs on one thread: starting threads would cost more.
constexpr int64_t kParallelMin = 32768;

void check_same_shape(const char* op, const char* what_a, const Tensor& a, const char* what_b,
                      const Tensor& b) {
  if (a.shape() != b.shape())
    throw Error(str("[", op, "] shapes must match exactly (no broadcasting): ", what_a, " is ",
                    shape_str(a.shape()), ", ", what_b, " is ", shape_str(b.shape())));
  if (a.device() != b.device())
    throw Error(str("[", op, "] ", what_a, " is on ", device_name(a.device()), " but ", what_b,
                    " on ", device_name(b.device())));
  if (a.format() != b.format())
    throw Error(str("[", op, "] ", what_a, " is ", a.is_channels_last() ? "channels-last" : "contiguous", " but ",
                    what_b, " is not: convert one (Tensor::contiguous, Tensor::channels_last)"));
  if (a.dtype() != b.dtype())
    throw Error(str("[", op, "] ", what_a, " is ", dtype_name(a.dtype()), " but ", what_b, " is ",
                    dtype_name(b.dtype()), ": convert one (Tensor::to_dtype)"));
}

// y[i] = f(a[i], b[i]) for every i: one vectorised pass, threads over contiguous ranges.
template <class F>
Tensor binary(const Tensor& a, const Tensor& b, F f) {
  Tensor y(a.shape(), a.device());
  const float* pa = a.data();
  const float* pb = b.data();
  float* py = y.data();
  const int64_t n = a.numel();
#pragma omp parallel for simd if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
  return y;
}

template <class F>
Tensor unary(const Tensor& a, F f) {
  Tensor y(a.shape(), a.device());
  const float* pa = a.data();
  float* py = y.data();
  const int64_t n = a.numel();
#pragma omp parallel for simd if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) py[i] = f(pa[i]);
  return y;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape("add", "a", a, "b", b);
  QNN_ON_CUDA(a, cuda::add(a, b));
  return binary(a, b, [](float x, float y) { return x + y; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  check_same_shape("sub", "a", a, "b", b);
  QNN_ON_CUDA(a, cuda::sub(a, b));
  return binary(a, b, [](float x, float y) { return x - y; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape("mul", "a", a, "b", b);
  QNN_ON_CUDA(a, cuda::mul(a, b));
  return binary(a, b, [](float x, float y) { return x * y; });
}

Tensor scale(const Tensor& a, float s) {
  QNN_ON_CUDA(a, cuda::scale(a, s));
  return unary(a, [s](float x) { return s * x; });
}

Tensor relu(const Tensor& a) {
  QNN_ON_CUDA(a, cuda::relu(a));
  return unary(a, [](float x) { return x > 0.0f || x != x ? x : 0.0f; });  // NaN stays NaN, as in PyTorch
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  check_same_shape("add_relu", "a", a, "b", b);
  QNN_ON_CUDA(a, cuda::add_relu(a, b));
  return binary(a, b, [](float x, float y) {
    const float s = x + y;
    return s > 0.0f || s != s ? s : 0.0f;
  });
}

Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  check_same_shape("relu_backward", "output gradient", dy, "output", y);
  QNN_ON_CUDA(dy, cuda::relu_backward(dy, y));
  return binary(dy, y, [](float g, float out) { return out > 0.0f ? g : 0.0f; });
}

void add_into(Tensor& dst, const Tensor& src) {
  if (dst.numel() != src.numel() || dst.device() != src.device())
    throw Error(str("[add_into] cannot add ", shape_str(src.shape()), " on ", device_name(src.device()),
                    " into ", shape_str(dst.shape()), " on ", device_name(dst.device())));
  if (dst.format() != src.format())
    throw Error(str("[add_into] cannot add ", src.is_channels_last() ? "channels-last " : "contiguous ",
                    shape_str(src.shape()), " into ", dst.is_channels_last() ? "channels-last " : "contiguous ",
                    shape_str(dst.shape()), ": the memory formats differ"));
  if (dst.dtype() != src.dtype())
    throw Error(str("[add_into] cannot add ", dtype_name(src.dtype()), " ", shape_str(src.shape()), " into ",
                    dtype_name(dst.dtype()), " ", shape_str(dst.shape()),
                    ": the element types differ (convert one with Tensor::to_dtype)"));
  QNN_ON_CUDA(dst, cuda::add_into(dst, src));
  float* pd = dst.data();
  const float* ps = src.data();
  const int64_t n = dst.numel();
#pragma omp parallel for simd if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) pd[i] += ps[i];
}

void add_scalar(Tensor& dst, float value) {
  QNN_ON_CUDA(dst, cuda::add_scalar(dst, value));
  float* p = dst.data();
  for (int64_t i = 0; i < dst.numel(); ++i) p[i] += value;
}

double sum_all(const Tensor& x) {
  QNN_ON_CUDA(x, cuda::sum_all(x));
  // Fixed blocks, each summed by one thread, then the block sums in block order: the rounding is
  // the same whatever the number of threads.
  constexpr int64_t kBlock = 16384;
  const float* p = x.data();
  const int64_t n = x.numel();
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for if (blocks > 1) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t begin = blk * kBlock, end = std::min(n, begin + kBlock);
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = begin; i < end; ++i) s += p[i];
    partial[blk] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace qnn
