// LevelSetQuantizer: learning-to-quantize's quantizers over a level table in [-1, 1]
// (Tabrizian/learning-to-quantize, `nuq/quantize.py` and `nuq/cuda/src/ops_gpu.cu`).
//
// Per bucket of `bucket_size` consecutive coordinates:
//   s   = ||x||_2 (q, nuq) or ||x||_inf (qinf, trn)
//   r_i = x_i / (s + 1e-7)                       (the reference's EPS; a zero bucket gives r = 0)
//   l_i = stochastic rounding of r_i between its adjacent levels   (quant/rounding.h)
//   out_i = s * l_i
// so E[out_i] = x_i * s / (s + 1e-7) and the added variance is s^2 * sum_i (r_i - l)(u - r_i)
// (smart-quantizer's variance metric). In float32 s + 1e-7 == s once s >= 2, exactly as in the reference.
//
// Tail convention: with options.quantize_tail false (learning-to-quantize's `ig_sm_bkts`, the
// default of the make_* factories below) every full bucket is quantized and a partial last bucket
// travels unquantized in payload.passthrough. Unlike the reference, which quantizes buckets[:-1],
// the last bucket IS quantized when the length is an exact multiple of the bucket size, and a
// single full bucket is quantized. With quantize_tail true the tail is a bucket of its own length.
//
// Payload: scales = one norm per quantized bucket, levels = the level table once, indices of
// index_bits_for(level count) bits per quantized coordinate, passthrough = the raw tail.
// The decoder reads the level table from the payload, so a payload decodes on its own.
//
// Non-finite input: a bucket holding NaN or an infinity has a norm that is not finite (the
// L-infinity norm is made NaN by a NaN, which a plain max would skip), and so has an L2 norm
// beyond the largest float. Such a bucket is sent with scale NaN and indices 0, its variance is
// NaN, and it decodes to NaN throughout (quant/quantizer.h).
//
// Adaptive schemes (ALQ, AMQ) derive from this class and replace the table with set_levels()
// whenever they refit (typically from observe()).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "quant/quantizer.h"

namespace qnn {

enum class LevelNorm { L2, Linf };

class LevelSetQuantizer : public GradientQuantizer {
 public:
  // `levels`: sorted strictly increasing, within [-1, 1], at least 2 of them. The options used:
  // bucket_size (>= 1) and quantize_tail; bits/levels/nuq_multiplier are the factories' concern.
  LevelSetQuantizer(std::string name, LevelNorm norm, std::vector<float> levels,
                    QuantizerOptions options);

  std::string name() const override { return name_; }
  std::optional<DeviceScheme> device_scheme() const override {
    return DeviceScheme{norm_ == LevelNorm::L2 ? DeviceKernel::level_set_l2 : DeviceKernel::level_set_linf, false,
                        &levels_};
  }
  // Randomness keyed by the index within the slice: `first` is not used.
  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  void decode(const Payload& payload, float* out) const override;
  // One entry per bucket: s * levels for a quantized bucket, empty for a passed-through tail.
  std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step) const override;
  // s^2 * sum (r - l)(u - r) over the quantized buckets; the passed-through tail adds 0.
  double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;

  // Replaces the level table (same rules as the constructor); the index width follows the new
  // level count. For ALQ/AMQ refits.
  void set_levels(std::vector<float> levels);
  const std::vector<float>& levels() const { return levels_; }

 protected:
  // The norm of one bucket as a float (L2 accumulated in double); NaN or infinite for a bucket
  // holding NaN or an infinity.
  float bucket_norm(const float* x, int64_t len) const;

 private:
  std::string name_;
  LevelNorm norm_;
  std::vector<float> levels_;
};

// The bit width of a learning-to-quantize scheme: options.bits if set, else log2(options.levels)
// (which must then be a power of two >= 2); `scheme` names it in the error.
int level_set_bits(const QuantizerOptions& options, const std::string& scheme);

// The fixed schemes of learning-to-quantize; each forces quantize_tail = false (the paper runs' `ig_sm_bkts`;
// construct LevelSetQuantizer directly for the other convention).
//   qsgd: L2,   uniform_levels(b)          (learning-to-quantize's `q`)
//   qinf: Linf, uniform_levels(b)
//   nuq:  L2,   exponential_levels(b, options.nuq_multiplier)
//   trn:  Linf, ternary_levels() (3 levels, 2-bit indices; bits and levels are ignored, as in
//         the reference, whose paper runs pass 3 bits to every scheme)
std::unique_ptr<GradientQuantizer> make_qsgd_quantizer(const QuantizerOptions& options);
std::unique_ptr<GradientQuantizer> make_qinf_quantizer(const QuantizerOptions& options);
std::unique_ptr<GradientQuantizer> make_nuq_quantizer(const QuantizerOptions& options);
std::unique_ptr<GradientQuantizer> make_trn_quantizer(const QuantizerOptions& options);

}  // namespace qnn
