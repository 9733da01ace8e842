// Gradient quantization on the GPU (quant/device_quantizer.h, the hook's device path) against the
// CPU schemes: for random gradients of several sizes (a partial tail bucket, a single coordinate,
// ResNet-20's 269,722, or 20,011 on the CUDA emulator) and per-layer slices, the GPU's in-place
// decode(encode(g)) must equal the CPU's BIT FOR BIT (every element compared by its bit pattern),
// the variance must agree to 1e-6 relative (summed in another order), the bits per coordinate
// exactly, and two GPU runs must be identical. Also a CPU test of the host-side bit count; the
// arithmetic the two sides share is tested in tests/quant/test_bucket_math.cpp.
#include <doctest.h>

#include <cmath>
#include <limits>

#include "quant/bucket_math.h"
#include "quant/device_quantizer.h"
#include "quant/hook.h"
#include "quant/level_set_quantizer.h"
#include "quant/level_sets.h"
#include "quant/payload.h"
#include "quant/standard.h"
#include "tensor/cuda_graph.h"
#include "tensor/float_bits.h"
#include "tests/gpu.h"

using namespace qnn;

namespace {

// A gradient with the awkward cases in it: scales that vary by region, exact zeros, a constant
// run (a constant bucket for small bucket sizes) and repeated values.
std::vector<float> test_gradient(int64_t n, uint64_t seed) {
  std::vector<float> g = Tensor::normal({n}, 0.0f, 1.0f, seed).to_vector();
  for (int64_t i = 0; i < n; ++i) {
    g[i] *= std::ldexp(1.0f, int((i / 700) % 9) - 12);
    if (i % 97 == 5) g[i] = 0.0f;
    if (i % 211 == 3) g[i] = g[i / 2];
  }
  for (int64_t i = 1024; i < std::min<int64_t>(n, 1024 + 600); ++i) g[i] = 0.25f;
  return g;
}

// Every element equal by bit pattern; reports the first few mismatches.
void check_bitwise_equal(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::string& what) {
  REQUIRE(gpu.size() == cpu.size());
  int reported = 0;
  int64_t mismatches = 0;
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (float_bits(gpu[i]) == float_bits(cpu[i])) continue;
    ++mismatches;
    if (reported++ < 5) {
      INFO(what, ": element ", i, " gpu ", gpu[i], " cpu ", cpu[i]);
      CHECK(float_bits(gpu[i]) == float_bits(cpu[i]));
    }
  }
  INFO(what, ": ", mismatches, " of ", cpu.size(), " elements differ");
  CHECK(mismatches == 0);
}

void check_close_variance(double gpu, double cpu, const std::string& what) {
  INFO(what, ": variance gpu ", gpu, " cpu ", cpu);
  CHECK(std::fabs(gpu - cpu) <= 1e-6 * std::fabs(cpu) + 1e-30);
}

QuantizerOptions options_for(int64_t bucket, int levels = 16, bool quantize_tail = true) {
  QuantizerOptions o;
  o.bucket_size = bucket;
  o.levels = levels;
  o.quantize_tail = quantize_tail;
  return o;
}

// The whole-vector check of one scheme: sizes with and without a partial tail.
void check_scheme_whole(const std::string& name, const QuantizerOptions& o) {
  const auto q = make_quantizer(name, o);
  for (int64_t n : {int64_t(1), int64_t(7), o.bucket_size, 3 * o.bucket_size + 5, testing::network_gradient_size()}) {
    const std::vector<float> g = test_gradient(n, 11 + uint64_t(n));
    for (uint64_t step : {0ull, 41ull}) {
      const std::string what = name + " bucket " + std::to_string(o.bucket_size) + " n " + std::to_string(n) +
                               " step " + std::to_string(step);
      std::vector<float> cpu = g;
      const double cpu_bits = q->quantize(cpu.data(), n, 5, step);
      const double cpu_variance = q->variance(g.data(), n, 5, step);
      Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA), b = a.clone();
      double gpu_variance = 0;
      const double gpu_bits = quantize_on_device(*q, a, 5, step, {}, &gpu_variance);
      quantize_on_device(*q, b, 5, step);
      check_bitwise_equal(a.to_vector(), cpu, what);
      check_bitwise_equal(b.to_vector(), a.to_vector(), what + " (second GPU run)");
      check_close_variance(gpu_variance, cpu_variance, what);
      CHECK(gpu_bits == cpu_bits);
    }
  }
}

// Through the hook: per-layer slices (and network-wide), several steps (the device step
// advances), variance recorded; the GPU hook against the CPU hook.
void check_scheme_hook(const std::string& name, const QuantizerOptions& o, Flattening flattening) {
  const std::vector<int64_t> layers = {300, 512, 1000, 7, 2049, 1};
  int64_t n = 0;
  for (int64_t s : layers) n += s;
  HookOptions h;
  h.seed = 99, h.flattening = flattening, h.record_variance = true;
  GradientQuantizationHook cpu_hook(make_quantizer(name, o), h), gpu_hook(make_quantizer(name, o), h);
  cpu_hook.set_layer_sizes(layers);
  gpu_hook.set_layer_sizes(layers);
  cpu_hook.set_step(99);  // an adaptive scheme refits at 100: the third step
  gpu_hook.set_step(99);
  for (int step = 0; step < 3; ++step) {
    const std::string what = name + (flattening == Flattening::per_layer ? " per layer" : " network-wide") +
                             " hook step " + std::to_string(cpu_hook.step());
    const std::vector<float> g = test_gradient(n, 300 + uint64_t(step));
    std::vector<float> cpu = g;
    cpu_hook.apply(cpu.data(), n);
    Tensor gpu = Tensor::from_vector(g, {n}).to(Device::CUDA);
    gpu_hook.apply(gpu);
    check_bitwise_equal(gpu.to_vector(), cpu, what);
    check_close_variance(gpu_hook.last_variance(), cpu_hook.last_variance(), what);
    CHECK(gpu_hook.last_bits_per_coordinate() == cpu_hook.last_bits_per_coordinate());
  }
  if (DeviceQuantizer::supports(gpu_hook.quantizer())) {  // smart with big buckets creates none
    REQUIRE(gpu_hook.device_step() != nullptr);
    CHECK(gpu_hook.device_step()->read() == 102);
  }
}

void check_scheme(const std::string& name, const QuantizerOptions& o) {
  check_scheme_whole(name, o);
  check_scheme_hook(name, o, Flattening::per_layer);
  check_scheme_hook(name, o, Flattening::network_wide);
}

}  // namespace

// ---- CPU: the host-side bit count ---------------------------------------------------------------

TEST_CASE("DeviceQuantizer::bits_per_coordinate equals the CPU payloads' count") {
  const std::vector<int64_t> layers = {300, 512, 1000, 7, 2049, 1};
  int64_t n = 0;
  for (int64_t s : layers) n += s;
  const std::vector<float> g = test_gradient(n, 3);
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    for (int64_t bucket : {100, 512}) {
      QuantizerOptions o = options_for(bucket);
      auto q = make_quantizer(name, o);
      if (!DeviceQuantizer::supports(*q)) {
        CHECK(false);  // every scheme has a GPU version at these bucket sizes
        continue;
      }
      INFO(name, " bucket ", bucket);
      DeviceQuantizer device(*q);
      std::vector<float> work = g;
      CHECK(device.bits_per_coordinate(n, {}) == q->quantize(work.data(), n, 1, 0));
      HookOptions h;
      h.flattening = Flattening::per_layer;
      GradientQuantizationHook hook(make_quantizer(name, o), h);
      hook.set_layer_sizes(layers);
      work = g;
      hook.apply(work.data(), n);
      CHECK(device.bits_per_coordinate(n, layers) == hook.last_bits_per_coordinate());
    }
  }
}

// ---- GPU against CPU, per scheme -----------------------------------------------------------------

GPU_TEST_CASE("quant cuda: standard") {
  check_scheme("standard", options_for(512));
  check_scheme("standard", options_for(100, 7));
  check_scheme_whole("standard", options_for(512, 16, false));  // tail passed through
  check_scheme_whole("standard", options_for(51200));
}

GPU_TEST_CASE("quant cuda: exponential") {
  check_scheme("exponential", options_for(512));
  check_scheme("exponential", options_for(100, 8));
  check_scheme_whole("exponential", options_for(51200));
}

GPU_TEST_CASE("quant cuda: qsgd, qinf, nuq, trn") {
  for (const char* name : {"qsgd", "qinf", "nuq", "trn"}) {
    check_scheme(name, options_for(512));
    check_scheme(name, options_for(100, 8));
  }
  QuantizerOptions wide = options_for(256);
  wide.bits = 8;  // 256 levels: the binary search of round_to_level
  check_scheme_whole("qsgd", wide);
}

GPU_TEST_CASE("quant cuda: hadamard") {
  check_scheme("hadamard", options_for(512));
  check_scheme("hadamard", options_for(100, 8));       // padding to 128
  check_scheme_whole("hadamard", options_for(6000));   // padding to 8192: global scratch
  check_scheme_whole("hadamard", options_for(51200));  // 65536: global scratch
}

GPU_TEST_CASE("quant cuda: adaptive schemes (levels refitted on the host)") {
  for (const char* name : {"alq", "alq_nb", "amq", "amq_nb"}) {
    QuantizerOptions o = options_for(512);
    o.bits = 3;
    check_scheme_hook(name, o, Flattening::network_wide);
  }
}

// The device kernel (quant/smart_device.cu) takes up to 512 candidates per bucket;
// tests/quant/test_smart_device.cpp has more.
GPU_TEST_CASE("quant cuda: smart on the GPU, every value a candidate (buckets of 512)") {
  check_scheme("smart", options_for(512));
}

GPU_TEST_CASE("quant cuda: smart on the GPU, 512 sampled candidates (buckets of 1000)") {
  check_scheme("smart", options_for(1000));
}

GPU_TEST_CASE("quant cuda: smart with more candidates goes through the host") {
  // Buckets of 51200 sample 2560 candidates: not supported, the hook goes through the host.
  CHECK(!DeviceQuantizer::supports(*make_quantizer("smart", options_for(51200))));
  check_scheme_hook("smart", options_for(51200), Flattening::network_wide);
}

// Non-finite buckets (quant/quantizer.h): NaN, +inf and -inf at the start, middle and end of
// buckets, and values near the float limit whose norm or grid overflows. The GPU writes the same
// NaN bits as the CPU (bucket_nan()), so the bitwise comparison covers them; the variance is NaN
// on both sides.
GPU_TEST_CASE("quant cuda: buckets holding NaN or an infinity become NaN as on the CPU") {
  const float inf = INFINITY;
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    for (int64_t bucket : {int64_t(64), int64_t(512)}) {
      const QuantizerOptions o = options_for(bucket, 16);
      const auto q = make_quantizer(name, o);
      const int64_t n = 6 * bucket + 7;
      std::vector<float> g = test_gradient(n, 17);
      g[0] = NAN;
      g[bucket + bucket / 2] = inf;
      g[3 * bucket - 1] = -inf;
      for (int64_t i = 4 * bucket; i < 5 * bucket; ++i) g[i] = (i % 2 ? 3e38f : -3e38f);  // overflowing norms and grids
      g[n - 2] = NAN;  // the tail
      const std::string what = name + " bucket " + std::to_string(bucket) + " non-finite";
      std::vector<float> cpu = g;
      const double cpu_bits = q->quantize(cpu.data(), n, 5, 3);
      const double cpu_variance = q->variance(g.data(), n, 5, 3);
      Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA);
      double gpu_variance = 0;
      const double gpu_bits = quantize_on_device(*q, a, 5, 3, {}, &gpu_variance);
      check_bitwise_equal(a.to_vector(), cpu, what);
      CHECK(std::isnan(cpu_variance));
      CHECK(std::isnan(gpu_variance));
      CHECK(gpu_bits == cpu_bits);
    }
  }
}

// Buckets at the bottom of float's range: a bucket of nothing but denormals and zeros,
// denormals among normal values (divided by the bucket's norm they stay denormal: the exponential
// levels' ceil(log2 m) of a denormal m), and a bucket of zeros, signed too. The GPU must give the
// CPU's bits; nvcc keeps denormals unless told to flush them.
GPU_TEST_CASE("quant cuda: denormals and zero buckets quantize as on the CPU") {
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    const int64_t bucket = 64;
    const auto q = make_quantizer(name, options_for(bucket, 16));
    const int64_t n = 4 * bucket;
    std::vector<float> g = test_gradient(n, 23);
    for (int64_t i = 0; i < bucket; ++i) g[i] = float(i % 5) * tiny * (i % 2 ? -1.0f : 1.0f);  // denormals
    for (int64_t i = bucket; i < 2 * bucket; i += 3) g[i] = (i % 2 ? -1.0f : 1.0f) * 1e-42f * float(i % 7);
    for (int64_t i = 2 * bucket; i < 3 * bucket; ++i) g[i] = i % 3 ? 0.0f : -0.0f;  // zeros
    const std::string what = name + " denormals and zeros";
    std::vector<float> cpu = g;
    const double cpu_bits = q->quantize(cpu.data(), n, 5, 3);
    Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA);
    const double gpu_bits = quantize_on_device(*q, a, 5, 3, {}, nullptr);
    check_bitwise_equal(a.to_vector(), cpu, what);
    for (float v : cpu) CHECK_MESSAGE(std::isfinite(v), what);
    CHECK(gpu_bits == cpu_bits);
  }
}

// Checkpoint state on the GPU path: a CUDA hook resumed with load_state() uploads the loaded
// levels (also when its device quantizer already holds others) and continues bit for bit as the
// uninterrupted CPU run. Refits at 0, 3, 7 and every 10 steps; interrupted at step 12.
GPU_TEST_CASE("quant cuda: a resumed hook quantizes with the loaded levels on the GPU") {
  const int64_t n = 512 * 9 + 77;
  QuantizerOptions o = options_for(512);
  o.bits = 3;
  o.refit_at = {0, 3, 7};
  o.refit_every = 10;
  HookOptions h;
  h.seed = 4, h.record_variance = true;
  auto gradient = [&](int step) { return test_gradient(n, 700 + uint64_t(step)); };
  for (const char* name : {"alq", "alq_nb", "amq", "amq_nb"}) {
    GradientQuantizationHook cpu(make_quantizer(name, o), h), first(make_quantizer(name, o), h);
    std::vector<std::vector<float>> expected;
    for (int step = 0; step < 25; ++step) {
      expected.push_back(gradient(step));
      cpu.apply(expected.back().data(), n);
    }
    for (int step = 0; step < 12; ++step) {
      Tensor g = Tensor::from_vector(gradient(step), {n}).to(Device::CUDA);
      first.apply(g);
    }
    const std::vector<NamedTensor> state = first.state();
    // A fresh hook, and one whose device quantizer already uploaded other levels (one step on
    // another gradient, which refits at step 0) before it loads the state.
    GradientQuantizationHook fresh(make_quantizer(name, o), h), used(make_quantizer(name, o), h);
    Tensor warm = Tensor::from_vector(gradient(99), {n}).to(Device::CUDA);
    used.apply(warm);
    for (GradientQuantizationHook* resumed : {&fresh, &used}) {
      resumed->load_state(state);
      REQUIRE(resumed->step() == 12);
      for (int step = 12; step < 25; ++step) {
        Tensor g = Tensor::from_vector(gradient(step), {n}).to(Device::CUDA);
        resumed->apply(g);
        check_bitwise_equal(g.to_vector(), expected[size_t(step)],
                            std::string(name) + (resumed == &fresh ? " fresh" : " used") + " resumed, step " +
                                std::to_string(step));
      }
      REQUIRE(resumed->device_step() != nullptr);
      CHECK(resumed->device_step()->read() == 25);
    }
  }
}

GPU_TEST_CASE("quant cuda: emulated workers average on the GPU as on the CPU") {
  const int64_t n = 5000;
  for (const char* name : {"standard", "qsgd", "hadamard"}) {
    HookOptions h;
    h.seed = 3, h.record_variance = true;
    GradientQuantizationHook cpu_hook(make_quantizer(name, options_for(512)), h),
        gpu_hook(make_quantizer(name, options_for(512)), h);
    std::vector<std::vector<float>> host;
    std::vector<const float*> pointers;
    std::vector<Tensor> device;
    for (int w = 0; w < 3; ++w) host.push_back(test_gradient(n, 50 + uint64_t(w)));
    for (const auto& v : host) pointers.push_back(v.data()), device.push_back(Tensor::from_vector(v, {n}).to(Device::CUDA));
    std::vector<float> cpu(n);
    cpu_hook.quantize_and_average(pointers, n, cpu.data());
    Tensor gpu({n}, Device::CUDA);
    gpu_hook.quantize_and_average(device, gpu);
    check_bitwise_equal(gpu.to_vector(), cpu, std::string(name) + " workers");
    check_close_variance(gpu_hook.last_variance(), cpu_hook.last_variance(), std::string(name) + " workers");
    CHECK(gpu_hook.last_bits_per_coordinate() == cpu_hook.last_bits_per_coordinate());
  }
}

GPU_TEST_CASE("quant cuda: the step in device memory drives the randomness") {
  const int64_t n = 4096;
  auto q = make_quantizer("standard", options_for(512));
  const std::vector<float> g = test_gradient(n, 8);
  DeviceQuantizer device(*q);
  DeviceStep step(7);
  Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA);
  device.quantize(a, {}, 1, step);
  step.advance();
  CHECK(step.read() == 8);
  Tensor b = Tensor::from_vector(g, {n}).to(Device::CUDA);
  device.quantize(b, {}, 1, step);
  std::vector<float> cpu7 = g, cpu8 = g;
  q->quantize(cpu7.data(), n, 1, 7);
  q->quantize(cpu8.data(), n, 1, 8);
  check_bitwise_equal(a.to_vector(), cpu7, "step 7");
  check_bitwise_equal(b.to_vector(), cpu8, "step 8");
  CHECK(a.to_vector() != b.to_vector());
}

GPU_TEST_CASE("quant cuda: a level table changed from +0 to -0 is uploaded again") {
  // The device keeps the uploaded table and uploads again when the quantizer's differs. A level
  // +0 replaced by -0 compares equal as floats, but decodes to s * -0 = -0 on the CPU: the
  // comparison must be by bit pattern, or the GPU keeps returning +0.
  QuantizerOptions o = options_for(64, 16, false);
  LevelSetQuantizer q("ternary", LevelNorm::Linf, {-1.0f, 0.0f, 1.0f}, o);
  const int64_t n = 64 * 20 + 9;
  const std::vector<float> g = test_gradient(n, 21);
  DeviceQuantizer device(q);
  DeviceStep step(3);
  for (const float zero : {0.0f, -0.0f}) {
    q.set_levels({-1.0f, zero, 1.0f});
    std::vector<float> cpu = g;
    q.quantize(cpu.data(), n, 4, 3);
    int64_t zeros = 0;
    for (int64_t i = 0; i < 64 * 20; ++i) zeros += cpu[i] == 0.0f && std::signbit(cpu[i]) == std::signbit(zero);
    REQUIRE(zeros > 0);  // the test can fail: some coordinates round to the zero level
    Tensor a = Tensor::from_vector(g, {n}).to(Device::CUDA);
    device.quantize(a, {}, 4, step);
    check_bitwise_equal(a.to_vector(), cpu, std::signbit(zero) ? "level -0" : "level +0");
  }
}

GPU_TEST_CASE("quant cuda: the largest tables (level sets beyond shared memory, 4096-point grids)") {
  // Level tables of more than kMaxDeviceGridLevels (4096) levels are read from global memory;
  // standard and hadamard grids of exactly 4096 points fill the shared table, with more points
  // than threads per block.
  QuantizerOptions wide = options_for(512);
  wide.bits = 13;  // 8192 levels
  check_scheme_whole("qsgd", wide);
  check_scheme_whole("qinf", wide);
  check_scheme_whole("standard", options_for(512, kMaxDeviceGridLevels));
  check_scheme_whole("hadamard", options_for(512, kMaxDeviceGridLevels));
}

GPU_TEST_CASE("quant cuda: a captured quantization reads the level table refitted after the capture") {
  // A refit that keeps the level count uploads the new table into the same device buffer, so a
  // graph captured before it stays valid and quantizes with the new levels (a new buffer would
  // leave the graph reading the freed old one).
  QuantizerOptions o = options_for(128, 16, false);
  LevelSetQuantizer q("levels", LevelNorm::L2, uniform_levels(3), o);
  const int64_t n = 128 * 10;
  const std::vector<float> g = test_gradient(n, 31);
  DeviceQuantizer device(q);
  DeviceStep step(5);
  Tensor work = Tensor::from_vector(g, {n}).to(Device::CUDA);
  device.quantize(work, {}, 2, step);  // eager: the tables are uploaded
  CudaGraph graph;
  graph.capture([&] { device.quantize(work, {}, 2, step); });
  q.set_levels(exponential_levels(3, 0.5));  // same count, other values
  Tensor eager = Tensor::from_vector(g, {n}).to(Device::CUDA);
  device.quantize(eager, {}, 2, step);  // uploads the new table
  work.copy_from(Tensor::from_vector(g, {n}));
  graph.replay();
  std::vector<float> cpu = g;
  q.quantize(cpu.data(), n, 2, 5);
  check_bitwise_equal(eager.to_vector(), cpu, "eager after the refit");
  check_bitwise_equal(work.to_vector(), cpu, "graph replayed after the refit");
}

GPU_TEST_CASE("quant cuda: a double accumulator at an address the GPU cannot load a double from is refused") {
  Tensor floats = Tensor::zeros({4}, Device::CUDA);
  Tensor aligned = floats.slice(0, {2}), odd = floats.slice(1, {2});
  add_device_double(aligned, aligned);
  CHECK_THROWS_WITH_AS(add_device_double(odd, aligned), doctest::Contains("8-byte aligned"), Error);
}
