// Parity of the QAT CUDA kernels (qat/*.cu) with their CPU twins, from the same seeded inputs.
// Where the twins run the same float operations (qat/fake_quant_math.h, qat/observer_math.h) the
// results must be equal and the check is exact: fake quantization forward and backward, the
// learnable backward's dx, PACT's output and dx, the clamped uniform quantizer, DoReFa's levels,
// the observers' ranges and qparams. Sums (the learnable scale and zero-point gradients, PACT's
// alpha gradient, DoReFa's S) are accumulated in double on both sides but grouped differently
// (qat/channel_reduce.h against qat/channel_reduce_cuda.h): they differ by at most
// ~n 2^-53 sum|terms| before the final rounding to float, so the check allows one float rounding
// (2^-23 relative) plus 1e-9 of the terms' magnitude. DoReFa's tanh is the C library's on the
// CPU and CUDA's on the GPU (each within 2 ulp): t, M and f are compared to 8 ulps, and its
// backward is compared from the CPU's t and M, so only the sum (and the tie coefficient it
// gives the largest element) differs.
// Sizes span several blocks per channel in every reduction (inner sizes above 4096).
#include <cmath>

#include "qat/dorefa.h"
#include "qat/fake_quantize.h"
#include "qat/observer.h"
#include "qat/pact.h"
#include "qat/uniform_quantize.h"
#include "tests/gpu.h"
#include "tests/qat/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

void check_identical(const Tensor& on_gpu, const Tensor& on_cpu, const char* what) {
  REQUIRE(on_gpu.is_cuda());
  CHECK(on_gpu.shape() == on_cpu.shape());
  CHECK_EQUAL_TENSORS(on_gpu, on_cpu, what);
}

// Tolerance of a double sum grouped two ways and rounded to float (see the header).
void check_sum(const Tensor& on_gpu, const Tensor& on_cpu, double terms_magnitude, const char* what) {
  REQUIRE(on_gpu.is_cuda());
  CHECK_CLOSE_TENSORS(on_gpu, on_cpu, 1e-9 * terms_magnitude, std::ldexp(1.0, -23), what);
}

double abs_sum(const Tensor& t) {
  double s = 0;
  for (float v : t.to_vector()) s += std::fabs(double(v));
  return s;
}

}  // namespace

GPU_TEST_CASE("cuda qat: fake quantization forward and straight-through backward equal the CPU bit for bit") {
  const QuantRange r{-128, 127};
  const Tensor x = Tensor::uniform({5, 3, 17, 19}, -3, 3, 1), dy = Tensor::normal({5, 3, 17, 19}, 0, 1, 2);
  const Tensor s = vec({0.01f, 0.0237f, 0.1f, 0.003f, 1.0f}), z = vec({0, -5, 3, 100, -128});
  check_identical(fake_quantize_forward(gpu(x), gpu(s), gpu(z), r, Granularity::PerChannel),
                  fake_quantize_forward(x, s, z, r, Granularity::PerChannel), "per channel y");
  check_identical(fake_quantize_backward(gpu(dy), gpu(x), gpu(s), gpu(z), r, Granularity::PerChannel),
                  fake_quantize_backward(dy, x, s, z, r, Granularity::PerChannel), "per channel dx");
  const Tensor big = Tensor::normal({(1 << 16) + 3}, 0, 2, 3), gbig = Tensor::normal({(1 << 16) + 3}, 0, 1, 4);
  const Tensor s1 = vec({0.0371f}), z1 = vec({7});
  check_identical(fake_quantize_forward(gpu(big), gpu(s1), gpu(z1), {0, 15}, Granularity::PerTensor),
                  fake_quantize_forward(big, s1, z1, {0, 15}, Granularity::PerTensor), "per tensor y");
  check_identical(fake_quantize_backward(gpu(gbig), gpu(big), gpu(s1), gpu(z1), {0, 15}, Granularity::PerTensor),
                  fake_quantize_backward(gbig, big, s1, z1, {0, 15}, Granularity::PerTensor), "per tensor dx");
}

GPU_TEST_CASE("cuda qat: the learnable backward equals the CPU (dx exactly, the sums to rounding)") {
  const Tensor x = Tensor::uniform({3, 70000}, -2, 2, 5), dy = Tensor::normal({3, 70000}, 0, 1, 6);
  const Tensor s = vec({0.01f, 0.05f, 0.3f}), z = vec({2.5f, -1.7f, 0});
  for (Granularity g : {Granularity::PerChannel, Granularity::PerTensor}) {
    CAPTURE(granularity_name(g));
    const Tensor sg = g == Granularity::PerTensor ? vec({0.0371f}) : s, zg = g == Granularity::PerTensor ? vec({-2.5f}) : z;
    const float factor = 0.0123f;
    const LearnableGradients c = fake_quantize_learnable_backward(dy, x, sg, zg, {-8, 7}, g, factor);
    const LearnableGradients d = fake_quantize_learnable_backward(gpu(dy), gpu(x), gpu(sg), gpu(zg), {-8, 7}, g, factor);
    check_identical(d.dx, c.dx, "dx");
    const double magnitude = abs_sum(dy) * 16 * factor;
    check_sum(d.dscale, c.dscale, magnitude, "dscale");
    check_sum(d.dzero_point, c.dzero_point, magnitude, "dzero_point");
  }
}

GPU_TEST_CASE("cuda qat: observers' ranges, updates and qparams equal the CPU bit for bit") {
  const Tensor x = Tensor::normal({4, 9000}, 0.3f, 2, 7);
  for (Granularity g : {Granularity::PerTensor, Granularity::PerChannel}) {
    CAPTURE(granularity_name(g));
    const ChannelRange c = channel_min_max(x, g), d = channel_min_max(gpu(x), g);
    check_identical(d.min, c.min, "min");
    check_identical(d.max, c.max, "max");
    for (ObserverKind kind : {ObserverKind::MinMax, ObserverKind::MovingAverageMinMax})
      for (bool symmetric : {false, true})
        for (QuantRange r : {QuantRange{0, 255}, QuantRange{-8, 7}, QuantRange{0, 3}}) {
          Observer oc({kind, r, symmetric, g}), og({kind, r, symmetric, g});
          for (uint64_t batch = 0; batch < 3; ++batch) {
            const Tensor b = Tensor::normal({4, 9000}, float(batch) - 1.0f, 1.0f + float(batch), 8 + batch);
            oc.observe(b);
            og.observe(gpu(b));
          }
          check_identical(og.min_val(), oc.min_val(), "running min");
          check_identical(og.max_val(), oc.max_val(), "running max");
          const QParams qc = oc.qparams(), qg = og.qparams();
          check_identical(qg.scale, qc.scale, "scale");
          check_identical(qg.zero_point, qc.zero_point, "zero point");
        }
  }
}

GPU_TEST_CASE("cuda qat: PACT equals the CPU (output and dx exactly, alpha's gradient to rounding)") {
  const Tensor x = Tensor::uniform({1 << 18}, -1, 4, 11), dy = Tensor::normal({1 << 18}, 0, 1, 12);
  for (float alpha : {2.3f, -1.0f}) {  // the second is held at the floor
    CAPTURE(alpha);
    const Tensor a = vec({alpha});
    check_identical(pact_forward(gpu(x), gpu(a), 4), pact_forward(x, a, 4), "y");
    const PactGradients c = pact_backward(dy, x, a, 4), d = pact_backward(gpu(dy), gpu(x), gpu(a), 4);
    check_identical(d.dx, c.dx, "dx");
    check_sum(d.dalpha, c.dalpha, abs_sum(dy), "dalpha");
  }
}

GPU_TEST_CASE("cuda qat: the clamped uniform quantizer and DoReFa's levels equal the CPU bit for bit") {
  const Tensor x = Tensor::uniform({3, 1000}, -1.5f, 1.5f, 13), dy = Tensor::normal({3, 1000}, 0, 1, 14);
  for (auto [lo, hi, steps] : {std::tuple{0.0f, 1.0f, 255}, {-1.0f, 1.0f, 7}, {0.0f, 1.0f, 3}}) {
    check_identical(clamp_quantize_forward(gpu(x), lo, hi, steps), clamp_quantize_forward(x, lo, hi, steps), "y");
    check_identical(clamp_quantize_backward(gpu(dy), gpu(x), lo, hi), clamp_quantize_backward(dy, x, lo, hi), "dx");
  }
  const Tensor f = Tensor::uniform({3000}, 0, 1, 15);
  for (int bits : {2, 5, 8}) check_identical(dorefa_weight_levels(gpu(f), bits), dorefa_weight_levels(f, bits), "levels");
}

GPU_TEST_CASE("cuda qat: DoReFa's normalisation matches the CPU to tanhf's ulps; its backward to rounding") {
  const Tensor w = Tensor::normal({64, 3, 3, 3}, 0, 0.3f, 16), df = Tensor::normal({64, 3, 3, 3}, 0, 1, 17);
  const DorefaNormalized c = dorefa_normalize_forward(w), d = dorefa_normalize_forward(gpu(w));
  // CUDA's tanhf and glibc's are each within 2 ulps, so they may differ by 4 ulps of t (8 units
  // of 2^-24 just above a power of two); twice that leaves room for the division by M.
  const double ulps16 = 16 * std::ldexp(1.0, -24);
  CHECK_CLOSE_TENSORS(d.t, c.t, 1e-38, ulps16, "t");
  CHECK_CLOSE_TENSORS(d.max_abs, c.max_abs, 0, ulps16, "M");
  CHECK_CLOSE_TENSORS(d.f, c.f, ulps16, ulps16, "f");
  // From the same t and M, only the double sum S differs, and with it k = S / (2 M^2) (for the
  // element at the max) by at most one float rounding: 2^-23 of sum|df| / (2 M^2) at most.
  const Tensor dw = dorefa_normalize_backward(df, c.t, c.max_abs);
  const Tensor gdw = dorefa_normalize_backward(gpu(df), gpu(c.t), gpu(c.max_abs));
  const double m = c.max_abs.item();
  CHECK_CLOSE_TENSORS(gdw, dw, std::ldexp(1.0, -23) * abs_sum(df) / (2 * m * m), 0, "dw");
}
