// The portable path of the integer GEMM (qinfer/gemm.h): plain loops over the packed weights
// with exact s32 accumulation (u8 x s8 products widened to s32 before adding, so nothing
// saturates, unlike vpmaddubsw's s16 pairs), then requantize_value for every output. It defines
// the integers the AVX-512 VNNI path must reproduce. A 4-bit packing is widened to s8 with the
// element formula of packed_weight first.
#include "qinfer/gemm.h"

namespace qnn::qinfer::kernels {

namespace {

// acc[c] = sum_k a[k] w[c][k] for the n channels of row m.
void row_accumulate(const ARows& a, int64_t m, const PackedWeights& w, int32_t* acc) {
  const int64_t groups = w.kp / 4, seg_groups = a.seg_len / 4;
  for (int64_t c = 0; c < w.n; ++c) {
    const int8_t* wc = w.data.data() + (c / 16) * groups * 64 + (c % 16) * 4;
    int32_t s = 0;
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* ag = a.seg[g / seg_groups] + m * a.row_stride + (g % seg_groups) * 4;
      for (int j = 0; j < 4; ++j) s += int32_t(ag[j]) * int32_t(wc[g * 64 + j]);
    }
    acc[c] = s;
  }
}

// A 4-bit packing widened to the 8-bit layout (widen_weights' element formula), for the loops above.
PackedWeights as_8bit(const PackedWeights& w) {
  PackedWeights wide = w;
  wide.data = widen_weights(w);
  wide.bits = 8;
  wide.alpha = 1;
  wide.beta.clear();
  return wide;
}

}  // namespace

void s32_scalar(const ARows& a, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc) {
  if (w.bits != 8) return s32_scalar(a, rows, as_8bit(w), c, ldc);
  for (int64_t m = 0; m < rows; ++m) row_accumulate(a, m, w, c + m * ldc);
}

void requant_scalar(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out,
                    int64_t ldo) {
  if (w.bits != 8) return requant_scalar(a, rows, as_8bit(w), rq, out, ldo);
  std::vector<int32_t> acc(w.n);
  for (int64_t m = 0; m < rows; ++m) {
    row_accumulate(a, m, w, acc.data());
    const uint8_t* res = rq.residual ? rq.residual + m * rq.residual_ld : nullptr;
    for (int64_t c = 0; c < w.n; ++c) out[m * ldo + c] = requantize_value(acc[c], c, rq, res ? res[c] : 0);
  }
}

}  // namespace qnn::qinfer::kernels
