// The `smart` gradient quantizer of smart-quantizer (IST-DASLab/smart-quantizer,
// quantization.py at HEAD): variance-optimal levels refit on every call.
//
// Per bucket of d values:
//   1. candidates: c = max(floor(sample_fraction * d), 512) values (all of them if c >= d), drawn
//      as c distinct indices uniformly at random, sorted (in the total order of
//      quant/float_sort.h: value order, -0 before +0), then a_0 := min(bucket) and
//      a_{c-1} := max(bucket), so every value lies inside the levels and rounding stays unbiased;
//   2. levels: the K+1 = `levels` candidates that minimise sum_t (a_t - l)(r - a_t) over the
//      candidates, by the divide-and-conquer DP of quant/level_dp.h;
//   3. rounding: every value rounds stochastically to an adjacent level (quant/rounding.h).
// A partial last bucket is quantized as a bucket of its own length.
// A bucket holding NaN or an infinity gets NaN levels and decodes to NaN (quant/quantizer.h).
//
// Randomness. Rounding coordinate i (index in the whole flat vector) at step t uses
// random_uniform(seed, quant_stream(t), i). Candidate sampling uses its own stream,
// smart_sample_stream(t) (tag "SMP"): draw number r of the bucket starting at coordinate s uses
// the counter s + r (r < c < d, so buckets never share counters). encode, bucket_levels and
// variance therefore all see the same levels for the same (seed, step).
//
// Speed: each thread keeps its buffers between buckets; candidates are sorted by a radix sort
// (quant/float_sort.h) and the DP runs breadth first with a vector inner loop (quant/level_dp.h),
// bit-identical to std::sort by float_total_less and the depth-first recursion.
//
// Payload: no scales; `levels` holds K+1 floats per bucket (bucket b at [b(K+1), (b+1)(K+1)));
// one index of index_bits_for(levels) bits per coordinate.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "quant/quantizer.h"
#include "tensor/random.h"

namespace qnn {

// The random stream of candidate sampling at training step `step`.
QNN_HOST_DEVICE uint64_t smart_sample_stream(uint64_t step) { return (0x534D50ull << 40) ^ step; }

// c = max(floor(sample_fraction * d), 512), capped at d (c >= d means every value is a candidate).
int64_t smart_candidate_count(int64_t d, double sample_fraction);

// The sorted candidate values (-0 before +0) of one bucket (values[0..d) starting at flat coordinate `start`),
// endpoints forced to the bucket's min and max.
std::vector<float> smart_candidates(const float* values, int64_t d, int64_t start,
                                    double sample_fraction, uint64_t seed, uint64_t step);

class SmartQuantizer : public GradientQuantizer {
 public:
  explicit SmartQuantizer(QuantizerOptions options);
  std::string name() const override { return "smart"; }
  std::optional<DeviceScheme> device_scheme() const override { return DeviceScheme{DeviceKernel::smart, false}; }

  // Randomness keyed by the index within the slice: `first` is not used.
  Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  void decode(const Payload& payload, float* out) const override;
  std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first, uint64_t seed,
                                                      uint64_t step) const override;
  double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const override;
  // encode and variance (unless null) from one fit of the levels.
  Payload encode_slice_with_variance(const float* x, int64_t n, int64_t first, uint64_t seed,
                                     uint64_t step, double* variance) const override;

 private:
  // The `levels` sorted points of the bucket x[start, start + d), written to levels[0, levels);
  // false, with NaN levels, for a bucket holding NaN or an infinity.
  bool fit_bucket(const float* x, int64_t start, int64_t d, uint64_t seed, uint64_t step,
                  float* levels) const;
};

std::unique_ptr<GradientQuantizer> make_smart_quantizer(const QuantizerOptions& options);

}  // namespace qnn
