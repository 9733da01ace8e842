// The dp4a integer GEMM on the GPU (qinfer/gemm_cuda.h) against the CPU's scalar path: identical
// requantized bytes on random shapes (odd sizes, k not a multiple of 4), with and without a
// residual, and with more rows than one grid dimension takes. Skipped without a usable GPU (tests/gpu.h).
#include <random>

#include "qinfer/gemm_cuda.h"
#include "tests/gpu.h"

using namespace qnn::qinfer;

namespace {

// One random GEMM of m x n x k (A's rows lda bytes apart), with a residual or not, on both devices.
void check_gemm(std::mt19937& rng, int64_t m, int64_t n, int64_t k, int64_t lda, bool with_residual) {
  CAPTURE(m);
  CAPTURE(n);
  CAPTURE(k);
  std::vector<uint8_t> a(m * lda), residual(m * n);
  std::vector<int8_t> w(n * k);
  for (auto& v : a) v = uint8_t(rng());
  for (auto& v : residual) v = uint8_t(rng());
  for (auto& v : w) v = int8_t(rng());
  const PackedWeights p = pack_weights(w.data(), n, k);
  std::vector<int32_t> offset;
  std::vector<float> multiplier, bias;
  std::uniform_real_distribution<float> mul(0.5f / 256, 2.0f / 256), b(-20, 20);
  for (int64_t c = 0; c < n; ++c) {
    offset.push_back(5 * p.sums[c]);
    multiplier.push_back(mul(rng));
    bias.push_back(b(rng));
  }
  Requant rq;
  rq.offset = offset.data();
  rq.multiplier = multiplier.data();
  rq.bias = bias.data();
  rq.zero_point = 3;
  rq.lo = 3;
  rq.hi = 255;
  if (with_residual) {
    rq.residual = residual.data();
    rq.residual_ld = n;
    rq.residual_zero = 2;
    rq.residual_multiplier = 0.6f;
  }
  std::vector<uint8_t> cpu(m * n), gpu(m * n);
  set_gemm_path(GemmPath::Scalar);
  gemm_u8s8_requant(a.data(), lda, m, p, rq, cpu.data(), n);
  set_gemm_path(GemmPath::Auto);
  gemm_u8s8_requant_cuda(a.data(), lda, m, p, rq, gpu.data(), n);
  CHECK(cpu == gpu);
}

}  // namespace

GPU_TEST_CASE("qinfer cuda: the dp4a GEMM requantizes to the CPU's bytes") {
  REQUIRE(cuda_gemm_available());
  std::mt19937 rng(17);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t m = 1 + rng() % 90, n = 1 + rng() % 70, k = 1 + rng() % 600, lda = (k + 3) / 4 * 4 + rng() % 3;
    check_gemm(rng, m, n, k, lda, trial % 2 == 1);
  }
}

GPU_TEST_CASE("qinfer cuda: more rows than a grid's second dimension holds (65535)") {
  REQUIRE(cuda_gemm_available());
  std::mt19937 rng(18);
  check_gemm(rng, 70000, 3, 8, 8, true);
}

TEST_CASE("qinfer cuda: without a GPU the entry point says why") {
  if (cuda_gemm_available()) return;
  const std::vector<int8_t> w(16, 1);
  const PackedWeights p = pack_weights(w.data(), 4, 4);
  std::vector<uint8_t> a(4), out(4);
  CHECK_THROWS_AS(gemm_u8s8_requant_cuda(a.data(), 4, 1, p, Requant{}, out.data(), 4), qnn::Error);
}
