// Speed of the gradient quantizers on a ResNet-20-sized gradient (269,722 coordinates): encode +
// decode per step, and the variance metric, for each scheme at buckets of 512 and 51200, with the
// gradient throughput (GB/s of fp32 gradient quantized) and the share of a training step of
// the given length (default: the CPU's ResNet-20 batch-128 step measured by bench/cpu.sh).
// Each figure is the best of the repeats; the median follows in brackets (the machine is shared,
// so the best is the figure least disturbed by other work).
//   ./build/bench/quant_schemes [repeats] [step_ms]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "quant/quantizer.h"
#include "tensor/random.h"

using namespace qnn;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 20;
  const double step_ms = argc > 2 ? std::atof(argv[2]) : 153.0;
  if (argc > 3 || repeats < 1 || step_ms <= 0) {
    std::fprintf(stderr, "usage: quant_schemes [repeats >= 1] [step_ms > 0]\n");
    return 2;
  }
  const int64_t n = 269722;
  std::vector<float> g(n), work(n);
  for (int64_t i = 0; i < n; ++i) g[i] = 0.01f * random_normal(1, 0, i);
  std::printf("gradient of %lld coordinates, %d threads, best of %d [median]\n", (long long)n, omp_get_max_threads(), repeats);
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    for (int64_t bucket : {512, 51200}) {
      QuantizerOptions o;
      o.bucket_size = bucket;
      auto q = make_quantizer(name, o);
      std::vector<double> times_q, times_v;
      double bits = 0;
      for (int r = 0; r < repeats; ++r) {
        work = g;
        auto t0 = std::chrono::steady_clock::now();
        bits = q->quantize(work.data(), n, 7, uint64_t(r));
        auto t1 = std::chrono::steady_clock::now();
        volatile double v = q->variance(g.data(), n, 7, uint64_t(r));
        (void)v;
        auto t2 = std::chrono::steady_clock::now();
        times_q.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        times_v.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
      }
      std::sort(times_q.begin(), times_q.end());
      std::sort(times_v.begin(), times_v.end());
      const double best_q = times_q.front(), best_v = times_v.front();
      const double median_q = times_q[times_q.size() / 2], median_v = times_v[times_v.size() / 2];
      std::printf("%-12s bucket %6lld: quantize %6.2f ms [%6.2f] (%5.2f GB/s, %4.1f%% of a %.0f ms step), "
                  "variance %6.2f ms [%6.2f], %.3f bits/coordinate\n",
                  name.c_str(), (long long)bucket, best_q, median_q, n * 4.0 / (best_q * 1e6), 100 * best_q / step_ms,
                  step_ms, best_v, median_v, bits);
    }
  }
}
