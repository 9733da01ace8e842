// Times the smart quantizer on a ResNet-20-sized gradient (269,722 Gaussian
// coordinates): level fitting alone (bucket_levels) and the whole decode(encode(g)), best of
// the repeats, in ms, at the default bucket 512 and at the reference runs' bucket 51200; and what
// the training hook spends per step when it records the variance: encode + variance as two calls
// (levels fitted twice) against encode_slice_with_variance (fitted once).
// Usage: build/bench/quant_smart [repeats=10] [levels=16]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "quant/smart.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

template <class F>
double best_ms(int repeats, F&& f) {
  f();  // warm-up
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 10;
  const int levels = argc > 2 ? std::atoi(argv[2]) : 16;
  const int64_t n = 269722;
  std::vector<float> g(static_cast<size_t>(n)), work(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) g[size_t(i)] = 1e-3f * random_normal(1, 2, uint64_t(i));
  for (int64_t bucket : {int64_t(512), int64_t(51200)}) {
    QuantizerOptions o;
    o.levels = levels;
    o.bucket_size = bucket;
    const SmartQuantizer q(o);
    uint64_t step = 0;
    const double fit = best_ms(repeats, [&] { q.bucket_levels(g.data(), n, 7, ++step); });
    const double all = best_ms(repeats, [&] {
      work = g;
      q.quantize(work.data(), n, 7, ++step);
    });
    volatile double sink = 0.0;
    const double two_calls = best_ms(repeats, [&] {
      ++step;
      sink = sink + q.variance(g.data(), n, 7, step);
      q.encode(g.data(), n, 7, step);
    });
    const double one_call = best_ms(repeats, [&] {
      double v = 0.0;
      q.encode_slice_with_variance(g.data(), n, 0, 7, ++step, &v);
      sink = sink + v;
    });
    std::printf("smart levels %d bucket %6lld: fit %.2f ms, decode(encode(g)) %.2f ms, "
                "encode + variance %.2f ms as two calls, %.2f ms as one\n",
                levels, static_cast<long long>(bucket), fit, all, two_calls, one_call);
  }
  return 0;
}
