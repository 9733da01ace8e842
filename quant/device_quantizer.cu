// CUDA kernels of DeviceQuantizer (quant/device_quantizer.h): decode(encode(g)) in place, one
// block per bucket, bit for bit the CPU schemes:
//   standard    (quant/standard.cpp): min/max, grid fmin + j*unit, stochastic rounding;
//   exponential (quant/exponential.cpp): ||a||_2 and max|a|, powers of two below the norm;
//   level sets  (quant/level_set_quantizer.cpp): s = ||a||_2 or ||a||_inf,
//               r = a/(s + 1e-7), rounding over the level table, s * level;
//   hadamard    (quant/hadamard.cpp): signs, Walsh-Hadamard transform, standard grid on
//               the rotated bucket, inverse transform, signs;
//   smart       : its own kernel, quant/smart_device.cu.
// Every float operation that decides a result is the CPU's: the shared helpers of
// quant/bucket_math.h, quant/rounding.h, quant/level_lookup.h, IEEE division and square root
// (nvcc's defaults; no fast math), min/max (exact in any order), the L2 sum of squares in the
// 32-lane order of lane_sum_of_squares (warp 0, then a shuffle fold), and the Walsh-Hadamard
// butterflies in the same stages and pairs. The per-bucket variance is a fixed-order block sum
// (deterministic; its order differs from the CPU loop's, so it agrees to rounding only).
// Non-finite buckets (a NaN or an infinity in them, or a scale beyond the float range) are found
// as on the CPU, the flag OR-ed over the block with __syncthreads_or: every coordinate becomes
// bucket_nan() and the bucket's variance NaN (quant/quantizer.h, "Non-finite input").
#include "quant/bucket_math.h"
#include "quant/device_quantizer.h"
#include "quant/level_lookup.h"
#include "quant/rounding.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

constexpr int kMaxThreads = 512;
constexpr int kSharedLevels = kMaxDeviceGridLevels;  // tables up to this size live in shared memory
constexpr int64_t kSharedBudget = 40 * 1024;       // dynamic shared memory a kernel may ask for
// A GPU refuses a launch whose static and dynamic shared memory together exceed 48 KiB (without an
// opt-in); the kernels here hold a double per thread, and a float or two, beside the budget.
static_assert(kSharedBudget + int64_t(sizeof(double)) * kMaxThreads + 64 <= 48 * 1024,
              "static plus dynamic shared memory must stay within 48 KiB");
constexpr float kNormEps = 1e-7f;                  // the level-set schemes' EPS (level_set_quantizer.cpp)

__host__ __device__ inline int64_t power_of_two_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

int threads_for(int64_t max_length) { return max_length <= 1024 ? 256 : kMaxThreads; }

// Block-wide reduction in a fixed tree (blockDim.x a power of two); every thread gets the result.
template <class T, class Op>
__device__ T block_reduce(T value, double* buffer, Op op) {
  T* shared = reinterpret_cast<T*>(buffer);
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] = op(shared[threadIdx.x], shared[threadIdx.x + half]);
    __syncthreads();
  }
  const T result = shared[0];
  __syncthreads();
  return result;
}

struct MinOp { __device__ float operator()(float a, float b) const { return fminf(a, b); } };
struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct SumOp { __device__ double operator()(double a, double b) const { return a + b; } };

// sum a_k^2 in the order of lane_sum_of_squares (quant/bucket_math.h): lane l of warp 0 adds
// a[l], a[l+32], ... in order, then lane l += lane l+w for w = 16..1. Valid in thread 0; every
// thread of warp 0 must call it.
__device__ double warp_sum_of_squares(const float* a, int64_t d) {
  const int lane = threadIdx.x & (kNormLanes - 1);
  double s = 0.0;
  for (int64_t k = lane; k < d; k += kNormLanes) s += double(a[k]) * double(a[k]);
  for (int w = kNormLanes / 2; w >= 1; w /= 2) s += __shfl_down_sync(0xffffffffu, s, w);
  return s;
}

// Adds the thread's share of the bucket variance and stores the bucket's total (times `factor`).
__device__ void store_variance(const QuantizeLaunch& c, double partial, double factor, double* buffer) {
  if (!c.bucket_variance) return;  // uniform over the block
  const double total = block_reduce(partial, buffer, SumOp{});
  if (threadIdx.x == 0) c.bucket_variance[blockIdx.x] = total * factor;
}

__global__ void __launch_bounds__(kMaxThreads) standard_kernel(QuantizeLaunch c) {
  extern __shared__ float dynamic_shared[];
  __shared__ double buffer[kMaxThreads];
  float* table = dynamic_shared;  // c.levels grid points
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* a = c.grad + b.begin;
  const int64_t d = b.length;
  float lo = HUGE_VALF, hi = -HUGE_VALF;
  bool non_finite = false;
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
    lo = fminf(lo, a[k]), hi = fmaxf(hi, a[k]);
    non_finite |= !is_finite_float(a[k]);
  }
  lo = block_reduce(lo, buffer, MinOp{});
  hi = block_reduce(hi, buffer, MaxOp{});
  const float unit = fit_grid_unit(lo, hi, c.levels);  // every thread: the same deterministic loop
  // fit_uniform_grid's NaN grid: a NaN or an infinity in the bucket, or a grid beyond float.
  const bool finite = !__syncthreads_or(non_finite) && grid_is_finite(lo, unit, c.levels);
  for (int j = threadIdx.x; j < c.levels; j += blockDim.x) table[j] = grid_point(lo, unit, j);
  __syncthreads();
  const uint64_t stream = quant_stream(uint64_t(*c.step));
  double variance = 0.0;
  if (!finite) {
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) a[k] = bucket_nan();
    variance = double(bucket_nan());
  } else if (unit == 0.0f) {  // constant bucket: every index 0
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) a[k] = table[0];
  } else {
    const float inverse_unit = 1.0f / unit;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
      const float x = a[k];
      const int j = grid_interval(x, lo, inverse_unit, table, c.levels);
      const float low = table[j], high = table[j + 1];
      const float u = random_uniform(c.seed, stream, uint64_t(b.key + k));
      a[k] = table[j + (u * (high - low) < x - low ? 1 : 0)];
      variance += (double(x) - low) * (double(high) - x);
    }
  }
  store_variance(c, variance, 1.0, buffer);
}

__global__ void __launch_bounds__(kMaxThreads) exponential_kernel(QuantizeLaunch c) {
  __shared__ double buffer[kMaxThreads];
  __shared__ float shared_norm;
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* a = c.grad + b.begin;
  const int64_t d = b.length;
  float largest = 0.0f;
  for (int64_t k = threadIdx.x; k < d; k += blockDim.x) largest = fmaxf(largest, fabsf(a[k]));
  largest = block_reduce(largest, buffer, MaxOp{});
  if (threadIdx.x < kNormLanes) {
    const double sum = warp_sum_of_squares(a, d);
    if (threadIdx.x == 0) {
      const float norm = float(sqrt(sum));
      shared_norm = norm == 0.0f ? 1e-11f : norm;
    }
  }
  __syncthreads();
  const float norm = shared_norm;
  if (!is_finite_float(norm)) {  // a NaN or an infinity in the bucket, or a norm beyond float
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) a[i] = bucket_nan();
    store_variance(c, double(bucket_nan()), 1.0, buffer);
    return;
  }
  const float m = largest / norm;
  const int max_pow = m == 0.0f ? -32 : min(ceil_log2(m), 0);
  const int k = c.levels / 2, min_pow = max_pow - k + 2;
  const uint64_t stream = quant_stream(uint64_t(*c.step));
  double variance = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float x = a[i];
    const float mi = fabsf(x) / norm;
    const int j = exponential_interval(mi, min_pow, k);
    const float low = ldexpf(1.0f, max_pow - k + 1 + j), high = ldexpf(1.0f, max_pow - k + 2 + j);
    const float clamped = fminf(fmaxf(mi, low), high);
    const float u = random_uniform(c.seed, stream, uint64_t(b.key + i));
    const int magnitude = j + (u * (high - low) < clamped - low ? 1 : 0);
    const float value = ldexpf(1.0f, max_pow - k + 1 + magnitude) * norm;
    a[i] = x < 0.0f ? -value : value;
    variance += (double(clamped) - low) * (double(high) - clamped);
  }
  store_variance(c, variance, double(norm) * double(norm), buffer);
}

template <bool L2>
__global__ void __launch_bounds__(kMaxThreads) level_set_kernel(QuantizeLaunch c) {
  extern __shared__ float dynamic_shared[];
  __shared__ double buffer[kMaxThreads];
  __shared__ float shared_norm;
  const int count = c.level_count;
  const float* levels = c.level_table;
  if (count <= kSharedLevels) {
    for (int j = threadIdx.x; j < count; j += blockDim.x) dynamic_shared[j] = c.level_table[j];
    levels = dynamic_shared;
  }
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* a = c.grad + b.begin;
  const int64_t d = b.length;
  float s;
  if (L2) {
    if (threadIdx.x < kNormLanes) {
      const double sum = warp_sum_of_squares(a, d);
      if (threadIdx.x == 0) shared_norm = float(sqrt(sum));
    }
    __syncthreads();
    s = shared_norm;
  } else {
    float largest = 0.0f;
    bool nan = false;
    for (int64_t k = threadIdx.x; k < d; k += blockDim.x) {
      largest = fmaxf(largest, fabsf(a[k]));  // skips a NaN
      nan |= a[k] != a[k];
    }
    s = block_reduce(largest, buffer, MaxOp{});  // its barriers also publish the level table
    if (__syncthreads_or(nan)) s = bucket_nan();  // bucket_norm's NaN
  }
  if (!is_finite_float(s)) {  // a NaN or an infinity in the bucket, or an L2 norm beyond float
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) a[i] = bucket_nan();
    store_variance(c, double(bucket_nan()), 1.0, buffer);
    return;
  }
  const float denom = s + kNormEps;
  const uint64_t stream = quant_stream(uint64_t(*c.step));
  double variance = 0.0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const float r = a[i] / denom;
    const float u = random_uniform(c.seed, stream, uint64_t(b.key + i));
    a[i] = s * levels[round_to_level(levels, count, r, u)];
    if (c.bucket_variance) variance += level_variance(levels, count, r);
  }
  store_variance(c, variance, double(s) * double(s), buffer);
}

// y <- H y (orthonormal Walsh-Hadamard) over `padded` entries, the stages and pairs of
// quant/walsh_hadamard.cpp; ends with a barrier.
__device__ void walsh_hadamard_block(float* y, int64_t padded) {
  for (int64_t half = 1; half < padded; half *= 2) {
    for (int64_t p = threadIdx.x; p < padded / 2; p += blockDim.x) {
      const int64_t k = (p / half) * 2 * half + p % half;
      const float x0 = y[k], x1 = y[k + half];
      y[k] = x0 + x1;
      y[k + half] = x0 - x1;
    }
    __syncthreads();
  }
  const float scale = float(1.0 / sqrt(double(padded)));
  for (int64_t j = threadIdx.x; j < padded; j += blockDim.x) y[j] *= scale;
  __syncthreads();
}

// Per block: the rotated bucket y (padded floats) and its signs (padded bytes), in shared memory
// or, for large buckets, in the global scratch.
__host__ __device__ inline int64_t hadamard_block_floats(int64_t padded) { return padded + (padded + 3) / 4; }

__global__ void __launch_bounds__(kMaxThreads) hadamard_kernel(QuantizeLaunch c) {
  extern __shared__ float dynamic_shared[];
  __shared__ double buffer[kMaxThreads];
  float* table = dynamic_shared;  // c.levels grid points
  const int64_t padded_max = power_of_two_at_least(c.max_length);
  float* y = c.scratch ? c.scratch + int64_t(blockIdx.x) * hadamard_block_floats(padded_max) : table + c.levels;
  unsigned char* negative = reinterpret_cast<unsigned char*>(y + padded_max);
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* a = c.grad + b.begin;
  const int64_t d = b.length, padded = power_of_two_at_least(d);
  const uint64_t stream = quant_stream(uint64_t(*c.step));
  // y = D a, zero-padded (quant/hadamard.cpp, rotate): the sign is word 1's top bit.
  for (int64_t j = threadIdx.x; j < padded; j += blockDim.x) {
    if (j < d) {
      const Philox4 w = random_words(c.seed, stream, uint64_t(b.key + j));
      negative[j] = (w.v[1] >> 31) ? 1 : 0;
      y[j] = ((w.v[1] >> 31) ? -1.0f : 1.0f) * a[j];
    } else {
      y[j] = 0.0f;
    }
  }
  __syncthreads();
  walsh_hadamard_block(y, padded);
  float lo = HUGE_VALF, hi = -HUGE_VALF;
  bool non_finite = false;
  for (int64_t j = threadIdx.x; j < padded; j += blockDim.x) {
    lo = fminf(lo, y[j]), hi = fmaxf(hi, y[j]);
    non_finite |= !is_finite_float(y[j]);
  }
  lo = block_reduce(lo, buffer, MinOp{});
  hi = block_reduce(hi, buffer, MaxOp{});
  const float unit = fit_grid_unit(lo, hi, c.levels);
  const bool finite = !__syncthreads_or(non_finite) && grid_is_finite(lo, unit, c.levels);  // else the NaN grid
  for (int j = threadIdx.x; j < c.levels; j += blockDim.x) table[j] = grid_point(lo, unit, j);
  __syncthreads();
  // z = the rounded y: rotated coordinate j draws word 0 of counter key + j, coordinate d + j
  // (padding) word 2 of the same counter.
  double variance = 0.0;
  if (!finite) {
    variance = double(bucket_nan());  // y is left as it is: the bucket is written as NaN below
  } else if (unit == 0.0f) {
    for (int64_t j = threadIdx.x; j < padded; j += blockDim.x) y[j] = table[0];
  } else {
    const float inverse_unit = 1.0f / unit;
    for (int64_t j = threadIdx.x; j < d; j += blockDim.x) {
      const Philox4 w = random_words(c.seed, stream, uint64_t(b.key + j));
      for (int part = 0; part < 2; ++part) {
        const int64_t at = part == 0 ? j : d + j;
        if (at >= padded) break;
        const float x = y[at];
        const int i = grid_interval(x, lo, inverse_unit, table, c.levels);
        const float low = table[i], high = table[i + 1];
        const float u = uniform_from_word(part == 0 ? w.v[0] : w.v[2]);
        y[at] = table[i + (u * (high - low) < x - low ? 1 : 0)];
        variance += (double(x) - low) * (double(high) - x);
      }
    }
  }
  __syncthreads();
  walsh_hadamard_block(y, padded);
  // As the CPU decoder: a NaN grid, or an inverse rotation beyond the float range, gives NaN.
  bool overflow = false;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x) overflow |= !is_finite_float(y[j]);
  const bool nan_bucket = __syncthreads_or(overflow) || !finite;
  for (int64_t j = threadIdx.x; j < d; j += blockDim.x)
    a[j] = nan_bucket ? bucket_nan() : (negative[j] ? -1.0f : 1.0f) * y[j] + 0.0f;  // no -0
  store_variance(c, variance, double(d) / double(padded), buffer);
}

__global__ void add_variances_kernel(const double* per_bucket, int64_t count, double* total) {
  __shared__ double buffer[kThreads];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += per_bucket[i];
  s = block_reduce(s, buffer, SumOp{});
  if (threadIdx.x == 0) *total += s;
}

__global__ void set_step_kernel(int64_t* step, int64_t value) { *step = value; }
__global__ void advance_step_kernel(int64_t* step) { *step += 1; }

size_t hadamard_shared_bytes(int64_t max_length, int levels) {
  return size_t(levels) * sizeof(float) + size_t(hadamard_block_floats(power_of_two_at_least(max_length))) * sizeof(float);
}

}  // namespace

int64_t hadamard_scratch_floats(int64_t bucket_count, int64_t max_length, int levels) {
  if (int64_t(hadamard_shared_bytes(max_length, levels)) <= kSharedBudget) return 0;
  return bucket_count * hadamard_block_floats(power_of_two_at_least(max_length));
}

void quantize_buckets(const QuantizeLaunch& c) {
  if (c.bucket_count == 0) return;
  QNN_CHECK(c.bucket_count <= 0x7fffffff, "too many buckets for one grid: ", c.bucket_count);
  const unsigned blocks = unsigned(c.bucket_count);
  const int threads = threads_for(c.max_length);
  switch (c.kernel) {
    case DeviceKernel::standard:
      QNN_CHECK(c.levels >= 2 && c.levels <= kSharedLevels, "standard on the GPU takes 2..", kSharedLevels,
                " levels, got ", c.levels);
      standard_kernel<<<blocks, threads, size_t(c.levels) * sizeof(float), stream()>>>(c);
      QNN_LAUNCH_CHECK("quantize standard, ", c.bucket_count, " buckets of up to ", c.max_length);
      break;
    case DeviceKernel::exponential:
      exponential_kernel<<<blocks, threads, 0, stream()>>>(c);
      QNN_LAUNCH_CHECK("quantize exponential, ", c.bucket_count, " buckets of up to ", c.max_length);
      break;
    case DeviceKernel::level_set_l2:
    case DeviceKernel::level_set_linf: {
      QNN_CHECK(c.level_table != nullptr && c.level_count >= 2, "level-set quantization needs its level table");
      const size_t shared = c.level_count <= kSharedLevels ? size_t(c.level_count) * sizeof(float) : 0;
      if (c.kernel == DeviceKernel::level_set_l2)
        level_set_kernel<true><<<blocks, threads, shared, stream()>>>(c);
      else
        level_set_kernel<false><<<blocks, threads, shared, stream()>>>(c);
      QNN_LAUNCH_CHECK("quantize level set, ", c.bucket_count, " buckets of up to ", c.max_length, ", ",
                       c.level_count, " levels");
      break;
    }
    case DeviceKernel::hadamard: {
      QNN_CHECK(c.levels >= 2 && c.levels <= kSharedLevels, "hadamard on the GPU takes 2..", kSharedLevels,
                " levels, got ", c.levels);
      const bool in_shared = hadamard_scratch_floats(c.bucket_count, c.max_length, c.levels) == 0;
      QNN_CHECK(in_shared || c.scratch != nullptr, "hadamard with buckets of ", c.max_length,
                " needs its global scratch");
      QuantizeLaunch launch = c;
      if (in_shared) launch.scratch = nullptr;
      const size_t shared = in_shared ? hadamard_shared_bytes(c.max_length, c.levels) : size_t(c.levels) * sizeof(float);
      hadamard_kernel<<<blocks, threads, shared, stream()>>>(launch);
      QNN_LAUNCH_CHECK("quantize hadamard, ", c.bucket_count, " buckets of up to ", c.max_length);
      break;
    }
    case DeviceKernel::smart:
      quantize_smart_buckets(c);  // quant/smart_device.cu
      break;
  }
}

void add_variances(const double* per_bucket, int64_t count, double* total) {
  if (count == 0) return;
  add_variances_kernel<<<1, kThreads, 0, stream()>>>(per_bucket, count, total);
  QNN_LAUNCH_CHECK("add_variances of ", count, " buckets");
}

void set_step(int64_t* step, int64_t value) {
  set_step_kernel<<<1, 1, 0, stream()>>>(step, value);
  QNN_LAUNCH_CHECK("set_step ", value);
}

void advance_step(int64_t* step) {
  advance_step_kernel<<<1, 1, 0, stream()>>>(step);
  QNN_LAUNCH_CHECK("advance_step");
}

}  // namespace qnn::cuda
