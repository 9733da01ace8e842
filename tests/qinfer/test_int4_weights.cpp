// 4-bit weights kept two per byte (qinfer/gemm.h: pack_weights_4bit) and widened in the kernels:
// the packing's round trip and size, the GEMM's s32 accumulators and requantized bytes on both
// paths against a 64-bit reference and against the same weights packed as s8 (odd shapes, k not
// a multiple of 4 or 8, alpha 1 and 2), and the convolutions (im2col GEMM and direct) on them.
#include <doctest.h>

#include <random>

#include "qinfer/conv.h"
#include "qinfer/conv_direct.h"
#include "qinfer/gemm.h"
#include "tensor/tensor.h"
#include "tests/qinfer/gemm_paths.h"

using namespace qnn::qinfer;
using namespace qnn::qinfer::testing;

namespace {

// Weights alpha * code + beta[c] with random codes in [0, 15]: what an export's 4-bit codes give
// (q - z, or 2q - 2z for DoReFa's half-integer zero point).
struct FourBitWeights {
  int alpha;
  std::vector<int8_t> beta, values;
  FourBitWeights(int64_t n, int64_t k, int alpha_, std::mt19937& rng) : alpha(alpha_) {
    std::uniform_int_distribution<int> code(0, 15), b(alpha == 1 ? -15 : -30, 0);
    for (int64_t c = 0; c < n; ++c) beta.push_back(int8_t(c == 0 ? (alpha == 1 ? -8 : -15) : b(rng)));
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < k; ++j) values.push_back(int8_t(alpha * code(rng) + beta[c]));
  }
};

std::vector<float> requant_multipliers(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> m(0.5f / 64, 2.0f / 64);
  std::vector<float> v(n);
  for (float& e : v) e = m(rng);
  return v;
}

}  // namespace

TEST_CASE("qinfer int4: the packing holds two codes per byte and gives back every weight") {
  std::mt19937 rng(3);
  for (int alpha : {1, 2})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{1, 1}, {5, 3}, {16, 36}, {17, 7}, {33, 29}, {64, 576}}) {
      CAPTURE(alpha);
      CAPTURE(n);
      CAPTURE(k);
      const FourBitWeights w(n, k, alpha, rng);
      const PackedWeights p8 = pack_weights(w.values.data(), n, k);
      const PackedWeights p4 = pack_weights_4bit(w.values.data(), n, k, alpha, w.beta.data());
      CHECK(p4.bits == 4);
      CHECK(p4.data.size() * 2 == p8.data.size());
      CHECK(p4.bytes() == p4.np * p4.kp / 2 + p4.np * 4);
      CHECK(p4.sums == p8.sums);
      const std::vector<int8_t> wide = widen_weights(p4);
      std::vector<int8_t> wide_vnni(wide.size());
      if (vnni_supported()) {  // in two parts, as threads do
        const int64_t groups = p4.np / 16 * p4.kp / 4;
        kernels::widen_vnni(p4, wide_vnni.data(), 0, groups / 3);
        kernels::widen_vnni(p4, wide_vnni.data(), groups / 3, groups);
      }
      int64_t wrong = 0;
      for (int64_t c = 0; c < n; ++c)
        for (int64_t j = 0; j < k; ++j) {
          const int64_t i = ((c / 16) * (p8.kp / 4) + j / 4) * 64 + (c % 16) * 4 + j % 4;
          wrong += packed_weight(p4, c, j) != w.values[c * k + j];
          wrong += wide[i] != w.values[c * k + j];
          if (vnni_supported()) wrong += wide_vnni[i] != w.values[c * k + j];
        }
      CHECK(wrong == 0);
      if (vnni_supported()) CHECK(wide_vnni == wide);
    }
  std::vector<int8_t> bad = {3, 5};  // 5 - (-8) = 13 fits; 3 with alpha 2 and beta 0 is odd
  const int8_t beta = 0;
  CHECK_THROWS_WITH_AS(pack_weights_4bit(bad.data(), 1, 2, 2, &beta), doctest::Contains("is not 2 x code + 0"),
                       qnn::Error);
  bad = {40, 0};
  CHECK_THROWS_WITH_AS(pack_weights_4bit(bad.data(), 1, 2, 1, &beta), doctest::Contains("code in [0, 15]"), qnn::Error);
}

TEST_CASE("qinfer int4: GEMM accumulators and bytes equal the s8 packing's and a 64-bit reference") {
  PathGuard guard;
  std::mt19937 rng(17);
  for (GemmPath path : paths()) {
    set_gemm_path(path);
    CAPTURE(gemm_path_name(path));
    for (int trial = 0; trial < 30; ++trial) {
      const int alpha = 1 + trial % 2;
      const int64_t m = 1 + rng() % 70, n = 1 + rng() % 70, k = 1 + rng() % 300, kp = (k + 3) / 4 * 4,
                    lda = kp + rng() % 5;
      CAPTURE(alpha);
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      // Columns k .. kp-1 hold zeros (the 4-bit packing's contract); past kp anything.
      std::uniform_int_distribution<int> byte(0, 255);
      std::vector<uint8_t> a(m * lda);
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < lda; ++j) a[i * lda + j] = j >= k && j < kp ? 0 : uint8_t(byte(rng));
      const FourBitWeights w(n, k, alpha, rng);
      const PackedWeights p4 = pack_weights_4bit(w.values.data(), n, k, alpha, w.beta.data());
      const PackedWeights p8 = pack_weights(w.values.data(), n, k);
      std::vector<int32_t> c4(m * n), c8(m * n);
      gemm_u8s8_s32(a.data(), lda, m, p4, c4.data(), n);
      gemm_u8s8_s32(a.data(), lda, m, p8, c8.data(), n);
      int64_t wrong = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
          int64_t ref = 0;
          for (int64_t q = 0; q < k; ++q) ref += int64_t(a[i * lda + q]) * int64_t(w.values[j * k + q]);
          wrong += ref != c4[i * n + j];
        }
      CHECK(wrong == 0);
      CHECK(c4 == c8);
      // Requantized, with a residual on odd trials.
      std::vector<int32_t> offset(n);
      for (int64_t j = 0; j < n; ++j) offset[j] = 5 * p4.sums[j];
      const std::vector<float> multiplier = requant_multipliers(n, rng), bias(n, 3.5f);
      std::vector<uint8_t> residual(m * n);
      for (uint8_t& v : residual) v = uint8_t(byte(rng));
      Requant rq;
      rq.offset = offset.data();
      rq.multiplier = multiplier.data();
      rq.bias = bias.data();
      rq.zero_point = 9;
      rq.lo = 9;
      if (trial % 2) {
        rq.residual = residual.data();
        rq.residual_ld = n;
        rq.residual_zero = 4;
        rq.residual_multiplier = 0.6f;
      }
      std::vector<uint8_t> y4(m * n), y8(m * n);
      gemm_u8s8_requant(a.data(), lda, m, p4, rq, y4.data(), n);
      gemm_u8s8_requant(a.data(), lda, m, p8, rq, y8.data(), n);
      int64_t wrong_y = 0;
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) wrong_y += y4[i * n + j] != requantize_value(c8[i * n + j], j, rq, residual[i * n + j]);
      CHECK(wrong_y == 0);
      CHECK(y4 == y8);
    }
  }
}

TEST_CASE("qinfer int4: convolutions on 4-bit weights give the s8 weights' bytes (im2col GEMM and direct)") {
  PathGuard guard;
  std::mt19937 rng(29);
  struct Case {
    int64_t n, h, w, c, oc, stride;
  };
  for (const Case& t : {Case{2, 7, 5, 3, 16, 1}, Case{1, 9, 9, 16, 32, 2}, Case{2, 10, 18, 16, 16, 1},
                        Case{1, 8, 8, 64, 64, 1}, Case{2, 6, 16, 32, 48, 1}})
    for (GemmPath path : paths())
      for (ConvAlgorithm algorithm : {ConvAlgorithm::Auto, ConvAlgorithm::Gemm}) {
        set_gemm_path(path);
        set_conv_algorithm(algorithm);
        CAPTURE(gemm_path_name(path));
        CAPTURE(t.c);
        CAPTURE(t.oc);
        CAPTURE(int(algorithm));
        const ConvShape s{t.c, t.oc, 3, t.stride, 1};
        const int64_t k = 9 * t.c, positions = t.n * s.out_size(t.h) * s.out_size(t.w);
        std::uniform_int_distribution<int> byte(0, 255);
        std::vector<uint8_t> x(t.n * t.h * t.w * t.c);
        for (uint8_t& v : x) v = uint8_t(byte(rng));
        const FourBitWeights w(t.oc, k, 2 - t.c % 2, rng);  // rows [out][kh][kw][in]
        const PackedWeights p4 = pack_weights_4bit(w.values.data(), t.oc, k, w.alpha, w.beta.data());
        const PackedWeights p8 = pack_weights(w.values.data(), t.oc, k);
        std::vector<int32_t> offset(t.oc);
        for (int64_t j = 0; j < t.oc; ++j) offset[j] = 6 * p8.sums[j];
        const std::vector<float> multiplier = requant_multipliers(t.oc, rng), bias(t.oc, -2.5f);
        Requant rq;
        rq.offset = offset.data();
        rq.multiplier = multiplier.data();
        rq.bias = bias.data();
        rq.zero_point = 3;
        rq.lo = 3;
        std::vector<uint8_t> y4(positions * t.oc), y8(positions * t.oc);
        conv2d_u8(x.data(), t.n, t.h, t.w, s, 6, p4, rq, y4.data());
        set_gemm_path(GemmPath::Scalar);
        conv2d_u8(x.data(), t.n, t.h, t.w, s, 6, p8, rq, y8.data());
        CHECK(y4 == y8);
        std::vector<int32_t> acc4(positions * t.oc), acc8(positions * t.oc);
        set_gemm_path(path);
        conv2d_u8_s32(x.data(), t.n, t.h, t.w, s, 6, p4, acc4.data());
        conv2d_u8_s32(x.data(), t.n, t.h, t.w, s, 6, p8, acc8.data());
        CHECK(acc4 == acc8);
      }
}
