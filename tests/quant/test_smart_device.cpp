// The smart quantizer on the GPU (quant/smart_device.cu) against the CPU (quant/smart.cpp).
// CPU tests (these run here): the pieces the kernel shares with the host are checked against the
// CPU quantizer bit for bit: the kernel's rank sort by the key of quant/float_sort.h (-0 before
// +0), run on the host, against sort_floats on arrays full of -0/+0 and ties; the DP's
// intermediates (a, S, SS, C, X, Z, base, dp, every argmin row) against the CPU DP's scratch; and
// a sequential host run of the kernel's exact algorithm (sampling, rank sort, endpoints,
// quant/smart_fit.h arithmetic, breadth-first nodes, rounding) against smart_candidates,
// SmartQuantizer's levels and decode(encode(g)), buckets of 512 and less (every value a
// candidate) and of 1000 and 10240 (512 sampled candidates). GPU tests (skipped on a machine
// without a GPU): the kernel's output against decode(encode(g)) bit for bit, variance to 1e-6
// relative, for short gradients and for one of ResNet-20's size (on a GPU only: the CUDA emulator
// skips it).
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "quant/device_quantizer.h"
#include "quant/level_dp.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"
#include "quant/smart.h"
#include "quant/smart_fit.h"
#include "quant/float_sort.h"
#include "tensor/cuda_graph.h"
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

// The kernel's sort (smart_device.cu step 1) on the host: each value placed at its rank by
// (order key, position), so in the key order of quant/float_sort.h, -0 before +0.
void host_rank_sort(float* v, int n) {
  std::vector<uint32_t> key(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) key[size_t(i)] = float_order_key(v[i]);
  for (int i = 0; i < n; ++i) {
    int rank = 0;
    for (int j = 0; j < n; ++j) rank += key[size_t(j)] < key[size_t(i)] || (key[size_t(j)] == key[size_t(i)] && j < i);
    v[rank] = float_from_order_key(key[size_t(i)]);
  }
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
// order, so the same levels. Keeps its arrays for comparison with the CPU DP's scratch.
struct HostKernelFit {
  std::vector<float> sorted, levels;
  std::vector<double> a, s, ss, base, dp;
  std::vector<int> arg;  // (levels) rows of d argmins; rows 0 and 1 zero
};

// The kernel's candidates of one bucket (smart_device.cu steps 0 and 1), on the host.
std::vector<float> host_kernel_candidates(const float* x, int d, uint64_t key, double fraction, uint64_t seed,
                                          uint64_t step) {
  int64_t wanted = int64_t(std::floor(fraction * double(d)));
  wanted = std::max<int64_t>(wanted, smart_fit::kMaxCandidates);
  const int nc = int(std::min<int64_t>(wanted, d));
  std::vector<float> v(x, x + nc);
  if (nc < d) {
    std::vector<int> order(d), pick(nc);
    for (int i = 0; i < d; ++i) order[i] = i;
    for (int r = 0; r < nc; ++r) {
      const Philox4 word = random_words(seed, smart_sample_stream(step), key + uint64_t(r));
      const uint64_t bits = (uint64_t(word.v[0]) << 32) | word.v[1];
      pick[r] = r + int(bits % uint64_t(d - r));
    }
    for (int r = 0; r < nc; ++r) {
      std::swap(order[r], order[pick[r]]);
      v[r] = x[order[r]];
    }
  }
  host_rank_sort(v.data(), nc);
  if (nc < d) {
    float lo = x[0], hi = x[0];
    for (int i = 0; i < d; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
    int first_min = d, last_max = -1;
    for (int i = 0; i < d; ++i) {
      if (x[i] == lo) first_min = std::min(first_min, i);
      if (x[i] == hi) last_max = std::max(last_max, i);
    }
    v.front() = x[first_min], v.back() = x[last_max];
  }
  return v;
}

HostKernelFit host_kernel_fit_sorted(std::vector<float> sorted, int count) {
  HostKernelFit f;
  f.sorted = std::move(sorted);
  const int d = int(f.sorted.size());
  f.a.resize(d), f.s.resize(d + 1), f.ss.resize(d + 1), f.base.assign(d, 0.0), f.dp.resize(d);
  std::vector<int> left(d), right(d), mid(d), bounds(d + 2), depth_begin(smart_fit::kMaxDepths);
  const int intervals = count - 1;
  f.arg.assign(size_t(count) * d, 0);
  const double *a = f.a.data(), *s = f.s.data(), *ss = f.ss.data();
  smart_fit::prefix_sums(f.sorted.data(), d, f.a.data(), f.s.data(), f.ss.data());
  const int depths = smart_fit::build_nodes(d, left.data(), right.data(), mid.data(), depth_begin.data());
  for (int t = 0; t < d; ++t) f.dp[t] = smart_fit::interval_cost(a, s, ss, 0, t);
  for (int k = 2; k <= intervals; ++k) {
    for (int j = 0; j < d; ++j) f.base[j] = smart_fit::row_base(a, s, ss, f.dp.data(), j);
    int* arg_k = &f.arg[size_t(k) * d];
    if (k == intervals) {
      f.dp[d - 1] = smart_fit::scan(a, s, ss, f.base.data(), d - 1, 0, d - 1, &arg_k[d - 1]);
      continue;
    }
    bounds[0] = 0, bounds[d + 1] = d - 1;
    for (int level = 0; level < depths; ++level)
      for (int n = depth_begin[level]; n < depth_begin[level + 1]; ++n) {
        const int m = mid[n], first = bounds[left[n]], last = std::min(m, bounds[right[n]]);
        int best;
        f.dp[m] = smart_fit::scan(a, s, ss, f.base.data(), m, first, last, &best);
        arg_k[m] = bounds[m + 1] = best;
      }
  }
  f.levels.resize(count);
  int at = d - 1;
  f.levels[intervals] = f.sorted[at];
  for (int k = intervals; k >= 1; --k) {
    at = f.arg[size_t(k) * d + at];
    f.levels[k - 1] = f.sorted[at];
  }
  return f;
}

HostKernelFit host_kernel_fit(const float* x, int d, int count) {
  std::vector<float> sorted(x, x + d);
  host_rank_sort(sorted.data(), d);
  return host_kernel_fit_sorted(std::move(sorted), count);
}

std::vector<float> host_kernel_levels(const float* x, int d, int count) { return host_kernel_fit(x, d, count).levels; }

uint64_t bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

// Number of entries of two double arrays that differ by bit pattern.
int64_t differing(const double* x, const double* y, int64_t n) {
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i) k += bits(x[i]) != bits(y[i]);
  return k;
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

TEST_CASE("smart device sort, run on the host: sort_floats's order bit for bit, -0 before +0") {
  std::vector<uint32_t> keys;
  for (int64_t n = 0; n <= 512; n += (n < 80 ? 1 : 37)) {
    for (uint64_t seed : {1ull, 2ull}) {
      std::vector<float> v = seed == 1 ? tie_heavy(n, 100 + uint64_t(n)) : smart_gradient(n, 7 + uint64_t(n), true);
      std::vector<float> expected = v;
      sort_floats(expected.data(), n, keys);
      host_rank_sort(v.data(), int(n));
      INFO("n ", n, " seed ", seed);
      int64_t differ = 0, zeros_out_of_order = 0;
      for (int64_t i = 0; i < n; ++i) differ += bits(v[i]) != bits(expected[i]);
      for (int64_t i = 1; i < n; ++i) zeros_out_of_order += bits(v[i - 1]) == 0u && bits(v[i]) == 0x80000000u;
      CHECK(differ == 0);
      CHECK(zeros_out_of_order == 0);
    }
  }
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

TEST_CASE("smart device algorithm with sampled candidates, on the host, equals the CPU bit for bit") {
  // Buckets over 512 (c = max(floor(0.05 d), 512) < d): the kernel's sampling, sort, endpoints and
  // fit against smart_candidates, bucket_levels and decode(encode(g)).
  for (int64_t bucket : {int64_t(1000), int64_t(10240)}) {
    for (int levels : {4, 16}) {
      QuantizerOptions o;
      o.bucket_size = bucket, o.levels = levels;
      const auto q = make_quantizer("smart", o);
      for (int64_t n : {bucket, 2 * bucket + 700, int64_t(600)}) {
        for (int variant : {0, 1, 2}) {  // no -0; -0 and +0; all >= 0 with both zeros (min is a zero)
          const bool mixed = variant > 0;
          std::vector<float> g = smart_gradient(n, 900 + uint64_t(n) + uint64_t(levels), mixed);
          if (variant == 2)
            for (float& x : g) x = bits(x) == 0x80000000u ? x : std::fabs(x);
          for (uint64_t step : {0ull, 13ull}) {
            INFO("bucket ", bucket, " levels ", levels, " n ", n, " variant ", variant, " step ", step);
            const std::vector<std::vector<float>> cpu_levels = q->bucket_levels(g.data(), n, 9, step);
            std::vector<float> cpu = g;
            q->quantize(cpu.data(), n, 9, step);
            std::vector<float> host = g;
            for (int64_t start = 0, b = 0; start < n; start += bucket, ++b) {
              const int d = int(std::min<int64_t>(bucket, n - start));
              const std::vector<float> cand =
                  host_kernel_candidates(g.data() + start, d, uint64_t(start), o.sample_fraction, 9, step);
              const std::vector<float> expected = smart_candidates(g.data() + start, d, start, o.sample_fraction, 9, step);
              REQUIRE(cand.size() == expected.size());
              int64_t differ = 0;
              for (size_t i = 0; i < cand.size(); ++i) differ += bits(cand[i]) != bits(expected[i]);
              CHECK(differ == 0);
              const std::vector<float> lv = host_kernel_fit_sorted(cand, levels).levels;
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
}

TEST_CASE("smart device arithmetic equals the CPU level DP's, every intermediate bit for bit") {
  // The CPU DP's scratch after a run: a, S, SS, C, X, Z, the last row's base, dp (in place: row
  // K-1 except dp[c-1] of row K) and every argmin row; the kernel's arithmetic must give the
  // same bits (a single unfused product or sum would show here first).
  for (int levels : {3, 8, 16}) {
    for (int d : {1, 2, 7, 64, 300, 512}) {
      for (bool mixed : {false, true}) {
        const std::vector<float> g = smart_gradient(d, 500 + uint64_t(d) + uint64_t(levels), mixed);
        INFO("levels ", levels, " d ", d, " mixed ", mixed);
        const HostKernelFit f = host_kernel_fit(g.data(), d, levels);
        std::vector<float> sorted = g;
        std::vector<uint32_t> keys;
        sort_floats(sorted.data(), d, keys);  // the CPU quantizer's order
        LevelDpScratch w;
        std::vector<int64_t> index(static_cast<size_t>(levels));
        optimal_level_points_into(sorted.data(), d, levels - 1, w, index.data());
        CHECK(differing(f.a.data(), w.a.data(), d) == 0);
        CHECK(differing(f.s.data(), w.s.data(), d + 1) == 0);
        CHECK(differing(f.ss.data(), w.ss.data(), d + 1) == 0);
        int64_t cxz = 0;
        for (int t = 0; t < d; ++t) {
          cxz += bits(smart_fit::coefficient_c(f.a.data(), f.s.data(), t)) != bits(w.c[t]);
          cxz += bits(smart_fit::coefficient_x(f.a.data(), f.s.data(), t)) != bits(w.x[t]);
          cxz += bits(smart_fit::coefficient_z(f.a.data(), f.s.data(), f.ss.data(), t)) != bits(w.z[t]);
        }
        CHECK(cxz == 0);
        if (levels > 2) CHECK(differing(f.base.data(), w.base.data(), d) == 0);
        CHECK(differing(f.dp.data(), w.dp.data(), d) == 0);
        int64_t args = 0;
        for (size_t i = 0; i < f.arg.size(); ++i) args += f.arg[i] != w.arg[i];
        CHECK(args == 0);
      }
    }
  }
}

TEST_CASE("DeviceQuantizer::supports smart with at most 512 candidates per bucket") {
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(512, 16))));
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(100, 4))));
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(513, 16))));    // sampled, c = 512
  CHECK(DeviceQuantizer::supports(*make_quantizer("smart", smart_options(10259, 16))));  // floor(0.05 d) = 512
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", smart_options(10260, 16))));  // 513 candidates
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", smart_options(51200, 16))));
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", smart_options(512, 1024))));
}

namespace {

// The kernel's output against decode(encode(g)) bit for bit and its variance to 1e-6 relative, for
// gradients of each size in `sizes`, with `levels` levels, at buckets with every value a candidate
// (512, 100) and with candidates sampled (1000, 10240), at each step and seed in the lists.
void check_against_cpu(const std::vector<int64_t>& sizes, const std::vector<int>& level_counts,
                       const std::vector<uint64_t>& steps, const std::vector<uint64_t>& seeds) {
  for (int levels : level_counts) {
    for (int64_t bucket : {int64_t(512), int64_t(100), int64_t(1000), int64_t(10240)}) {
      const auto q = make_quantizer("smart", smart_options(bucket, levels));
      for (int64_t n : sizes) {
        for (bool mixed : {false, true}) {
          const std::vector<float> g = smart_gradient(n, 70 + uint64_t(n), mixed);
          for (uint64_t step : steps) {
            for (uint64_t seed : seeds) {
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

}  // namespace

GPU_TEST_CASE("smart cuda: decode(encode(g)) bit for bit, variance to 1e-6, short gradients") {
  check_against_cpu({1, 7, 512, 3 * 512 + 77}, {2, 4, 16}, {0, 41}, {5, 6});
}

GPU_SCALE_TEST_CASE("smart cuda: decode(encode(g)) bit for bit, variance to 1e-6, at ResNet-20's size") {
  check_against_cpu({269722}, {16}, {41}, {6});  // 527 to 2698 buckets: one draw
}

GPU_TEST_CASE("smart cuda: captured in a CUDA graph, replayed step after step, equals the CPU") {
  // No allocation and no host read inside quantize once the tables exist (first call eager), and
  // the step read from device memory: each replay quantizes with its own step's randomness.
  const auto q = make_quantizer("smart", smart_options(512, 8));
  const int64_t n = 512 * 6 + 300;
  const std::vector<float> g = smart_gradient(n, 77, true);
  DeviceQuantizer device(*q);
  DeviceStep step(10);
  Tensor work = Tensor::from_vector(g, {n}).to(Device::CUDA);
  device.quantize(work, {}, 3, step);  // eager: the bucket table and scratch are made
  CudaGraph graph;
  graph.capture([&] {
    device.quantize(work, {}, 3, step);
    step.advance();
  });
  step.set(20);
  for (uint64_t s = 20; s < 23; ++s) {
    work.copy_from(Tensor::from_vector(g, {n}));
    graph.replay();
    std::vector<float> cpu = g;
    q->quantize(cpu.data(), n, 3, s);
    const std::vector<float> gpu = work.to_vector();
    int64_t differ = 0;
    for (int64_t i = 0; i < n; ++i) differ += bits(gpu[i]) != bits(cpu[i]);
    INFO("step ", s);
    CHECK(differ == 0);
  }
}
