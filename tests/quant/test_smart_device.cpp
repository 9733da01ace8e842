// The smart quantizer on the GPU (quant/smart_device.cu) against the CPU (quant/smart.cpp).
// CPU tests (these run here): the pieces the kernel shares with the host are checked against the
// CPU quantizer bit for bit: the replica of std::sort (quant/std_sort_replica.h) against
// std::sort on arrays full of -0/+0 and ties, and a sequential host run of the kernel's exact
// algorithm (replica sort, quant/smart_fit.h arithmetic, breadth-first nodes, rounding) against
// SmartQuantizer's levels and decode(encode(g)). GPU tests (compiled only on a machine without a
// GPU): the kernel's output against decode(encode(g)) bit for bit, variance to 1e-6 relative.
#include <doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/device_quantizer.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"
#include "quant/smart_fit.h"
#include "quant/std_sort_replica.h"
#include "tensor/tensor.h"
#include "tests/gpu.h"

using namespace qnn;

namespace {

uint32_t bits(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Values from a tiny set (ties everywhere) with both zeros, or a normal spread.
std::vector<float> tie_heavy(int64_t n, uint64_t seed) {
  const std::vector<float> u = Tensor::uniform({std::max<int64_t>(n, 1)}, 0.0f, 1.0f, seed).to_vector();
  const float pool[] = {-0.0f, 0.0f, 1.0f, -1.0f, 0.5f, -0.0f, 0.0f, 2.0f};
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = pool[int(u[i] * 8) & 7];
  return v;
}

// A gradient for smart: normal values, exact zeros of both signs, repeated values.
std::vector<float> smart_gradient(int64_t n, uint64_t seed, bool mixed_zeros) {
  std::vector<float> g = Tensor::normal({std::max<int64_t>(n, 1)}, 0.0f, 1.0f, seed).to_vector();
  g.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    if (i % 37 == 3) g[i] = 0.0f;
    if (mixed_zeros && i % 41 == 7) g[i] = -0.0f;
    if (i % 29 == 11) g[i] = g[i / 3];
  }
  return g;
}

// The kernel's fit of one bucket, run sequentially on the host: the same helpers, the same node
// order, so the same levels.
std::vector<float> host_kernel_levels(const float* x, int d, int count) {
  std::vector<float> sorted(x, x + d);
  std_sort_replica::sort(sorted.data(), d);
  std::vector<double> a(d), s(d + 1), ss(d + 1), base(d), dp(d);
  std::vector<int> left(d), right(d), mid(d), bounds(d + 2), depth_begin(smart_fit::kMaxDepths);
  const int intervals = count - 1;
  std::vector<int> arg(size_t(count) * d, 0);
  smart_fit::prefix_sums(sorted.data(), d, a.data(), s.data(), ss.data());
  const int depths = smart_fit::build_nodes(d, left.data(), right.data(), mid.data(), depth_begin.data());
  for (int t = 0; t < d; ++t) dp[t] = smart_fit::interval_cost(a.data(), s.data(), ss.data(), 0, t);
  for (int k = 2; k <= intervals; ++k) {
    for (int j = 0; j < d; ++j) base[j] = smart_fit::row_base(a.data(), s.data(), ss.data(), dp.data(), j);
    int* arg_k = &arg[size_t(k) * d];
    if (k == intervals) {
      dp[d - 1] = smart_fit::scan(a.data(), s.data(), ss.data(), base.data(), d - 1, 0, d - 1, &arg_k[d - 1]);
      continue;
    }
    bounds[0] = 0, bounds[d + 1] = d - 1;
    for (int level = 0; level < depths; ++level)
      for (int n = depth_begin[level]; n < depth_begin[level + 1]; ++n) {
        const int m = mid[n], first = bounds[left[n]], last = std::min(m, bounds[right[n]]);
        int best;
        dp[m] = smart_fit::scan(a.data(), s.data(), ss.data(), base.data(), m, first, last, &best);
        arg_k[m] = bounds[m + 1] = best;
      }
  }
  std::vector<float> levels(count);
  int at = d - 1;
  levels[intervals] = sorted[at];
  for (int k = intervals; k >= 1; --k) {
    at = arg[size_t(k) * d + at];
    levels[k - 1] = sorted[at];
  }
  return levels;
}

// The kernel's rounding of one bucket on the host (smart_device.cu step 3).
void host_kernel_round(const std::vector<float>& levels, float* g, int d, uint64_t key, uint64_t seed, uint64_t step) {
  const int count = int(levels.size());
  const float bottom = levels[0], top = levels[count - 1];
  for (int i = 0; i < d; ++i) {
    const float r = g[i];
    const int j = int(std::upper_bound(levels.begin() + 1, levels.end() - 1, r) - levels.begin()) - 1;
    const float low = levels[j], high = levels[j + 1];
    const float u = random_uniform(seed, quant_stream(step), key + uint64_t(i));
    const bool up = high > low && u * (high - low) < r - low;
    int index = j + int(up);
    index = r >= top ? count - 1 : index;
    index = r <= bottom ? 0 : index;
    g[i] = levels[index];
  }
}

QuantizerOptions smart_options(int64_t bucket, int levels) {
  QuantizerOptions o;
  o.bucket_size = bucket;
  o.levels = levels;
  return o;
}

}  // namespace

TEST_CASE("std_sort_replica: the same order as std::sort, bit for bit, -0 and +0 included") {
  for (int64_t n = 0; n <= 600; n += (n < 80 ? 1 : 37)) {
    for (uint64_t seed : {1ull, 2ull}) {
      std::vector<float> v = seed == 1 ? tie_heavy(n, 100 + uint64_t(n)) : smart_gradient(n, 7 + uint64_t(n), true);
      std::vector<float> expected = v;
      std::sort(expected.begin(), expected.end());
      std_sort_replica::sort(v.data(), n);
      INFO("n ", n, " seed ", seed);
      int64_t differ = 0;
      for (int64_t i = 0; i < n; ++i) differ += bits(v[i]) != bits(expected[i]);
      CHECK(differ == 0);
    }
  }
  // Sorted and reversed runs with zeros (the partition's worst shapes).
  std::vector<float> v;
  for (int i = 0; i < 513; ++i) v.push_back(i % 3 == 0 ? -0.0f : (i % 3 == 1 ? 0.0f : float(512 - i)));
  std::vector<float> expected = v;
  std::sort(expected.begin(), expected.end());
  std_sort_replica::sort(v.data(), int64_t(v.size()));
  for (size_t i = 0; i < v.size(); ++i) REQUIRE(bits(v[i]) == bits(expected[i]));
}

TEST_CASE("smart device algorithm, run on the host, equals the CPU quantizer bit for bit") {
  for (int levels : {2, 3, 4, 16}) {
    const auto q = make_quantizer("smart", smart_options(512, levels));
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(512), int64_t(3 * 512 + 77)}) {
      for (bool mixed : {false, true}) {
        const std::vector<float> g = smart_gradient(n, 40 + uint64_t(n) + uint64_t(levels), mixed);
        for (uint64_t step : {0ull, 13ull}) {
          INFO("levels ", levels, " n ", n, " mixed zeros ", mixed, " step ", step);
          const std::vector<std::vector<float>> cpu_levels = q->bucket_levels(g.data(), n, 9, step);
          std::vector<float> cpu = g;
          q->quantize(cpu.data(), n, 9, step);
          std::vector<float> host = g;
          for (int64_t start = 0, b = 0; start < n; start += 512, ++b) {
            const int d = int(std::min<int64_t>(512, n - start));
            const std::vector<float> lv = host_kernel_levels(g.data() + start, d, levels);
            REQUIRE(lv.size() == cpu_levels[size_t(b)].size());
            for (int k = 0; k < levels; ++k) CHECK(bits(lv[k]) == bits(cpu_levels[size_t(b)][k]));
            host_kernel_round(lv, host.data() + start, d, uint64_t(start), 9, step);
          }
          int64_t differ = 0;
          for (int64_t i = 0; i < n; ++i) differ += bits(host[i]) != bits(cpu[i]);
          CHECK(differ == 0);
        }
      }
    }
  }
}

TEST_CASE("DeviceQuantizer::supports smart with every value a candidate only") {
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(512, 16))));
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(100, 4))));
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", smart_options(513, 16))));
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", smart_options(512, 1024))));
}

GPU_TEST_CASE("smart cuda: decode(encode(g)) bit for bit, variance to 1e-6") {
  for (int levels : {2, 4, 16}) {
    for (int64_t bucket : {int64_t(512), int64_t(100)}) {
      const auto q = make_quantizer("smart", smart_options(bucket, levels));
      for (int64_t n : {int64_t(1), int64_t(7), int64_t(512), int64_t(3 * 512 + 77), int64_t(269722)}) {
        if (levels != 16 && n == 269722) continue;
        for (bool mixed : {false, true}) {
          const std::vector<float> g = smart_gradient(n, 70 + uint64_t(n), mixed);
          for (uint64_t step : {0ull, 41ull}) {
            for (uint64_t seed : {5ull, 6ull}) {
              INFO("levels ", levels, " bucket ", bucket, " n ", n, " mixed ", mixed, " step ", step, " seed ", seed);
              std::vector<float> cpu = g;
              const double cpu_bits = q->quantize(cpu.data(), n, seed, step);
              const double cpu_variance = q->variance(g.data(), n, seed, step);
              Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA);
              double gpu_variance = 0;
              const double gpu_bits = quantize_on_device(*q, a, seed, step, {}, &gpu_variance);
              const std::vector<float> gpu = a.to_vector();
              int64_t differ = 0;
              for (int64_t i = 0; i < n; ++i) differ += bits(gpu[i]) != bits(cpu[i]);
              CHECK(differ == 0);
              // Summed in another order: equal to rounding.
              CHECK(std::fabs(gpu_variance - cpu_variance) <= 1e-6 * std::fabs(cpu_variance) + 1e-30);
              CHECK(gpu_bits == cpu_bits);
            }
          }
        }
      }
    }
  }
}
