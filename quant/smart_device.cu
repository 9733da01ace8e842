// CUDA kernel of the smart quantizer (quant/smart.cpp) for DeviceQuantizer: one block
// per bucket of d coordinates with at most 512 candidates (c = min(max(floor(P d), 512), d):
// every value when d <= 512, else a sample), decode(encode(g)) in place, bit for bit the CPU's:
//   0. sampled candidates (c < d): the CPU's partial Fisher-Yates, its draws from
//      random_words(seed, smart_sample_stream(step), key + r) computed in parallel (they do not
//      depend on the swaps), the swaps by thread 0 on a permutation in global scratch; after
//      sorting, the endpoints become std::minmax_element's first minimum and last maximum;
//   1. sort the candidates in shared memory: a rank sort by the order-preserving key of
//      quant/float_sort.h (value order, -0 before +0), the CPU's sort_floats order, so the zeros
//      of a bucket holding both land where the CPU's land;
//   2. the level DP of quant/level_dp.cpp with the arithmetic of quant/smart_fit.h: prefix sums
//      by thread 0 in order, then row by row the divide-and-conquer nodes depth by depth (nodes
//      of one depth in parallel, a barrier between depths), the last row's single full scan, the
//      argmin table in global scratch (int16 per entry), backtracking by thread 0;
//   3. stochastic rounding of quant/smart.cpp round_bucket: j = the number of inner levels <= x,
//      up iff high > low and u (high - low) < x - low, clamped at both ends; u drawn at
//      random_uniform(seed, quant_stream(step), key + i).
// The per-bucket variance is a fixed-order block sum (the CPU sums in coordinate order: equal to
// rounding, ~1e-15 relative). No allocation, no host synchronisation: graph-capturable. A bucket
// holding NaN or an infinity is not fitted: as on the CPU, it becomes bucket_nan() throughout and
// its variance NaN.
// Speed was not the aim: thread 0 runs the Fisher-Yates swaps (c dependent global loads), the
// prefix sums, the node list and the last DP row.
#include "quant/bucket_math.h"
#include "quant/device_quantizer.h"
#include "quant/rounding.h"
#include "quant/smart.h"
#include "quant/smart_fit.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

constexpr int kSmartThreads = 256;
constexpr int kC = smart_fit::kMaxCandidates;

// quant/float_sort.h float_order_key and float_from_order_key: -0 (0x7FFFFFFF) before +0.
__device__ uint32_t order_key(float x) {
  const uint32_t b = __float_as_uint(x);
  return b ^ ((b & 0x80000000u) ? 0xFFFFFFFFu : 0x80000000u);
}
__device__ float from_order_key(uint32_t k) {
  return __uint_as_float(k ^ ((k & 0x80000000u) ? 0x80000000u : 0xFFFFFFFFu));
}

// The global scratch: the argmin table (int16, rows of min(max_length, kC) per DP row), then for
// buckets over kC the sampling's index permutation (int32, max_length per bucket).
__host__ __device__ inline int64_t argmin_row(int64_t max_length) { return max_length < kC ? max_length : kC; }
__host__ __device__ inline int64_t argmin_floats(int64_t bucket_count, int64_t max_length, int levels) {
  return (bucket_count * int64_t(levels) * argmin_row(max_length) + 1) / 2;
}

__global__ void __launch_bounds__(kSmartThreads) smart_kernel(QuantizeLaunch c) {
  extern __shared__ float levels[];  // c.levels floats
  __shared__ float sorted[kC];
  __shared__ uint32_t key[kC];
  __shared__ double a[kC], s[kC + 1], ss[kC + 1], base[kC], dp[kC], reduce[kSmartThreads];
  __shared__ int left[kC], right[kC], mid[kC], bounds[kC + 2], depth_begin[smart_fit::kMaxDepths];
  __shared__ int pick[kC];
  __shared__ int depths, first_min, last_max;
  __shared__ int points[kMaxDeviceSmartLevels];  // the K + 1 = c.levels chosen candidate indices
  // A GPU refuses a launch over 48 KiB of static and dynamic shared memory (without an opt-in).
  static_assert(sizeof(float) * (2 * kC + kMaxDeviceSmartLevels) + sizeof(double) * (5 * kC + 2 + kSmartThreads) +
                        sizeof(int) * (5 * kC + 5 + smart_fit::kMaxDepths + kMaxDeviceSmartLevels) <=
                    48 * 1024,
                "the smart kernel's shared memory must stay within 48 KiB");
  const DeviceBucket b = c.buckets[blockIdx.x];
  float* g = c.grad + b.begin;
  const int d = int(b.length);
  const int count = c.levels, intervals = count - 1;
  bool non_finite = false;
  for (int i = threadIdx.x; i < d; i += blockDim.x) non_finite |= !is_finite_float(g[i]);
  if (__syncthreads_or(non_finite)) {  // quant/smart.cpp fit_bucket: NaN levels, NaN out
    for (int i = threadIdx.x; i < d; i += blockDim.x) g[i] = bucket_nan();
    if (c.bucket_variance && threadIdx.x == 0) c.bucket_variance[blockIdx.x] = double(bucket_nan());
    return;
  }
  const int64_t stride = argmin_row(c.max_length);
  int16_t* arg = reinterpret_cast<int16_t*>(c.scratch) + int64_t(blockIdx.x) * int64_t(count) * stride;
  // The candidate count of quant/smart.cpp smart_candidate_count: min(max(floor(P d), 512), d).
  int64_t wanted = int64_t(floor(mul_rn(c.sample_fraction, double(d))));
  wanted = wanted > kC ? wanted : kC;
  const int nc = int(wanted < d ? wanted : d);  // <= kC (DeviceQuantizer::supports)
  const uint64_t step = uint64_t(*c.step);

  // 1. The candidates in the CPU's order (quant/smart.cpp candidates_into), then sorted.
  if (nc == d) {
    for (int i = threadIdx.x; i < d; i += blockDim.x) sorted[i] = g[i];
  } else {  // partial Fisher-Yates: draw r picks among the d - r indices not yet taken
    int* order = reinterpret_cast<int*>(c.scratch + argmin_floats(c.bucket_count, c.max_length, count)) +
                 int64_t(blockIdx.x) * c.max_length;
    for (int i = threadIdx.x; i < d; i += blockDim.x) order[i] = i;
    const uint64_t sample_stream = smart_sample_stream(step);
    for (int r = threadIdx.x; r < nc; r += blockDim.x) {  // the draws do not depend on the swaps
      const Philox4 word = random_words(c.seed, sample_stream, uint64_t(b.key + r));
      const uint64_t bits = (uint64_t(word.v[0]) << 32) | word.v[1];
      pick[r] = r + int(bits % uint64_t(d - r));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int r = 0; r < nc; ++r) {
        const int taken = order[pick[r]];
        order[pick[r]] = order[r];
        order[r] = taken;
        sorted[r] = g[taken];
      }
    }
  }
  if (threadIdx.x == 0) first_min = d, last_max = -1;
  __syncthreads();
  for (int i = threadIdx.x; i < nc; i += blockDim.x) key[i] = order_key(sorted[i]);
  __syncthreads();
  // Rank by (key, position): the key order, in which equal keys are equal bits (-0 before +0).
  for (int i = threadIdx.x; i < nc; i += blockDim.x) {
    const uint32_t k = key[i];
    int rank = 0;
    for (int j = 0; j < nc; ++j) rank += key[j] < k || (key[j] == k && j < i);
    sorted[rank] = from_order_key(k);
  }
  __syncthreads();  // the sorted candidates, published
  if (nc < d) {  // endpoints forced to std::minmax_element's: the first minimum, the last maximum
    float lo = HUGE_VALF, hi = -HUGE_VALF;
    for (int i = threadIdx.x; i < d; i += blockDim.x) lo = fminf(lo, g[i]), hi = fmaxf(hi, g[i]);
    reduce[threadIdx.x] = lo;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) reduce[threadIdx.x] = fmin(reduce[threadIdx.x], reduce[threadIdx.x + half]);
      __syncthreads();
    }
    lo = float(reduce[0]);
    __syncthreads();
    reduce[threadIdx.x] = hi;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) reduce[threadIdx.x] = fmax(reduce[threadIdx.x], reduce[threadIdx.x + half]);
      __syncthreads();
    }
    hi = float(reduce[0]);
    for (int i = threadIdx.x; i < d; i += blockDim.x) {  // equal as numbers: -0 and +0 alike
      if (g[i] == lo) atomicMin(&first_min, i);
      if (g[i] == hi) atomicMax(&last_max, i);
    }
    __syncthreads();
    if (threadIdx.x == 0) sorted[0] = g[first_min], sorted[nc - 1] = g[last_max];
  }
  if (threadIdx.x == 0) {
    smart_fit::prefix_sums(sorted, nc, a, s, ss);
    depths = smart_fit::build_nodes(nc, left, right, mid, depth_begin);
  }
  __syncthreads();

  // 2. The DP. dp[1][M] = err(0, M).
  for (int t = threadIdx.x; t < nc; t += blockDim.x) dp[t] = smart_fit::interval_cost(a, s, ss, 0, t);
  __syncthreads();
  for (int k = 2; k <= intervals; ++k) {
    for (int j = threadIdx.x; j < nc; j += blockDim.x) base[j] = smart_fit::row_base(a, s, ss, dp, j);
    __syncthreads();
    int16_t* arg_k = arg + int64_t(k) * stride;
    if (k == intervals) {
      if (threadIdx.x == 0) {
        int best;
        dp[nc - 1] = smart_fit::scan(a, s, ss, base, nc - 1, 0, nc - 1, &best);
        arg_k[nc - 1] = int16_t(best);
      }
    } else {
      if (threadIdx.x == 0) bounds[0] = 0, bounds[nc + 1] = nc - 1;
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
    int at = nc - 1;
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
  const uint64_t stream = quant_stream(step);
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
      variance += mul_rn(sub_rn(double(r), double(low)), sub_rn(double(high), double(r)));
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
  const int64_t order = max_length > kC ? bucket_count * max_length : 0;  // int32 per coordinate
  return argmin_floats(bucket_count, max_length, levels) + order;
}

void quantize_smart_buckets(const QuantizeLaunch& c) {
  if (c.bucket_count == 0) return;
  QNN_CHECK(c.bucket_count <= 0x7fffffff, "too many buckets for one grid: ", c.bucket_count);
  QNN_CHECK(c.max_length <= 0x7fffffff, "smart on the GPU: bucket of ", c.max_length, " too long");
  QNN_CHECK(c.levels >= 2 && c.levels <= kMaxDeviceSmartLevels, "smart on the GPU takes 2..",
            kMaxDeviceSmartLevels, " levels, got ", c.levels);
  QNN_CHECK(c.scratch != nullptr, "smart on the GPU needs its argmin scratch");
  // The candidate count grows with d, so the longest bucket's bounds every bucket's.
  QNN_CHECK(smart_candidate_count(c.max_length, c.sample_fraction) <= kC, "smart on the GPU takes up to ", kC,
            " candidates per bucket; buckets of ", c.max_length, " at sample_fraction ", c.sample_fraction,
            " have ", smart_candidate_count(c.max_length, c.sample_fraction));
  smart_kernel<<<unsigned(c.bucket_count), kSmartThreads, size_t(c.levels) * sizeof(float), stream()>>>(c);
  QNN_LAUNCH_CHECK("quantize smart, ", c.bucket_count, " buckets of up to ", c.max_length, ", ", c.levels,
                   " levels");
}

}  // namespace qnn::cuda
