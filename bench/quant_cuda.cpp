// Speed of the GPU gradient quantizers (quant/device_quantizer.h) on a ResNet-20-sized gradient
// (269,722 coordinates): decode(encode(g)) in place plus the step advance, as the training hook
// runs it, for each scheme with a CUDA version at buckets of 512 and 51200, with and without the
// variance metric. Timed with CUDA events over many calls after a warm-up; prints ms per call and
// GB/s of fp32 gradient (4 bytes x n / time). smart (its level DP in the kernel, buckets <= 512)
// also gets rows on a fresh gradient each call (a device copy first: after one call a bucket
// holds only its levels, ties everywhere), at 4 and 16 levels. Without a usable GPU it says so
// and exits 0.
//   ./build/bench/quant_cuda [repeats]
#include <cstdio>
#include <cstdlib>
#include <string>

#include "quant/device_quantizer.h"
#include "tensor/device.h"
#include "tensor/stream_timer.h"

using namespace qnn;

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 200;
  if (argc > 2 || repeats < 1) {
    std::fprintf(stderr, "usage: quant_cuda [repeats >= 1]\n");
    return 2;
  }
  if (!cuda_status().usable) {
    std::printf("quant_cuda: no usable GPU (%s); nothing to measure\n", cuda_status().reason.c_str());
    return 0;
  }
  std::printf("%s\n", describe_cuda(cuda_status()).c_str());
  const int64_t n = 269722;
  const Tensor g = Tensor::normal({n}, 0.0f, 0.01f, 1).to(Device::CUDA);
  std::printf("gradient of %lld coordinates, %d calls after 20 warm-up calls\n", (long long)n, repeats);
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    for (int64_t bucket : {512, 51200}) {
      QuantizerOptions o;
      o.bucket_size = bucket;
      const auto q = make_quantizer(name, o);
      if (!DeviceQuantizer::supports(*q)) {
        std::printf("%-12s bucket %6lld: no CUDA version (the hook quantizes it on the host)\n", name.c_str(),
                    (long long)bucket);
        continue;
      }
      DeviceQuantizer device(*q);
      DeviceStep step(0);
      Tensor work = g.clone(), variance = Tensor::zeros({2}, Device::CUDA);
      // Quantizing the same buffer again and again: the values stay on the levels, the work per
      // call (statistics, draws, rounding) is the same as on a fresh gradient.
      const double ms = stream_time_ms([&] { device.quantize(work, {}, 7, step), step.advance(); }, 20, repeats);
      const double ms_variance =
          stream_time_ms([&] { device.quantize(work, {}, 7, step, &variance), step.advance(); }, 20, repeats);
      std::printf("%-12s bucket %6lld: %7.4f ms (%6.1f GB/s); with variance %7.4f ms; %.3f bits/coordinate\n",
                  name.c_str(), (long long)bucket, ms, n * 4.0 / (ms * 1e6), ms_variance,
                  device.bits_per_coordinate(n, {}));
    }
  }
  for (int levels : {4, 16}) {
    QuantizerOptions o;
    o.bucket_size = 512;
    o.levels = levels;
    const auto q = make_quantizer("smart", o);
    DeviceQuantizer device(*q);
    DeviceStep step(0);
    Tensor work = g.clone();
    const double ms = stream_time_ms([&] { work.copy_from(g), device.quantize(work, {}, 7, step), step.advance(); },
                                     20, repeats);
    std::printf("smart fresh  bucket    512, %2d levels: %7.4f ms per call (copy of the gradient included)\n", levels,
                ms);
  }
}
