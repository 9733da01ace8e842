// Integer GEMM for inference: u8 activations x s8 weights -> exact s32 accumulators, with the
// per-output-channel requantization of gemmlowp and fbgemm fused into the store (Jacob et al.,
// "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
// CVPR 2018, eq. 7; fbgemm's float-multiplier ReQuantizeOutput):
//
//   acc[m][c] = sum_k a[m][k] w[c][k]                       (exact in s32)
//   v = fma(float(acc - offset[c]), multiplier[c], bias[c])  offset[c] = z_a sum_k w[c][k]
//   v = fma(float(r[m][c'] - z_r), residual_multiplier, v)  optional residual (u8, its own grid)
//   q = clamp(nearbyint(v) + z_out, lo, hi)                  u8 output; lo = z_out gives the ReLU
//
// Two paths compute identical integers: AVX-512 VNNI (vpdpbusd, compiled with a target attribute,
// so even a build without -march=native has it, and chosen at run time when the CPU supports
// it) and a portable scalar loop. Both run the same float operations in the same order in the
// requantization: the conversions round to nearest even, v is clamped to [-2^30, 2^30] before
// rounding, and fma is a fused multiply-add in both.
//
// Layouts. A is row-major u8 [m][lda] with at least kp = round_up(k, 4) valid columns; columns
// k..kp-1 meet zero weights in an 8-bit packing, so any value there is harmless; a 4-bit packing
// widens them to beta[c], so there they must hold zeros (im2col writes them so). Weights are packed once for
// vpdpbusd: 16 output channels per 64-byte group, 4 consecutive k per s32 lane:
//   packed[((c / 16) * kp / 4 + k / 4) * 64 + (c % 16) * 4 + k % 4] = w[c][k]
// channels n..np-1 (np = round_up(n, 16)) and k..kp-1 hold zeros. The output is row-major u8
// [m][ldo] (NHWC when rows are positions), only channels 0..n-1 written.
#pragma once
#include <cstdint>
#include <vector>

namespace qnn::qinfer {

struct PackedWeights {
  int64_t n = 0, k = 0;    // output channels, reduction length
  int64_t np = 0, kp = 0;  // n rounded up to 16, k rounded up to 4
  // bits 8: data holds the s8 weights in the layout above (np * kp bytes). bits 4: data holds
  // 4-bit codes two per byte (np * kp / 2 bytes), w[c][k] = alpha * code + beta[c]; the 64 bytes
  // of a (16-channel block, k group) in the 8-bit layout are 32 bytes here, byte j holding the
  // code of byte j in its low nibble and that of byte j + 32 in its high nibble.
  int bits = 8;
  int alpha = 1;
  std::vector<int8_t> beta;  // bits 4: beta of channel c at [(c / 16) * 64 + (c % 16) * 4 + 0..3] (np * 4 bytes)
  std::vector<int8_t> data;
  std::vector<int32_t> sums;  // sum_k w[c][k] per output channel (for the zero-point offset)
  // Bytes of the weights as stored (data and beta).
  int64_t bytes() const { return int64_t(data.size() + beta.size()); }
};

// Packs row-major s8 weights w[n][k].
PackedWeights pack_weights(const int8_t* w, int64_t n, int64_t k);
// Packs row-major weights w[n][k] that are alpha * code + beta[c] with codes in [0, 15] (alpha 1
// or 2; 4-bit and narrower weights of an export: q - z, or 2q - 2z for half-integer z), two codes
// per byte; a weight that is not of that form is an error.
PackedWeights pack_weights_4bit(const int8_t* w, int64_t n, int64_t k, int alpha, const int8_t* beta);
// w[c][k] back from the packed layout (either width).
int8_t packed_weight(const PackedWeights& p, int64_t c, int64_t k);
// The s8 layout of any packing (a copy for 8 bits, the codes widened for 4): np * kp bytes.
std::vector<int8_t> widen_weights(const PackedWeights& p);

// The requantization fused into the GEMM's store (see the formula above). Arrays hold n values.
struct Requant {
  const int32_t* offset = nullptr;
  const float* multiplier = nullptr;
  const float* bias = nullptr;
  int32_t zero_point = 0, lo = 0, hi = 255;
  // Residual: output (m, c) adds (residual[m * residual_ld + c] - residual_zero) * residual_multiplier.
  // A channel holding residual_zero adds exactly nothing (the zero channels of ResNet's
  // option-A shortcut are stored so).
  const uint8_t* residual = nullptr;
  int64_t residual_ld = 0;
  int32_t residual_zero = 0;
  float residual_multiplier = 0;
};

enum class GemmPath { Auto, Scalar, Vnni };
// Whether this CPU has AVX-512 VNNI (and the AVX-512 F/BW/VL the kernel uses).
bool vnni_supported();
// The path Auto resolves to; set_gemm_path forces one (Vnni on a CPU without it is an error).
GemmPath active_gemm_path();
void set_gemm_path(GemmPath path);
const char* gemm_path_name(GemmPath path);

// out[m][c] = requantize(sum_k a[m][k] w[c][k]) for m < rows, c < n. Rows are split over the
// OpenMP threads when `parallel` (a caller already inside a parallel region passes false).
void gemm_u8s8_requant(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, const Requant& rq,
                       uint8_t* out, int64_t ldo, bool parallel = true);
// The raw accumulators: c[m][ch] = sum_k a[m][k] w[ch][k], s32 [rows][ldc].
void gemm_u8s8_s32(const uint8_t* a, int64_t lda, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc,
                   bool parallel = true);

// Where the rows of A are, for a GEMM that reads its activations in place (an implicit im2col):
// row m's k = s * seg_len + j (j < seg_len, seg_len a multiple of 4) is seg[s][m * row_stride + j].
// A plain row-major A is one segment of kp bytes with row_stride lda; a 3x3 convolution's
// position inside the image is three segments (the kernel rows), each 3 C contiguous bytes of
// the NHWC input, and consecutive positions of an output row are stride * C bytes apart.
struct ARows {
  static constexpr int kMaxSegments = 8;
  const uint8_t* seg[kMaxSegments] = {};
  int segments = 1;
  int64_t seg_len = 0, row_stride = 0;
  static ARows dense(const uint8_t* a, int64_t lda, int64_t kp) {
    ARows r;
    r.seg[0] = a;
    r.seg_len = kp;
    r.row_stride = lda;
    return r;
  }
  ARows advanced(int64_t rows) const {
    ARows r = *this;
    for (int s = 0; s < segments; ++s) r.seg[s] += rows * row_stride;
    return r;
  }
};

// gemm_u8s8_requant on rows described by `a` (segments * seg_len == w.kp), on the calling thread.
void gemm_u8s8_requant_rows(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out,
                            int64_t ldo);

// One requantized value, the scalar formula both paths compute.
uint8_t requantize_value(int32_t acc, int64_t channel, const Requant& rq, int32_t residual);

// The kernels behind the dispatch (qinfer/gemm_scalar.cpp, qinfer/gemm_vnni.cpp): `rows` rows of
// A as `a` describes them, output rows from `out` (and residual rows from rq.residual), one thread.
namespace kernels {
void requant_scalar(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out, int64_t ldo);
void s32_scalar(const ARows& a, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc);
void requant_vnni(const ARows& a, int64_t rows, const PackedWeights& w, const Requant& rq, uint8_t* out, int64_t ldo);
void s32_vnni(const ARows& a, int64_t rows, const PackedWeights& w, int32_t* c, int64_t ldc);
// widen_weights' 64-byte groups [first_group, last_group) (of np / 16 * kp / 4) into out (np * kp
// bytes), in registers.
void widen_vnni(const PackedWeights& w, int8_t* out, int64_t first_group, int64_t last_group);
}  // namespace kernels

}  // namespace qnn::qinfer
