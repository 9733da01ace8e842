// The integer GEMM and convolution of qinfer/ (qinfer/gemm.h, qinfer/conv.h): s32 accumulators
// against a 64-bit reference on random shapes (odd sizes, k not a multiple of 4), the AVX-512
// VNNI and scalar paths giving identical requantized bytes, the requantization's rounding and
// clamping written out by hand, and the weight packing's round trip.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "qinfer/conv.h"
#include "qinfer/conv_direct.h"
#include "qinfer/gemm.h"
#include "tensor/tensor.h"
#include "tests/qinfer/gemm_paths.h"

using namespace qnn::qinfer;
using namespace qnn::qinfer::testing;

namespace {

template <typename T>
std::vector<T> random_values(size_t n, int lo, int hi, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (T& e : v) e = T(d(rng));
  return v;
}

// The requantization parameters of a layer with random multipliers around 1/256 (so outputs
// spread over the u8 range), biases and zero points.
struct RandomRequant {
  std::vector<int32_t> offset;
  std::vector<float> multiplier, bias;
  Requant rq;
  RandomRequant(const PackedWeights& w, int32_t z_in, std::mt19937& rng) {
    std::uniform_real_distribution<float> m(0.5f / 256, 2.0f / 256), b(-20.0f, 20.0f);
    for (int64_t c = 0; c < w.n; ++c) {
      offset.push_back(z_in * w.sums[c]);
      multiplier.push_back(m(rng));
      bias.push_back(b(rng));
    }
    rq.offset = offset.data();
    rq.multiplier = multiplier.data();
    rq.bias = bias.data();
    rq.zero_point = 7;
    rq.lo = 7;
    rq.hi = 250;
  }
};

}  // namespace

TEST_CASE("qinfer gemm: s32 accumulators equal a 64-bit reference on random shapes") {
  PathGuard guard;
  std::mt19937 rng(5);
  for (GemmPath path : paths()) {
    set_gemm_path(path);
    CAPTURE(gemm_path_name(path));
    for (int trial = 0; trial < 40; ++trial) {
      const int64_t m = 1 + rng() % 70, n = 1 + rng() % 70, k = 1 + rng() % 300, lda = (k + 3) / 4 * 4 + rng() % 5;
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      // Extremes included: 255 x -128 is the largest product.
      std::vector<uint8_t> a = random_values<uint8_t>(m * lda, 0, 255, rng);
      std::vector<int8_t> w = random_values<int8_t>(n * k, -128, 127, rng);
      if (trial == 0) {
        std::fill(a.begin(), a.end(), 255);
        std::fill(w.begin(), w.end(), -128);
      }
      const PackedWeights p = pack_weights(w.data(), n, k);
      std::vector<int32_t> c(m * n);
      gemm_u8s8_s32(a.data(), lda, m, p, c.data(), n);
      int64_t wrong = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          int64_t ref = 0;
          for (int64_t q = 0; q < k; ++q) ref += int64_t(a[i * lda + q]) * int64_t(w[j * k + q]);
          wrong += ref != c[i * n + j];
        }
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("qinfer gemm: the VNNI and scalar paths requantize to identical bytes, residual included") {
  if (!vnni_supported()) {
    MESSAGE("skipped: this CPU has no AVX-512 VNNI");
    return;
  }
  PathGuard guard;
  std::mt19937 rng(11);
  for (int trial = 0; trial < 30; ++trial) {
    const int64_t m = 1 + rng() % 100, n = 1 + rng() % 80, k = 1 + rng() % 600, lda = (k + 3) / 4 * 4;
    CAPTURE(m);
    CAPTURE(n);
    CAPTURE(k);
    const std::vector<uint8_t> a = random_values<uint8_t>(m * lda, 0, 255, rng);
    const std::vector<int8_t> w = random_values<int8_t>(n * k, -128, 127, rng);
    const std::vector<uint8_t> residual = random_values<uint8_t>(m * n, 0, 255, rng);
    const PackedWeights p = pack_weights(w.data(), n, k);
    RandomRequant r(p, int32_t(rng() % 20), rng);
    if (trial % 2) {
      r.rq.residual = residual.data();
      r.rq.residual_ld = n;
      r.rq.residual_zero = 3;
      r.rq.residual_multiplier = 0.75f;
    }
    std::vector<uint8_t> scalar(m * n), vnni(m * n);
    set_gemm_path(GemmPath::Scalar);
    gemm_u8s8_requant(a.data(), lda, m, p, r.rq, scalar.data(), n);
    set_gemm_path(GemmPath::Vnni);
    gemm_u8s8_requant(a.data(), lda, m, p, r.rq, vnni.data(), n);
    CHECK(scalar == vnni);
    // Both against the formula on 64-bit accumulators.
    int64_t wrong = 0, clamped = 0;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int64_t ref = 0;
        for (int64_t q = 0; q < k; ++q) ref += int64_t(a[i * lda + q]) * int64_t(w[j * k + q]);
        const uint8_t want = requantize_value(int32_t(ref), j, r.rq, residual[i * n + j]);
        wrong += want != scalar[i * n + j];
        clamped += want == 7 || want == 250;
      }
    CHECK(wrong == 0);
    CHECK(clamped < m * n);  // the outputs are not all at the clamps
  }
}

TEST_CASE("qinfer gemm: requantization rounds half to even, adds the zero point and clamps (the ReLU)") {
  const std::vector<int32_t> offset = {10};
  const std::vector<float> multiplier = {0.5f}, bias = {0.0f};
  Requant rq;
  rq.offset = offset.data();
  rq.multiplier = multiplier.data();
  rq.bias = bias.data();
  rq.zero_point = 4;
  rq.lo = 4;  // real 0: the ReLU
  rq.hi = 15;
  // v = (acc - 10) * 0.5: 2.5 -> 2, 3.5 -> 4, 4.5 -> 4, -0.5 -> 0 (then + 4), -3 -> clamped at 4.
  CHECK(requantize_value(15, 0, rq, 0) == 6);
  CHECK(requantize_value(17, 0, rq, 0) == 8);
  CHECK(requantize_value(19, 0, rq, 0) == 8);
  CHECK(requantize_value(9, 0, rq, 0) == 4);
  CHECK(requantize_value(4, 0, rq, 0) == 4);
  CHECK(requantize_value(40, 0, rq, 0) == 15);  // 15 + 4 = 19 clamps to 15
  CHECK(requantize_value(2000000000, 0, rq, 0) == 15);  // far beyond: clamped before the conversion
  // The residual: (r - z_r) * m_r is added before rounding: 2.5 + (9 - 5) * 0.25 = 3.5 -> 4.
  const uint8_t residual_row[1] = {9};  // requantize_value takes the residual byte itself
  rq.residual = residual_row;
  rq.residual_zero = 5;
  rq.residual_multiplier = 0.25f;
  CHECK(requantize_value(15, 0, rq, 9) == 8);
}

TEST_CASE("qinfer gemm: packed weights give back every value; the sums and the padding are right") {
  std::mt19937 rng(3);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {17, 27}, {16, 144}, {10, 64}, {33, 5}}) {
    const std::vector<int8_t> w = random_values<int8_t>(n * k, -128, 127, rng);
    const PackedWeights p = pack_weights(w.data(), n, k);
    CHECK(p.np % 16 == 0);
    CHECK(p.kp % 4 == 0);
    CHECK(int64_t(p.data.size()) == p.np * p.kp);
    int64_t wrong = 0, nonzero_padding = 0;
    for (int64_t c = 0; c < p.np; ++c)
      for (int64_t j = 0; j < p.kp; ++j) {
        if (c < n && j < k) wrong += packed_weight(p, c, j) != w[c * k + j];
        else nonzero_padding += packed_weight(p, c, j) != 0;
      }
    CHECK(wrong == 0);
    CHECK(nonzero_padding == 0);
    for (int64_t c = 0; c < n; ++c) {
      int32_t sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += w[c * k + j];
      CHECK(p.sums[c] == sum);
    }
  }
  CHECK_THROWS_WITH_AS(pack_weights(nullptr, 4, 40000), doctest::Contains("exceeds 32768"), qnn::Error);
}

TEST_CASE("qinfer conv: conv2d_u8 equals a direct 64-bit convolution padded with the zero point") {
  PathGuard guard;
  std::mt19937 rng(21);
  struct Case {
    int64_t n, h, w, c, oc, kernel, stride;
  };
  for (const Case& t : {Case{2, 7, 5, 3, 16, 3, 1}, Case{1, 9, 9, 5, 7, 3, 2}, Case{3, 8, 8, 16, 32, 3, 2},
                        Case{1, 6, 11, 16, 16, 3, 1}, Case{2, 4, 4, 8, 20, 1, 1}, Case{2, 12, 10, 32, 64, 3, 1}})
    for (GemmPath path : paths()) {
      set_gemm_path(path);
      CAPTURE(gemm_path_name(path));
      CAPTURE(t.c);
      CAPTURE(t.stride);
      const ConvShape s{t.c, t.oc, t.kernel, t.stride, t.kernel / 2};
      const int64_t oh = s.out_size(t.h), ow = s.out_size(t.w), k = t.kernel * t.kernel * t.c;
      const uint8_t z_in = 9;
      const std::vector<uint8_t> x = random_values<uint8_t>(t.n * t.h * t.w * t.c, 0, 255, rng);
      const std::vector<int8_t> w = random_values<int8_t>(t.oc * t.c * t.kernel * t.kernel, -128, 127, rng);  // [out][in][kh][kw]
      const PackedWeights p = pack_weights(conv_weight_nhwc(w, s).data(), t.oc, k);
      std::vector<int32_t> acc(t.n * oh * ow * t.oc);
      conv2d_u8_s32(x.data(), t.n, t.h, t.w, s, z_in, p, acc.data());
      RandomRequant r(p, z_in, rng);
      std::vector<uint8_t> y(acc.size());
      conv2d_u8(x.data(), t.n, t.h, t.w, s, z_in, p, r.rq, y.data());
      int64_t wrong_acc = 0, wrong_y = 0;
      for (int64_t img = 0; img < t.n; ++img)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j)
            for (int64_t o = 0; o < t.oc; ++o) {
              // sum over taps of (x - z_in) w, with padding taps worth x = z_in, plus z_in sum w:
              // what the accumulator holds before the offset is subtracted.
              int64_t centred = 0, sum_w = 0;
              for (int64_t ci = 0; ci < t.c; ++ci)
                for (int64_t kh = 0; kh < t.kernel; ++kh)
                  for (int64_t kw = 0; kw < t.kernel; ++kw) {
                    const int64_t ih = i * t.stride - s.padding + kh, iw = j * t.stride - s.padding + kw;
                    const int64_t wv = w[((o * t.c + ci) * t.kernel + kh) * t.kernel + kw];
                    sum_w += wv;
                    if (ih >= 0 && ih < t.h && iw >= 0 && iw < t.w)
                      centred += (int64_t(x[((img * t.h + ih) * t.w + iw) * t.c + ci]) - z_in) * wv;
                  }
              const int64_t m = (img * oh + i) * ow + j;
              wrong_acc += acc[m * t.oc + o] != centred + z_in * sum_w;
              wrong_y += y[m * t.oc + o] != requantize_value(int32_t(centred + z_in * sum_w), o, r.rq, 0);
            }
      CHECK(wrong_acc == 0);
      CHECK(wrong_y == 0);
    }
}

TEST_CASE("qinfer conv: the direct convolution gives the im2col GEMM's and the scalar path's bytes") {
  PathGuard guard;
  struct AlgorithmGuard {
    ~AlgorithmGuard() { set_conv_algorithm(ConvAlgorithm::Auto); }
  } algorithm_guard;
  CHECK(direct_conv_fits(ConvShape{16, 16, 3, 1, 1}));
  CHECK(direct_conv_fits(ConvShape{64, 48, 3, 1, 1}));
  CHECK(direct_conv_fits(ConvShape{16, 32, 3, 2, 1}));
  CHECK_FALSE(direct_conv_fits(ConvShape{16, 16, 3, 3, 1}));
  CHECK_FALSE(direct_conv_fits(ConvShape{16, 20, 3, 1, 1}));
  CHECK_FALSE(direct_conv_fits(ConvShape{8, 16, 3, 1, 1}));
  CHECK_FALSE(direct_conv_fits(ConvShape{16, 16, 1, 1, 0}));
  if (!vnni_supported()) {
    MESSAGE("this CPU has no AVX-512 VNNI: the direct convolution (VNNI only) is not checked");
    return;
  }
  std::mt19937 rng(33);
  // Output widths below, at and past one 16-pixel strip, with a partial last strip; 8 wide (two
  // output rows per strip) with an odd height, at both strides and all three widths; one image (its rows split over the threads) and
  // several; 16, 32 and 64 input channels, one to four blocks of 16 output channels; strides 1
  // and 2 (odd and even input sizes); with and without a residual.
  struct Case {
    int64_t n, h, w, c, oc, stride;
  };
  for (const Case& t : {Case{1, 32, 32, 16, 16, 1}, Case{3, 5, 7, 16, 16, 1}, Case{2, 9, 16, 16, 16, 1},
                        Case{1, 3, 33, 16, 16, 1}, Case{5, 17, 21, 16, 16, 1}, Case{1, 1, 1, 16, 16, 1},
                        Case{2, 16, 16, 32, 32, 1}, Case{1, 8, 8, 64, 64, 1}, Case{3, 7, 8, 64, 64, 1},
                        Case{2, 5, 8, 16, 16, 1}, Case{1, 6, 19, 32, 48, 1}, Case{2, 4, 3, 64, 16, 1},
                        Case{2, 32, 32, 16, 32, 2}, Case{1, 16, 16, 32, 64, 2}, Case{3, 15, 15, 32, 64, 2},
                        Case{1, 9, 35, 16, 16, 2}, Case{2, 5, 2, 64, 16, 2}, Case{1, 1, 1, 16, 32, 2},
                        Case{1, 16, 15, 64, 32, 2}})
    for (bool residual : {false, true}) {
      CAPTURE(t.n);
      CAPTURE(t.h);
      CAPTURE(t.w);
      CAPTURE(t.c);
      CAPTURE(t.oc);
      CAPTURE(t.stride);
      CAPTURE(residual);
      const ConvShape s{t.c, t.oc, 3, t.stride, 1};
      REQUIRE(direct_conv_fits(s));
      const int64_t oh = s.out_size(t.h), ow = s.out_size(t.w), positions = t.n * oh * ow, k = 9 * t.c;
      const uint8_t z_in = 11;
      const std::vector<uint8_t> x = random_values<uint8_t>(t.n * t.h * t.w * t.c, 0, 255, rng);
      const std::vector<int8_t> w = random_values<int8_t>(t.oc * k, -128, 127, rng);  // [out][in][kh][kw]
      const PackedWeights p = pack_weights(conv_weight_nhwc(w, s).data(), t.oc, k);
      RandomRequant r(p, z_in, rng);
      const std::vector<uint8_t> res = random_values<uint8_t>(positions * t.oc, 0, 255, rng);
      if (residual) {
        r.rq.residual = res.data();
        r.rq.residual_ld = t.oc;
        r.rq.residual_zero = 5;
        r.rq.residual_multiplier = 0.37f;
      }
      // The 64-bit sums through the scalar requantization.
      std::vector<uint8_t> expected(positions * t.oc);
      for (int64_t img = 0; img < t.n; ++img)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j)
            for (int64_t o = 0; o < t.oc; ++o) {
              int64_t sum = 0;
              for (int64_t ci = 0; ci < t.c; ++ci)
                for (int64_t kh = 0; kh < 3; ++kh)
                  for (int64_t kw = 0; kw < 3; ++kw) {
                    const int64_t ih = i * t.stride - 1 + kh, iw = j * t.stride - 1 + kw;
                    const bool inside = ih >= 0 && ih < t.h && iw >= 0 && iw < t.w;
                    sum += int64_t(inside ? x[((img * t.h + ih) * t.w + iw) * t.c + ci] : z_in) *
                           w[((o * t.c + ci) * 3 + kh) * 3 + kw];
                  }
              const int64_t m = (img * oh + i) * ow + j;
              expected[m * t.oc + o] = requantize_value(int32_t(sum), o, r.rq, residual ? res[m * t.oc + o] : 0);
            }
      std::vector<uint8_t> scalar(expected.size()), gemm(expected.size()), direct(expected.size()),
          called(expected.size());
      set_gemm_path(GemmPath::Scalar);
      conv2d_u8(x.data(), t.n, t.h, t.w, s, z_in, p, r.rq, scalar.data());
      set_gemm_path(GemmPath::Vnni);
      set_conv_algorithm(ConvAlgorithm::Gemm);
      conv2d_u8(x.data(), t.n, t.h, t.w, s, z_in, p, r.rq, gemm.data());
      set_conv_algorithm(ConvAlgorithm::Auto);
      conv2d_u8(x.data(), t.n, t.h, t.w, s, z_in, p, r.rq, called.data());
      conv2d_u8_direct(x.data(), t.n, t.h, t.w, s, z_in, p, r.rq, direct.data());
      CHECK(scalar == expected);
      CHECK(gemm == expected);
      CHECK(direct == expected);
      CHECK(called == expected);
    }
  CHECK_THROWS_WITH_AS(conv2d_u8_direct(nullptr, 1, 4, 4, ConvShape{16, 20, 3, 1, 1}, 0, PackedWeights{}, Requant{}, nullptr),
                       doctest::Contains("multiple of 16"), qnn::Error);
}

TEST_CASE("qinfer conv: the direct RGB convolution's accumulators equal the im2col GEMM's") {
  PathGuard guard;
  CHECK(direct_rgb_fits(ConvShape{3, 48, 3, 1, 1}));
  CHECK_FALSE(direct_rgb_fits(ConvShape{3, 40, 3, 1, 1}));
  CHECK_FALSE(direct_rgb_fits(ConvShape{3, 16, 3, 2, 1}));
  CHECK_FALSE(direct_rgb_fits(ConvShape{4, 16, 3, 1, 1}));
  if (!vnni_supported()) {
    MESSAGE("this CPU has no AVX-512 VNNI: the direct RGB convolution (VNNI only) is not checked");
    return;
  }
  std::mt19937 rng(41);
  struct Case {
    int64_t n, h, w, oc;
    uint8_t pad;
  };
  for (const Case& t : {Case{2, 32, 32, 48, 0}, Case{1, 5, 7, 16, 13}, Case{3, 9, 8, 32, 0}, Case{1, 1, 1, 16, 200},
                        Case{2, 6, 17, 16, 0}, Case{1, 3, 33, 48, 7}}) {
    CAPTURE(t.n);
    CAPTURE(t.h);
    CAPTURE(t.w);
    CAPTURE(t.oc);
    const ConvShape s{3, t.oc, 3, 1, 1};
    const int64_t positions = t.n * t.h * t.w;
    const std::vector<uint8_t> x = random_values<uint8_t>(positions * 3, 0, 255, rng);
    const std::vector<int8_t> w = random_values<int8_t>(t.oc * 27, -128, 127, rng);  // [out][in][kh][kw]
    const std::vector<int8_t> nhwc = conv_weight_nhwc(w, s);
    const PackedWeights p3 = pack_weights(nhwc.data(), t.oc, 27);
    const PackedWeights p4 = pack_weights(rgb_weights_as_4_channels(nhwc, s).data(), t.oc, 36);
    std::vector<int32_t> gemm(positions * t.oc), direct(positions * t.oc, -1);
    std::vector<int> seen(positions, 0);
    conv2d_u8_s32(x.data(), t.n, t.h, t.w, s, t.pad, p3, gemm.data());
    conv2d_rgb_s32_direct(x.data(), t.n, t.h, t.w, s, t.pad, p4, [&](int64_t m0, int64_t rows, const int32_t* acc) {
      for (int64_t m = m0; m < m0 + rows; ++m) {
        ++seen[m];
        std::copy(acc + (m - m0) * t.oc, acc + (m - m0 + 1) * t.oc, direct.begin() + m * t.oc);
      }
    });
    CHECK(std::count(seen.begin(), seen.end(), 1) == positions);  // every position once
    CHECK(direct == gemm);
  }
}
