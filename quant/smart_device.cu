// CUDA kernel of the smart quantizer (spec 2.5, quant/smart.cpp) for DeviceQuantizer: one block
// per bucket of d <= 512 coordinates, where every value is a candidate (the CPU's count
// max(floor(P d), 512) >= d), decode(encode(g)) in place, bit for bit the CPU's:
//   1. sort the bucket in shared memory: a rank sort by the order-preserving key (value order,
//      -0 before +0), which is std::sort's result whenever the bucket does not hold both zeros;
//      a bucket holding both is sorted by thread 0 with the replica of libstdc++'s std::sort
//      (quant/std_sort_replica.h), so its zeros land where the CPU's land;
//   2. the level DP of quant/level_dp.cpp with the arithmetic of quant/smart_fit.h: prefix sums
//      by thread 0 in order, then row by row the divide-and-conquer nodes depth by depth (nodes
//      of one depth in parallel, a barrier between depths), the last row's single full scan, the
//      argmin table in global scratch (int16 per entry), backtracking by thread 0;
//   3. stochastic rounding of quant/smart.cpp round_bucket: j = the number of inner levels <= x,
//      up iff high > low and u (high - low) < x - low, clamped at both ends; u drawn at
//      random_uniform(seed, quant_stream(step), key + i).
// The per-bucket variance is a fixed-order block sum (the CPU sums in coordinate order: equal to
// rounding, ~1e-15 relative). No allocation, no host synchronisation: graph-capturable. Non-finite
// gradients, which the CPU rejects, give unspecified results here.
#include "quant/device_quantizer.h"
#include "quant/rounding.h"
#include "quant/smart_fit.h"
#include "quant/std_sort_replica.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

constexpr int kSmartThreads = 256;
constexpr int kC = smart_fit::kMaxCandidates;

__device__ uint32_t order_key(float x) {
  const uint32_t b = __float_as_uint(x);
  return b ^ ((b & 0x80000000u) ? 0xFFFFFFFFu : 0x80000000u);
}

__global__ void __launch_bounds__(kSmartThreads) smart_kernel(QuantizeLaunch c) {
  extern __shared__ float levels[];  // c.levels floats
  __shared__ float sorted[kC];
  __shared__ uint32_t key[kC];
  __shared__ double a[kC], s[kC + 1], ss[kC + 1], base[kC], dp[kC], reduce[kSmartThreads];
  __shared__ int left[kC], right[kC], mid[kC], bounds[kC + 2], depth_begin[smart_fit::kMaxDepths];
  __shared__ int depths, negative_zero, positive_zero;
  __shared__ int points[kMaxDeviceSmartLevels];  // the K + 1 = c.levels chosen candidate indices
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* g = c.grad + b.begin;
  const int d = int(b.length);
  const int count = c.levels, intervals = count - 1;
  const int64_t stride = c.max_length;  // one argmin row per DP row, max_length entries
  int16_t* arg = reinterpret_cast<int16_t*>(c.scratch) + int64_t(blockIdx.x) * int64_t(count) * stride;

  // 1. Sort.
  if (threadIdx.x == 0) negative_zero = positive_zero = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float x = g[i];
    key[i] = order_key(x);
    if (__float_as_uint(x) == 0x80000000u) negative_zero = 1;
    if (__float_as_uint(x) == 0u) positive_zero = 1;
  }
  __syncthreads();
  const bool mixed_zeros = negative_zero && positive_zero;
  if (mixed_zeros) {
    if (threadIdx.x == 0) {
      for (int i = 0; i < d; ++i) sorted[i] = g[i];
      std_sort_replica::sort(sorted, d);
    }
  } else {
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
      const uint32_t k = key[i];
      int rank = 0;
      for (int j = 0; j < d; ++j) rank += key[j] < k || (key[j] == k && j < i);
      sorted[rank] = g[i];
    }
  }
  if (threadIdx.x == 0) {
    smart_fit::prefix_sums(sorted, d, a, s, ss);
    depths = smart_fit::build_nodes(d, left, right, mid, depth_begin);
  }
  __syncthreads();

  // 2. The DP. dp[1][M] = err(0, M).
  for (int t = threadIdx.x; t < d; t += blockDim.x) dp[t] = smart_fit::interval_cost(a, s, ss, 0, t);
  __syncthreads();
  for (int k = 2; k <= intervals; ++k) {
    for (int j = threadIdx.x; j < d; j += blockDim.x) base[j] = smart_fit::row_base(a, s, ss, dp, j);
    __syncthreads();
    int16_t* arg_k = arg + int64_t(k) * stride;
    if (k == intervals) {
      if (threadIdx.x == 0) {
        int best;
        dp[d - 1] = smart_fit::scan(a, s, ss, base, d - 1, 0, d - 1, &best);
        arg_k[d - 1] = int16_t(best);
      }
    } else {
      if (threadIdx.x == 0) bounds[0] = 0, bounds[d + 1] = d - 1;
      __syncthreads();
      for (int level = 0; level < depths; ++level) {
        for (int n = depth_begin[level] + threadIdx.x; n < depth_begin[level + 1]; n += blockDim.x) {
          const int m = mid[n], first = bounds[left[n]];
          const int last = min(m, bounds[right[n]]);
          int best;
          dp[m] = smart_fit::scan(a, s, ss, base, m, first, last, &best);
          arg_k[m] = int16_t(best);
          bounds[m + 1] = best;
        }
        __syncthreads();
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {  // backtrack (level_dp.cpp backtrack); rows 0 and 1 are all 0
    int at = d - 1;
    points[intervals] = at;
    for (int k = intervals; k >= 1; --k) {
      at = k >= 2 ? int(arg[int64_t(k) * stride + at]) : 0;
      points[k - 1] = at;
    }
  }
  __syncthreads();
  for (int k = threadIdx.x; k < count; k += blockDim.x) levels[k] = sorted[points[k]];
  __syncthreads();

  // 3. Rounding (quant/smart.cpp round_bucket and bucket_variance).
  const uint64_t stream = quant_stream(uint64_t(*c.step));
  const float bottom = levels[0], top = levels[count - 1];
  double variance = 0.0;
  for (int i = threadIdx.x; i < d; i += blockDim.x) {
    const float r = g[i];
    int lo = 1, hi = count - 1;  // the number of inner levels levels[1..count-2] <= r
    while (lo < hi) {
      const int m = (lo + hi) / 2;
      if (levels[m] <= r) lo = m + 1;
      else hi = m;
    }
    const int j = lo - 1;
    const float low = levels[j], high = levels[j + 1];
    const float u = random_uniform(c.seed, stream, uint64_t(b.key + i));
    const bool up = high > low && __fmul_rn(u, __fsub_rn(high, low)) < __fsub_rn(r, low);
    int index = j + int(up);
    index = r >= top ? count - 1 : index;
    index = r <= bottom ? 0 : index;
    g[i] = levels[index];
    if (r > bottom && r < top)
      variance += __dmul_rn(__dsub_rn(double(r), double(low)), __dsub_rn(double(high), double(r)));
  }
  if (c.bucket_variance) {
    reduce[threadIdx.x] = variance;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) reduce[threadIdx.x] += reduce[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) c.bucket_variance[blockIdx.x] = reduce[0];
  }
}

}  // namespace

int64_t smart_scratch_floats(int64_t bucket_count, int64_t max_length, int levels) {
  return (bucket_count * int64_t(levels) * max_length + 1) / 2;  // int16 argmins, max_length per DP row
}

void quantize_smart_buckets(const QuantizeLaunch& c) {
  if (c.bucket_count == 0) return;
  QNN_CHECK(c.bucket_count <= 0x7fffffff, "too many buckets for one grid: ", c.bucket_count);
  QNN_CHECK(c.max_length <= kC, "smart on the GPU takes buckets of up to ", kC, ", got ", c.max_length);
  QNN_CHECK(c.levels >= 2 && c.levels <= kMaxDeviceSmartLevels, "smart on the GPU takes 2..",
            kMaxDeviceSmartLevels, " levels, got ", c.levels);
  QNN_CHECK(c.scratch != nullptr, "smart on the GPU needs its argmin scratch");
  smart_kernel<<<unsigned(c.bucket_count), kSmartThreads, size_t(c.levels) * sizeof(float), stream()>>>(c);
  QNN_LAUNCH_CHECK("quantize smart, ", c.bucket_count, " buckets of up to ", c.max_length, ", ", c.levels,
                   " levels");
}

}  // namespace qnn::cuda
