// CUDA element-wise kernels and the deterministic sum: the twins of tensor/elementwise.cpp,
// formulas in tensor/elementwise.h. Each kernel is a grid-stride loop, one element per thread
// per iteration; the same float operations as the CPU loop, so results match it bit for bit.
// bf16 (docs/bf16.md): add_into, which the autograd engine calls where two gradients of a value
// meet, takes bf16 dst and src (a kernel templated on the stored type: the sum of the two values
// in float, rounded once to bf16). The other ops are float only and refuse a bf16 operand by
// name (refuse_bf16), before allocating anything.
#include "tensor/bf16.h"
#include "tensor/cuda_runtime.h"
#include "tensor/elementwise.h"

namespace qnn::cuda {

namespace {

template <class F>
__global__ void binary_kernel(const float* a, const float* b, float* y, int64_t n, F f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = f(a[i], b[i]);
}

template <class F>
__global__ void unary_kernel(const float* a, float* y, int64_t n, F f) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = f(a[i]);
}

// Ops without a bf16 version say so, naming themselves, instead of failing later in data().
void refuse_bf16(const char* op, const char* what, const Tensor& t) {
  if (t.is_bf16())
    throw Error(str("[", op, "] ", what, " is a bfloat16 ", shape_str(t.shape()), " tensor, but ", op,
                    " has no bfloat16 version: convert it with to_dtype(DType::f32)"));
}

template <class F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  refuse_bf16(op, "the first operand", a);
  refuse_bf16(op, "the second operand", b);
  Tensor y = Tensor::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return y;
  binary_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a.data(), b.data(), y.data(), n, f);
  QNN_LAUNCH_CHECK(op, " ", shape_str(a.shape()));
  return y;
}

template <class F>
Tensor unary(const char* op, const Tensor& a, F f) {
  refuse_bf16(op, "the operand", a);
  Tensor y = Tensor::empty_like(a);
  const int64_t n = a.numel();
  if (n == 0) return y;
  unary_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(a.data(), y.data(), n, f);
  QNN_LAUNCH_CHECK(op, " ", shape_str(a.shape()));
  return y;
}

struct Add { __device__ float operator()(float x, float y) const { return x + y; } };
struct Sub { __device__ float operator()(float x, float y) const { return x - y; } };
struct Mul { __device__ float operator()(float x, float y) const { return x * y; } };
struct Scale {
  float s;
  __device__ float operator()(float x) const { return s * x; }
};
// NaN stays NaN (as in PyTorch): a diverged network must not look healthy after a ReLU.
struct Relu { __device__ float operator()(float x) const { return x > 0.0f || x != x ? x : 0.0f; } };
struct AddRelu {
  __device__ float operator()(float x, float y) const {
    const float s = x + y;
    return s > 0.0f || s != s ? s : 0.0f;
  }
};
struct ReluBackward { __device__ float operator()(float g, float out) const { return out > 0.0f ? g : 0.0f; } };

// dst = dst + src in float, stored as T: for float the float kernel's dst[i] += src[i].
template <class T>
__global__ void add_into_kernel(T* dst, const T* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = from_float<T>(to_float(dst[i]) + to_float(src[i]));
}

__global__ void add_scalar_kernel(float* dst, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += value;
}

// Sum of fixed blocks of kSumBlock elements, one CUDA block each, reduced in double in a fixed
// tree (so the result never depends on scheduling); the host then adds the block sums in order.
constexpr int kSumBlock = 16384;
__global__ void block_sum_kernel(const float* x, int64_t n, double* partial) {
  __shared__ double shared[kThreads];
  const int64_t begin = int64_t(blockIdx.x) * kSumBlock;
  const int64_t end = begin + kSumBlock < n ? begin + kSumBlock : n;
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += x[i];
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) { return binary("add", a, b, Add{}); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary("sub", a, b, Sub{}); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary("mul", a, b, Mul{}); }
Tensor scale(const Tensor& a, float s) { return unary("scale", a, Scale{s}); }
Tensor relu(const Tensor& a) { return unary("relu", a, Relu{}); }
Tensor add_relu(const Tensor& a, const Tensor& b) { return binary("add_relu", a, b, AddRelu{}); }
Tensor relu_backward(const Tensor& dy, const Tensor& y) { return binary("relu_backward", dy, y, ReluBackward{}); }

void add_into(Tensor& dst, const Tensor& src) {  // same dtypes: checked by tensor/elementwise.cpp
  const int64_t n = dst.numel();
  if (n == 0) return;
  if (dst.is_bf16())
    add_into_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(static_cast<uint16_t*>(dst.raw()),
                                                               static_cast<const uint16_t*>(src.raw()), n);
  else
    add_into_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst.data(), src.data(), n);
  QNN_LAUNCH_CHECK("add_into ", shape_str(dst.shape()));
}

void add_scalar(Tensor& dst, float value) {
  refuse_bf16("add_scalar", "dst", dst);
  const int64_t n = dst.numel();
  if (n == 0) return;
  add_scalar_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(dst.data(), n, value);
  QNN_LAUNCH_CHECK("add_scalar ", shape_str(dst.shape()));
}

double sum_all(const Tensor& x) {
  refuse_bf16("sum_all", "x", x);
  const int64_t n = x.numel();
  if (n == 0) return 0.0;
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  // Doubles in a float tensor: two floats per double.
  Tensor partial({2 * blocks}, Device::CUDA);
  double* device_partial = reinterpret_cast<double*>(partial.data());
  block_sum_kernel<<<unsigned(blocks), kThreads, 0, stream()>>>(x.data(), n, device_partial);
  QNN_LAUNCH_CHECK("sum_all ", shape_str(x.shape()));
  std::vector<double> host(static_cast<size_t>(blocks));
  device_copy(host.data(), Device::CPU, device_partial, Device::CUDA, host.size() * sizeof(double));
  double total = 0.0;
  for (double s : host) total += s;
  return total;
}

}  // namespace qnn::cuda
