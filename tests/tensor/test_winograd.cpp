// The Winograd F(4x4, 3x3) convolutions (tensor/winograd.h) through the public entry points
// (conv2d_forward, conv2d_backward_data, conv2d_backward_data_add, conv2d_backward_weight):
// every pass against a direct convolution in double precision, at ResNet shapes and at sizes whose
// last tiles hang over the image's edge, with batches whose tiles fill several blocks. The bound
// is relative to the sum of the absolute values of each output's products, the scale of any float
// summation's rounding error; the transforms' constants (up to 8, and 1/24) make Winograd's
// error a few times a direct sum's, and a wrong transform misses it by orders of magnitude. Also:
// the rounding of bf16 operands, against the scalar rounding.
#include <doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "tensor/bf16.h"
#include "tensor/conv.h"
#include "tensor/winograd.h"
#include "tensor/winograd_tiles.h"
#include "tests/tensor/conv_reference.h"

using namespace qnn;

namespace {

// The largest |got - (offset + want)| / (scale + 1e-30) over all elements: the error in units of
// each element's sum of absolute products.
double relative_error(const Tensor& got, const std::vector<double>& want, const std::vector<double>& scale,
                      double offset = 0.0) {
  REQUIRE(got.numel() == static_cast<int64_t>(want.size()));
  double worst = 0;
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::abs(got.data()[i] - (offset + want[i])) / (scale[i] + 1e-30));
  return worst;
}

// Within 1e-5 of the scale. Float's epsilon is 1.2e-7; the direct lowerings stay within about
// 2e-7 of it on these shapes, the Winograd passes within 3.5e-6 (largest seen over the cases
// below).
constexpr double kBound = 1e-5;

void check_passes(int64_t n, int64_t c, int64_t h, int64_t w, bool with_bias) {
  CAPTURE(n); CAPTURE(c); CAPTURE(h); CAPTURE(w); CAPTURE(with_bias);
  const ConvParams p{1, 1};
  // Without AVX-512 the direct lowerings take these shapes, and the same bounds hold.
  REQUIRE(winograd::covers(conv_geometry({n, c, h, w}, {c, c, 3, 3}, p)) == winograd::built());
  const Tensor x = Tensor::uniform({n, c, h, w}, -1, 1, 21);
  const Tensor wt = Tensor::normal({c, c, 3, 3}, 0, 0.1f, 22);
  const Tensor bias = with_bias ? Tensor::uniform({c}, -1, 1, 23) : Tensor();
  const Tensor dy = Tensor::uniform({n, c, h, w}, -1, 1, 24);
  const test::Reference r = test::direct(x, wt, bias, dy, 1, 1);

  CHECK(relative_error(conv2d_forward(x, wt, bias, p), r.y, r.y_abs) < kBound);
  CHECK(relative_error(conv2d_backward_data(dy, wt, x.shape(), p), r.dx, r.dx_abs) < kBound);
  // The accumulating input gradient adds onto what is there (here 1).
  Tensor dx = Tensor::full(x.shape(), 1.0f);
  conv2d_backward_data_add(dy, wt, dx, p);
  CHECK(relative_error(dx, r.dx, r.dx_abs, 1.0) < kBound);
  // The weight gradient adds too: start from 1.
  Tensor dw = Tensor::full(wt.shape(), 1.0f), db = with_bias ? Tensor::full({c}, 1.0f) : Tensor();
  conv2d_backward_weight(x, dy, dw, db, p);
  CHECK(relative_error(dw, r.dw, r.dw_abs, 1.0) < kBound);
  if (with_bias)
    for (int64_t o = 0; o < c; ++o) CHECK(db.data()[o] == doctest::Approx(1.0 + r.db[o]).epsilon(1e-5));
}

}  // namespace

TEST_CASE("winograd: the ResNet shapes it takes, and the ones it leaves to the direct lowerings") {
  const ConvParams same{1, 1};
  if (!winograd::built()) {
    MESSAGE("this build has no AVX-512: the direct lowerings take every shape");
    CHECK_FALSE(winograd::covers(conv_geometry({8, 64, 8, 8}, {64, 64, 3, 3}, same)));
    CHECK_FALSE(winograd::covers_weight_gradient(conv_geometry({8, 64, 8, 8}, {64, 64, 3, 3}, same)));
    return;
  }
  for (int64_t c : {16, 32, 64, 128, 256, 512})
    CHECK(winograd::covers(conv_geometry({8, c, 8, 8}, {c, c, 3, 3}, same)));
  CHECK(winograd::covers_weight_gradient(conv_geometry({8, 64, 8, 8}, {64, 64, 3, 3}, same)));
  CHECK(winograd::covers_weight_gradient(conv_geometry({8, 256, 8, 8}, {256, 256, 3, 3}, same)));
  CHECK_FALSE(winograd::covers_weight_gradient(conv_geometry({8, 512, 8, 8}, {512, 512, 3, 3}, same)));
  CHECK_FALSE(winograd::covers(conv_geometry({8, 16, 32, 32}, {32, 16, 3, 3}, ConvParams{2, 1})));  // strided
  CHECK_FALSE(winograd::covers(conv_geometry({8, 16, 32, 32}, {32, 16, 3, 3}, same)));  // widening
  CHECK_FALSE(winograd::covers(conv_geometry({8, 3, 32, 32}, {16, 3, 3, 3}, same)));   // RGB stem
  CHECK_FALSE(winograd::covers(conv_geometry({8, 64, 8, 8}, {64, 64, 1, 1}, ConvParams{1, 0})));  // 1x1
  CHECK_FALSE(winograd::covers(conv_geometry({8, 48, 8, 8}, {48, 48, 3, 3}, same)));  // 48 channels
  CHECK_FALSE(winograd::covers(conv_geometry({8, 512, 7, 7}, {512, 512, 3, 3}, same)));  // 7x7 maps
}

#if defined(__AVX512F__)
TEST_CASE("winograd: bf16 operands are rounded to bf16_bits' bits, with or without AVX-512 BF16") {
  // --precision bf16 rounds x, w and dy as the transforms read them (winograd_tiles::operand):
  // VCVTNEPS2BF16 where the build has AVX-512 BF16, integer operations otherwise. Both must give
  // the scalar rounding's bits, the one the bf16 lowerings and the tests use (tensor/bf16.h).
  std::mt19937 rng(11);
  std::vector<uint32_t> cases = {0x00000000u, 0x80000000u, 0x00000001u, 0x807FFFFFu, 0x00800000u,  // zeros, subnormals
                                 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0xFF7FFFFFu,  // infinities; overflow to them
                                 0x7F800001u, 0xFFC00000u, 0x7FBFFFFFu,               // NaNs, signalling and quiet
                                 0x3F808000u, 0x3F818000u, 0x3F807FFFu, 0x3F808001u};  // ties to even, either side
  for (int i = 0; i < 16 * 4000; ++i) cases.push_back(i % 3 == 0 ? rng() & 0x807FFFFFu : rng());
  int64_t mismatched = 0;
  for (size_t first = 0; first < cases.size(); first += 16) {
    alignas(64) uint32_t in[16], out[16];
    for (int l = 0; l < 16; ++l) in[l] = cases[first + l];
    _mm512_store_si512(out, _mm512_castps_si512(winograd_tiles::operand<true>(_mm512_castsi512_ps(_mm512_load_si512(in)))));
    for (int l = 0; l < 16; ++l) {
      float f;
      std::memcpy(&f, &in[l], sizeof f);
      const uint32_t expected = uint32_t(bf16_bits(f)) << 16;
      if (out[l] != expected && ++mismatched <= 8) MESSAGE("input ", in[l], ": got ", out[l], ", expected ", expected);
    }
  }
  CHECK(cases.size() == 16 + 16 * 4000);
  CHECK(mismatched == 0);
}
#endif

TEST_CASE("winograd: every pass matches the direct convolution at the CIFAR ResNet shapes") {
  check_passes(3, 16, 32, 32, true);   // 64 tiles per image, blocks of 120 tiles span images
  check_passes(5, 32, 16, 16, false);  // 16 tiles per image
  check_passes(13, 64, 8, 8, true);    // 4 tiles per image, several blocks per thread
}

TEST_CASE("winograd: every pass matches the direct convolution where tiles overhang the image") {
  check_passes(2, 16, 10, 10, false);  // the last tile row and column half outside
  check_passes(3, 16, 8, 9, true);     // one column of the last tile inside
  check_passes(2, 32, 13, 10, false);  // rows and columns overhang by different amounts
  check_passes(3, 128, 10, 10, true);  // 128 channels: weight-gradient blocks of 64 tiles
  check_passes(1, 256, 9, 9, false);   // 256: the widest layers whose weight gradient is Winograd's
  check_passes(1, 512, 9, 9, false);   // 512: the weight gradient takes the direct path
}

TEST_CASE("winograd: the weight gradient called from inside a parallel region sums one thread's tiles") {
  // Nested regions run on one thread: the gradient must still cover every image.
  const ConvParams p{1, 1};
  const Tensor x = Tensor::uniform({4, 16, 8, 8}, -1, 1, 31);
  const Tensor wt = Tensor::normal({16, 16, 3, 3}, 0, 0.1f, 32);
  const Tensor dy = Tensor::uniform({4, 16, 8, 8}, -1, 1, 33);
  const test::Reference r = test::direct(x, wt, Tensor(), dy, 1, 1);
  Tensor dw = Tensor::zeros(wt.shape()), no_bias;
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    conv2d_backward_weight(x, dy, dw, no_bias, p);
  }
  CHECK(relative_error(dw, r.dw, r.dw_abs) < kBound);
}
