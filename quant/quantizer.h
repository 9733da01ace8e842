// GradientQuantizer: the interface every gradient-quantization scheme implements.
//
// A scheme splits a flat gradient into consecutive buckets of `bucket_size` coordinates, picks
// a few levels per bucket (from the bucket's range, its norm, or levels fitted to gradient
// statistics) and rounds every coordinate stochastically to an adjacent level (quant/rounding.h),
// which keeps the result unbiased. `encode` produces the packed payload a worker would send
// (quant/payload.h); `decode` turns it back into floats; emulated quantized training uses
// decode(encode(g)). The randomness of step t is keyed by (seed, t, coordinate index).
// The variance metric is smart-quantizer's: the sum over all coordinates of (x - l)(r - x)
// with the levels chosen for x, in gradient units squared (smart-quantizer's variance metric).
//
// Non-finite input. Every scheme takes any float without undefined behaviour and without an
// exception. A bucket that holds a NaN or an infinity decodes to NaN in every one of its
// coordinates (the bits 0x7FC00000, bucket_nan() of quant/bucket_math.h, on the CPU and the
// GPU alike), its bucket_levels are NaN and its variance is NaN, so variance() of the whole
// vector is NaN; other buckets are quantized as usual. NaN is propagated, as PyTorch
// propagates it, never turned into finite numbers. The same holds for a bucket of finite values
// whose scale does not fit a float: an L2 norm beyond the largest float (3.4e38), a min-max grid
// whose points would overflow, a Hadamard rotation that overflows. Coordinates passed through
// unquantized (a learning-to-quantize tail) are copied as they are. The adaptive schemes fit
// their levels to the buckets whose norm is finite and skip the others.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quant/payload.h"
#include "tensor/check.h"
#include "tensor/safetensors.h"

namespace qnn {

// The ranges make_quantizer accepts (each scheme's constructor checks what it uses; some are
// narrower: smart takes buckets below 2^31, the learning-to-quantize schemes 1..16 bits, the
// adaptive ones 1..8).
// A bucket size beyond the data is fine: a bucket never holds more coordinates than the vector,
// and every buffer is sized by the coordinates, not by bucket_size. The cap keeps the bucket
// arithmetic (and hadamard's padding to a power of two) inside int64.
constexpr int64_t kMaxBucketSize = int64_t(1) << 62;
constexpr int kMaxLevels = 1 << 16;  // at most 16-bit indices; level tables stay small
constexpr int kMaxBits = 32;

inline void check_bucket_size(int64_t bucket_size) {
  QNN_CHECK(bucket_size >= 1 && bucket_size <= kMaxBucketSize, "bucket_size must be >= 1 and <= 2^62 (",
            kMaxBucketSize, "), got ", bucket_size);
}

struct QuantizerOptions {
  int64_t bucket_size = 512;
  int levels = 16;               // level count (smart-quantizer schemes)
  int bits = 0;                  // learning-to-quantize schemes: 2^bits levels, sign included;
                                 // 0 means derive from `levels`
  double sample_fraction = 0.05; // smart: candidates = max(fraction * d, 512)
  double nuq_multiplier = 0.5;   // nuq / amq: exponential level ratio p
  // Partial last bucket: quantize it as a bucket of its own length (smart-quantizer), or pass
  // it through unquantized (learning-to-quantize's convention). Each scheme sets its default.
  bool quantize_tail = true;
  // Adaptive schemes refit their levels at these steps and then every `refit_every` steps.
  std::vector<int64_t> refit_at = {0, 100, 2000};
  int64_t refit_every = 10000;
};

// How the CUDA kernels of quant/device_quantizer.h run a scheme, bit for bit its CPU code: the
// kernel, and what it reads from the quantizer besides the options.
enum class DeviceKernel { standard, exponential, level_set_l2, level_set_linf, hadamard, smart };
struct DeviceScheme {
  DeviceKernel kernel = DeviceKernel::standard;
  // Coordinate i of a slice starting at flat coordinate `first` draws its randomness at first + i
  // (true) or at i (false), as the scheme's encode_slice does.
  bool flat_keys = true;
  // A level-set scheme's level table (nullptr for the others), read at every call: the adaptive
  // schemes refit it.
  const std::vector<float>* levels = nullptr;
};

class GradientQuantizer {
 public:
  explicit GradientQuantizer(QuantizerOptions options) : options_(std::move(options)) {}
  virtual ~GradientQuantizer() = default;
  virtual std::string name() const = 0;

  // The slice x[0, n) of a flat gradient, starting at flat coordinate `first` (per-layer
  // quantization passes each layer's offset; the whole vector is the slice at 0). standard,
  // exponential and hadamard draw coordinate i's randomness at flat index first + i, exactly as
  // in place, and record `first` in the payload for the decoder; smart and the level-set schemes
  // key it by the index within the slice and ignore `first`.
  virtual Payload encode_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const = 0;
  virtual void decode(const Payload& payload, float* out) const = 0;
  // Every bucket's levels in input units, sorted: the points stochastic rounding chooses between.
  virtual std::vector<std::vector<float>> bucket_levels_slice(const float* x, int64_t n, int64_t first,
                                                              uint64_t seed, uint64_t step) const = 0;
  // The exact variance quantization adds to x (smart-quantizer's variance metric), in input units squared.
  virtual double variance_slice(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step) const = 0;
  // encode_slice and variance_slice of the same slice in one call, for callers that need both
  // (the training hook when it records the variance): returns encode_slice's payload and sets
  // *variance, unless null, to variance_slice's value, bit for bit. Schemes that fit levels per
  // call (smart, hadamard) override it to fit them once; the default makes the two calls.
  virtual Payload encode_slice_with_variance(const float* x, int64_t n, int64_t first, uint64_t seed,
                                             uint64_t step, double* variance) const {
    if (variance) *variance = variance_slice(x, n, first, seed, step);
    return encode_slice(x, n, first, seed, step);
  }

  // The whole vector: the slice [0, n).
  Payload encode(const float* x, int64_t n, uint64_t seed, uint64_t step) const {
    return encode_slice(x, n, 0, seed, step);
  }
  std::vector<std::vector<float>> bucket_levels(const float* x, int64_t n, uint64_t seed, uint64_t step) const {
    return bucket_levels_slice(x, n, 0, seed, step);
  }
  double variance(const float* x, int64_t n, uint64_t seed, uint64_t step) const {
    return variance_slice(x, n, 0, seed, step);
  }

  // Adaptive schemes refit their levels from gradient statistics; others ignore it. Called by
  // the training hook before encode at every step.
  virtual void observe(const float* x, int64_t n, int64_t step) {
    (void)x, (void)n, (void)step;
  }
  // Whether observe() would use the gradient at this step (the hook copies a GPU gradient to
  // the host only then).
  virtual bool observes_at(int64_t step) const {
    (void)step;
    return false;
  }

  // The CUDA kernel that runs this scheme (quant/device_quantizer.h), or nullopt for a scheme
  // without one. The kernels' own limits (level counts, smart's candidates) are
  // DeviceQuantizer::supports' concern.
  virtual std::optional<DeviceScheme> device_scheme() const { return std::nullopt; }

  // Checkpoint state: everything that changes during training and decides later results, as
  // named CPU tensors (names without a prefix; quant/quantizer_state.h says how values are
  // stored). Empty for every scheme whose behaviour is fixed by its options; the adaptive schemes
  // give their fitted levels and what their next refit starts from. A quantizer restored with
  // load_state(state()) quantizes every later step bit for bit as this one would.
  virtual std::vector<NamedTensor> state() const { return {}; }
  // Restores state(): exactly its entries, with their shapes and valid values. Anything else (a
  // missing or unknown entry, a wrong shape, a value that is not finite or out of range) is a
  // qnn::Error naming the scheme and the entry, and leaves the quantizer as it was. This default
  // takes only an empty state.
  virtual void load_state(const std::vector<NamedTensor>& state);

  // decode(encode(x)) in place; returns the payload's bits per coordinate.
  double quantize(float* x, int64_t n, uint64_t seed, uint64_t step) const {
    Payload p = encode(x, n, seed, step);
    decode(p, x);
    return p.bits_per_coordinate();
  }
  const QuantizerOptions& options() const { return options_; }

 protected:
  QuantizerOptions options_;
};

// Every scheme name make_quantizer accepts, "none" first.
const std::vector<std::string>& quantizer_names();
// The scheme called `name` (an error lists the valid names; "none" gives nullptr). Options are
// validated, whatever the scheme uses: bucket_size in 1..2^62, levels in 2..65536, bits in
// 0..32, sample_fraction in (0, 1], nuq_multiplier in (0, 1), refit steps >= 0; then each
// scheme's own rules (levels that fit the bit budget, an even count for exponential, ...).
std::unique_ptr<GradientQuantizer> make_quantizer(const std::string& name, const QuantizerOptions& options);

// A level or bit count parsed as a 64-bit integer (a command-line flag) as the int
// QuantizerOptions holds, or a qnn::Error naming `what` and the value when it lies outside
// [lo, hi]: a plain cast would wrap, and 4294967312 levels would become 16. For example
//   options.levels = checked_int_option("--quant-levels", flag_value, 2, kMaxLevels);
//   options.bits = checked_int_option("--quant-bits", flag_value, 0, kMaxBits);
int checked_int_option(const std::string& what, int64_t value, int64_t lo, int64_t hi);

}  // namespace qnn
