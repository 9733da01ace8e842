// `--precision bf16` on the CPU (tensor/bf16.h, tensor/conv_bf16.h): the scalar rounding against
// the hardware conversion and its defining properties, VDPBF16PS's order of additions, and the
// three convolution passes against a direct convolution in double precision of the operands
// rounded to bf16 (strides 1, 2 and 3, the last through the float lowerings; odd channel counts,
// paddings 0 to 2, 1x1, 3x3 and 5x5 kernels, bias, sizes that fit no tile evenly). A result within
// float accumulation error of that reference, and far from the reference of the unrounded
// operands, shows both that the operands were rounded and that the sums are right.
#include <doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/device.h"
#include "tensor/elementwise.h"
#include "tests/tensor/conv_reference.h"

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

using namespace qnn;
using test::direct;
using test::Reference;

namespace {

struct Bf16Convolutions {
  Bf16Convolutions() { backend_options().bf16 = true; }
  ~Bf16Convolutions() { backend_options().bf16 = false; }
};

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// got is want within float accumulation error (relative to the products' absolute sum), and at
// least one element is farther than that from `unrounded` (the reference of the float operands).
void expect_bf16_result(const Tensor& got, const std::vector<double>& want, const std::vector<double>& scale,
                        const std::vector<double>& unrounded, const char* what) {
  CAPTURE(what);
  REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
  double worst = 0, farthest_from_float = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double bound = 1e-5 * scale[i] + 1e-30;
    worst = std::max(worst, std::abs(got.data()[i] - want[i]) / bound);
    farthest_from_float = std::max(farthest_from_float, std::abs(got.data()[i] - unrounded[i]) / bound);
  }
  CHECK(worst <= 1.0);
  CHECK(farthest_from_float > 1.0);
}

void check_bf16_convolution(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int s,
                            int pad, bool with_bias) {
  CAPTURE(n); CAPTURE(c); CAPTURE(h); CAPTURE(w); CAPTURE(o); CAPTURE(k); CAPTURE(s); CAPTURE(pad);
  const ConvParams p{s, pad};
  const int64_t ho = conv_out_size(h, k, p), wo = conv_out_size(w, k, p);
  const Tensor x = Tensor::uniform({n, c, h, w}, -1, 1, 21);
  const Tensor wt = Tensor::uniform({o, c, k, k}, -1, 1, 22);
  const Tensor bias = with_bias ? Tensor::uniform({o}, -1, 1, 23) : Tensor();
  const Tensor dy = Tensor::uniform({n, o, ho, wo}, -1, 1, 24);
  const Reference rounded = direct(round_to_bf16(x), round_to_bf16(wt), bias, round_to_bf16(dy), s, pad);
  const Reference exact = direct(x, wt, bias, dy, s, pad);
  Bf16Convolutions bf16;
  expect_bf16_result(conv2d_forward(x, wt, bias, p), rounded.y, rounded.y_abs, exact.y, "forward");
  const Tensor dx = conv2d_backward_data(dy, wt, x.shape(), p);
  expect_bf16_result(dx, rounded.dx, rounded.dx_abs, exact.dx, "backward data");
  // The accumulating form gives add_into's bits.
  Tensor sum = Tensor::uniform(x.shape(), -1, 1, 25), expected = sum.clone();
  add_into(expected, dx);
  conv2d_backward_data_add(dy, wt, sum, p);
  CHECK(std::memcmp(sum.data(), expected.data(), sizeof(float) * sum.numel()) == 0);
  // backward_weight adds into dw: start from zeros. The bias gradient sums dy in float.
  Tensor dw = Tensor::zeros(wt.shape()), db = with_bias ? Tensor::zeros({o}) : Tensor();
  conv2d_backward_weight(x, dy, dw, db, p);
  expect_bf16_result(dw, rounded.dw, rounded.dw_abs, exact.dw, "backward weight");
  if (with_bias)
    for (int64_t i = 0; i < o; ++i) CHECK(std::abs(db.data()[i] - exact.db[i]) < 1e-4 * n * ho * wo);
}

}  // namespace

TEST_CASE("bf16: the scalar rounding is round-to-nearest-even with subnormals flushed, NaN kept") {
  CHECK(bf16_bits(1.0f) == 0x3F80);
  CHECK(bf16_bits(from_bits(0x3F808000u)) == 0x3F80);  // a tie rounds to the even 0x3F80
  CHECK(bf16_bits(from_bits(0x3F818000u)) == 0x3F82);  // a tie rounds to the even 0x3F82
  CHECK(bf16_bits(from_bits(0x3F808001u)) == 0x3F81);  // above the tie rounds up
  CHECK(bf16_bits(from_bits(0x00000001u)) == 0x0000);  // subnormals become zero, sign kept
  CHECK(bf16_bits(from_bits(0x80400000u)) == 0x8000);
  CHECK(bf16_bits(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(round_to_bf16(from_bits(0x7F800001u))));  // a NaN whose payload would round away
  CHECK(bf16_bits(from_bits(0x7F7FFFFFu)) == 0x7F80);        // the largest float rounds to infinity
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1e4f, 1e4f);
  for (int i = 0; i < 10000; ++i) {
    const float f = u(rng), r = round_to_bf16(f);
    CHECK(std::abs(r - f) <= std::abs(f) * (1.0f / 256));  // half a unit in the last of 8 bits
    CHECK(round_to_bf16(r) == r);                          // bf16 values are fixed points
  }
}

#if defined(__AVX512BF16__)
TEST_CASE("bf16: the scalar rounding gives VCVTNEPS2BF16's bits, and VDPBF16PS adds the odd product first") {
  std::mt19937 rng(7);
  int conversions = 0, mismatched = 0;
  for (int t = 0; t < 20000; ++t) {
    alignas(64) uint32_t bits[16];
    for (int i = 0; i < 16; ++i) bits[i] = i % 4 == 0 ? rng() & 0x807FFFFFu : rng();  // subnormals too
    alignas(32) uint16_t got[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(got),
                       (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(_mm512_load_si512(bits))));
    for (int i = 0; i < 16; ++i, ++conversions) mismatched += got[i] != bf16_bits(from_bits(bits[i]));
  }
  CHECK(conversions == 320000);
  CHECK(mismatched == 0);
  std::normal_distribution<float> normal;
  int mismatched_sums = 0;
  for (int t = 0; t < 2000; ++t) {
    float a[32], b[32], c[16], got[16];
    for (int i = 0; i < 32; ++i) a[i] = round_to_bf16(normal(rng)), b[i] = round_to_bf16(1000 * normal(rng));
    for (int i = 0; i < 16; ++i) c[i] = 1e-3f * normal(rng);
    const __m512bh av = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(a + 16), _mm512_loadu_ps(a));
    const __m512bh bv = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(b + 16), _mm512_loadu_ps(b));
    _mm512_storeu_ps(got, _mm512_dpbf16_ps(_mm512_loadu_ps(c), av, bv));
    for (int i = 0; i < 16; ++i)
      mismatched_sums += got[i] != std::fma(a[2 * i], b[2 * i], std::fma(a[2 * i + 1], b[2 * i + 1], c[i]));
  }
  CHECK(mismatched_sums == 0);
}
#endif

TEST_CASE("bf16 conv2d: forward, backward data and weight against the direct convolution of bf16 operands") {
  for (int s : {1, 2})
    for (int pad : {0, 1})
      for (int64_t k : {1, 3}) {
        check_bf16_convolution(3, 5, 11, 13, 7, k, s, pad, true);
        check_bf16_convolution(2, 16, 17, 9, 18, k, s, pad, false);
      }
  check_bf16_convolution(2, 3, 32, 32, 16, 3, 1, 1, false);   // the ResNet stem: 3 channels
  check_bf16_convolution(3, 16, 32, 32, 32, 3, 2, 1, false);  // a ResNet downsampling layer
  check_bf16_convolution(5, 32, 8, 8, 48, 3, 1, 1, false);    // groups of images in the weight gradient
  check_bf16_convolution(5, 8, 16, 16, 8, 3, 1, 1, false);    // groups of padded images, a partial one
  check_bf16_convolution(2, 5, 32, 32, 12, 3, 1, 1, true);    // padded pairs: odd channels, partial panel
  check_bf16_convolution(2, 4, 12, 10, 6, 5, 1, 2, true);     // 5x5
  check_bf16_convolution(2, 4, 12, 10, 6, 3, 3, 1, true);     // stride 3: rounded operands, float lowerings
  check_bf16_convolution(1, 1, 6, 40, 3, 3, 2, 2, false);     // one channel, one image, wide rows
}

TEST_CASE("bf16 conv2d: the Winograd layers compute the convolution of bf16 operands too") {
  // 3x3 same-width layers at stride 1 take tensor/winograd.h with x, w and dy rounded to bf16 as
  // they are read: the same reference and bounds as every other bf16 lowering.
  check_bf16_convolution(3, 16, 8, 8, 16, 3, 1, 1, true);
  check_bf16_convolution(2, 32, 13, 6, 32, 3, 1, 1, false);
  // ImageNet ResNets' widths (each a kernel instance of its own); at 512 channels the weight
  // gradient takes the bf16 lowerings.
  for (int64_t c : {128, 256, 512}) check_bf16_convolution(1, c, 8, 8, c, 3, 1, 1, false);
}

