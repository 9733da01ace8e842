// Weight packing, the path choice and the row split of the integer GEMM (see qinfer/gemm.h).
#include "qinfer/gemm.h"

#include <algorithm>
#include <cmath>

#include "tensor/tensor.h"

namespace qnn::qinfer {

namespace {

GemmPath forced_path = GemmPath::Auto;

// Rows per unit of work: a multiple of every kernel's row tile (6, 8, 12).
constexpr int64_t kRowChunk = 48;

}  // namespace

PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k) {
  QNN_CHECK(n > 0 && k > 0, "pack_weights: need n, k > 0, found n ", n, ", k ", k);
  // |acc - offset| stays below 2^31: k * 255 * 128 * 2 < 2^31.
  QNN_CHECK(k <= 32768, "pack_weights: k = ", k, " exceeds 32768, where s32 accumulators could overflow");
  PackedWeights p;
  p.n = n;
  p.k = k;
  p.np = (n + 15) / 16 * 16;
  p.kp = (k + 3) / 4 * 4;
  p.data.assign(p.np * p.kp, 0);
  p.sums.assign(n, 0);
  for (int64_t c = 0; c < n; ++c)
    for (int64_t j = 0; j < k; ++j) {
      const int8_t v = w[c * k + j];
      p.data[((c / 16) * (p.kp / 4) + j / 4) * 64 + (c % 16) * 4 + j % 4] = v;
      p.sums[c] += v;
    }
  return p;
}

PackedWeights pack_weights_4bit(const int8_t* w, int64_t n, int64_t k, int alpha, const int8_t* beta) {
  QNN_CHECK(alpha == 1 || alpha == 2, "pack_weights_4bit: alpha is ", alpha, ", expected 1 or 2");
  PackedWeights p = pack_weights(w, n, k);
  const std::vector<int8_t> wide = std::move(p.data);
  const int64_t groups = p.kp / 4;
  p.bits = 4;
  p.alpha = alpha;
  p.beta.assign(p.np * 4, 0);
  for (int64_t c = 0; c < n; ++c)
    for (int j = 0; j < 4; ++j) p.beta[(c / 16) * 64 + (c % 16) * 4 + j] = beta[c];
  // The code of byte i of the 8-bit layout; padding (channels past n, k past k) holds code 0.
  auto code = [&](int64_t i) {
    const int64_t c = i / 64 / groups * 16 + i % 64 / 4, j = i / 64 % groups * 4 + i % 4;
    if (c >= n || j >= k) return 0;
    const int v = wide[i], q = (v - beta[c]) / alpha;
    QNN_CHECK((v - beta[c]) % alpha == 0 && q >= 0 && q <= 15, "pack_weights_4bit: weight ", v, " of channel ", c,
              " is not ", alpha, " x code + ", int(beta[c]), " with a code in [0, 15]");
    return q;
  };
  p.data.assign(wide.size() / 2, 0);
  for (size_t i = 0; i < p.data.size(); ++i) {
    const int64_t bg = int64_t(i) / 32, j = int64_t(i) % 32;
    p.data[i] = int8_t(code(bg * 64 + j) | code(bg * 64 + j + 32) << 4);
  }
  return p;
}

int8_t packed_weight(const PackedWeights& p, int64_t c, int64_t k) {
  const int64_t i = ((c / 16) * (p.kp / 4) + k / 4) * 64 + (c % 16) * 4 + k % 4;
  if (p.bits == 8) return p.data[i];
  const uint8_t byte = uint8_t(p.data[i / 64 * 32 + i % 32]);
  const int code = i % 64 < 32 ? byte & 15 : byte >> 4;
  return int8_t(p.alpha * code + p.beta[(c / 16) * 64 + (c % 16) * 4]);
}

std::vector<int8_t> widen_weights(const PackedWeights& p) {
  if (p.bits == 8) return p.data;
  std::vector<int8_t> wide(p.np * p.kp);
  for (int64_t c = 0; c < p.np; ++c)
    for (int64_t j = 0; j < p.kp; ++j) wide[((c / 16) * (p.kp / 4) + j / 4) * 64 + (c % 16) * 4 + j % 4] = packed_weight(p, c, j);
  return wide;
}

bool vnni_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  return ok;
}

GemmPath active_gemm_path() {
  if (forced_path != GemmPath::Auto) return forced_path;
  return vnni_supported() ? GemmPath::Vnni : GemmPath::Scalar;
}

void set_gemm_path(GemmPath path) {
  QNN_CHECK(path != GemmPath::Vnni || vnni_supported(), "the AVX-512 VNNI path was asked for, but this CPU lacks it");
  forced_path = path;
}

const char* gemm_path_name(GemmPath path) {
  switch (path) {
    case GemmPath::Auto: return gemm_path_name(active_gemm_path());
    case GemmPath::Scalar: return "scalar";
    case GemmPath::Vnni: return "avx512-vnni";
  }
  return "?";
}

uint8_t requantize_value(int32_t acc, int64_t channel, const Requant& rq, int32_t residual) {
  float v = std::fma(float(acc - rq.offset[channel]), rq.multiplier[channel], rq.bias[channel]);
  if (rq.residual) v = std::fma(float(residual - rq.residual_zero), rq.residual_multiplier, v);
  v = std::min(std::max(v, -1073741824.0f), 1073741824.0f);
  const int32_t q = int32_t(std::nearbyint(v)) + rq.zero_point;
  return uint8_t(std::min(std::max(q, rq.lo), rq.hi));
}

void gemm_u8s8_requant(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, const Requant& rq,
                       uint8_t* out, int64_t ldo, [[maybe_unused]] bool parallel) {
  QNN_CHECK(lda >= w.kp && ldo >= w.n, "gemm_u8s8_requant: lda ", lda, " < kp ", w.kp, " or ldo ", ldo, " < n ", w.n);
  QNN_CHECK(rq.lo >= 0 && rq.hi <= 255 && rq.lo <= rq.hi, "gemm_u8s8_requant: bad output range [", rq.lo, ", ", rq.hi, "]");
  const bool vnni = active_gemm_path() == GemmPath::Vnni;
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for schedule(static) if (parallel && chunks > 1)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t r0 = i * kRowChunk, r = std::min(kRowChunk, rows - r0);
    Requant part = rq;
    if (part.residual) part.residual += r0 * part.residual_ld;
    const ARows rows_a = ARows::dense(a + r0 * lda, lda, w.kp);
    if (vnni) kernels::requant_vnni(rows_a, r, w, part, out + r0 * ldo, ldo);
    else kernels::requant_scalar(rows_a, r, w, part, out + r0 * ldo, ldo);
  }
}

void gemm_u8s8_requant_rows(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out,
                            int64_t ldo) {
  QNN_CHECK(a.segments >= 1 && a.segments <= ARows::kMaxSegments && a.seg_len % 4 == 0 &&
                a.segments * a.seg_len == w.kp,
            "gemm_u8s8_requant_rows: ", a.segments, " segments of ", a.seg_len, " bytes do not make kp = ", w.kp);
  if (active_gemm_path() == GemmPath::Vnni) kernels::requant_vnni(a, rows, w, rq, out, ldo);
  else kernels::requant_scalar(a, rows, w, rq, out, ldo);
}

void gemm_u8s8_s32(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc,
                   [[maybe_unused]] bool parallel) {
  QNN_CHECK(lda >= w.kp && ldc >= w.n, "gemm_u8s8_s32: lda ", lda, " < kp ", w.kp, " or ldc ", ldc, " < n ", w.n);
  const bool vnni = active_gemm_path() == GemmPath::Vnni;
  const int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
#pragma omp parallel for schedule(static) if (parallel && chunks > 1)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t r0 = i * kRowChunk, r = std::min(kRowChunk, rows - r0);
    const ARows rows_a = ARows::dense(a + r0 * lda, lda, w.kp);
    if (vnni) kernels::s32_vnni(rows_a, r, w, c + r0 * ldc, ldc);
    else kernels::s32_scalar(rows_a, r, w, c + r0 * ldc, ldc);
  }
}

}  // namespace qnn::qinfer
