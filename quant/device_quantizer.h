// Gradient quantization on the GPU: decode(encode(g)) of a flat CUDA gradient, in place, bit for
// bit equal to the CPU schemes of quant/ for the same seed and step (smart-quantizer's and learning-to-quantize's schemes).
//
// Each scheme names its kernel, its key layout and its level table with
// GradientQuantizer::device_scheme(). Supported: standard, exponential, hadamard, qsgd, qinf,
// nuq, trn, and the adaptive alq, alq_nb, amq, amq_nb (their levels are refitted on the host, see
// GradientQuantizationHook; the rounding runs here with whatever levels the quantizer holds), and
// smart with at most 512 candidates per bucket (every bucket of up to 512 values; sampled
// candidates up to d = 10,259 at the default P = 0.05) and at most 512 levels: its sampling, sort
// and level DP run in the kernel (quant/smart_device.cu). smart with more candidates stays on the
// CPU (DeviceQuantizer::supports says false).
//
// The work is one kernel launch per call over every bucket of every slice: one CUDA block per
// bucket computes the bucket's statistics (min/max, L2 or L-infinity norm; Hadamard: the rotation
// in shared memory first), the grid or scale, then rounds each coordinate stochastically with
// the draw random_uniform(seed, quant_stream(step), key) of the CPU and writes the decoded value
// back; a second small kernel adds the per-bucket variances in a fixed order when asked. No
// synchronisation and no host reads: the call can sit inside a captured CUDA graph, provided the
// bucket table and the level table were uploaded by an earlier (eager) call with the same slices
// and levels (uploads happen only when these change; a new level table of the same size is
// written into the same device buffer, so a graph captured before a refit reads the new levels).
//
// The step is read from device memory (DeviceStep), so a replayed graph sees each step's own
// randomness; the seed is a kernel argument (fixed per captured graph).
//
// Bit-exactness: the CPU code and the kernels share quant/bucket_math.h (grid points as one FMA,
// the L2 sums of squares in a fixed 32-lane order), quant/rounding.h and quant/level_lookup.h;
// min, max and max|x| are exact in any order; the Walsh-Hadamard butterflies are the same stages
// in the same pairs. Variances are sums in a different order than the CPU's: equal to about 1e-12
// relative. A bucket holding NaN or an infinity becomes NaN throughout, with NaN variance, as on
// the CPU (quant/quantizer.h, "Non-finite input").
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "quant/quantizer.h"
#include "tensor/tensor.h"

namespace qnn {

// The training step in device memory (one int64 in a two-float tensor), read by the kernels.
// set() enqueues a one-thread kernel writing the value (do it outside a captured region);
// advance() enqueues one adding 1 (it belongs inside the captured step).
class DeviceStep {
 public:
  explicit DeviceStep(int64_t step = 0);
  void set(int64_t step);
  void advance();
  int64_t read() const;  // waits for the GPU
  const int64_t* data() const { return reinterpret_cast<const int64_t*>(value_.data()); }

 private:
  Tensor value_;
};

// Grid and level tables up to this size are kept in shared memory; standard and hadamard with
// more levels have no CUDA version.
constexpr int kMaxDeviceGridLevels = 4096;
// smart on the GPU: buckets whose candidate count max(floor(P d), 512) (capped at d) is at most
// this (every bucket of up to 512 values; with the default P = 0.05, buckets up to 10,259),
// and up to this many levels.
constexpr int64_t kMaxDeviceSmartCandidates = 512;
constexpr int kMaxDeviceSmartLevels = 512;

class DeviceQuantizer {
 public:
  static bool supports(const GradientQuantizer& quantizer);
  // Keeps a reference to `quantizer` (which must outlive this object) and reads its options and,
  // for level-set schemes, its current level table at every call.
  explicit DeviceQuantizer(const GradientQuantizer& quantizer);
  ~DeviceQuantizer();

  // decode(encode(.)) of each slice of `grad` (a CUDA tensor) in place, slices as the hook's:
  // `slices` empty means one slice, the whole vector; they must add up to grad.numel().
  // `variance`, if given, is a two-float CUDA tensor holding one double to which the variance
  // of the raw gradient (the sum of every slice's variance_slice) is ADDED.
  void quantize(Tensor& grad, const std::vector<int64_t>& slices, uint64_t seed, const DeviceStep& step,
                Tensor* variance = nullptr);
  // The bits per coordinate of the CPU payloads of these slices (depends on sizes and level
  // counts only; computed on the host with the payload's formula).
  double bits_per_coordinate(int64_t n, const std::vector<int64_t>& slices) const;

 private:
  struct Impl;
  const GradientQuantizer& quantizer_;
  std::unique_ptr<Impl> impl_;
};

// One-shot use (tests, benchmarks): quantizes `grad` in place at (seed, step); returns the bits
// per coordinate and, if `variance` is given, stores the variance there (waits for the GPU).
double quantize_on_device(const GradientQuantizer& quantizer, Tensor& grad, uint64_t seed, uint64_t step,
                          const std::vector<int64_t>& slices = {}, double* variance = nullptr);

// A double stored in a two-float tensor (any device), read on the host.
// total += value, for doubles held in two-float CUDA tensors (on the stream; no waiting).
void add_device_double(const Tensor& value, Tensor& total);
double read_device_double(const Tensor& value);

namespace cuda {

// One bucket of the flat gradient: coordinates [begin, begin + length), coordinate begin + k
// drawing its randomness at counter key + k.
struct DeviceBucket {
  int64_t begin;
  int64_t key;
  int64_t length;
};

struct QuantizeLaunch {
  DeviceKernel kernel = DeviceKernel::standard;  // GradientQuantizer::device_scheme()
  float* grad = nullptr;
  const DeviceBucket* buckets = nullptr;  // device array
  int64_t bucket_count = 0;
  int64_t max_length = 0;       // longest bucket
  int levels = 0;               // grid points (standard, hadamard), 2k (exponential)
  const float* level_table = nullptr;  // device array (level sets)
  int level_count = 0;
  uint64_t seed = 0;
  const int64_t* step = nullptr;       // device scalar
  double* bucket_variance = nullptr;   // device array of bucket_count, or nullptr
  double sample_fraction = 1.0;        // smart
  float* scratch = nullptr;            // hadamard with large buckets: see hadamard_scratch_floats;
                                       // smart: its argmin table, smart_scratch_floats
};

// Floats of global scratch the hadamard kernel needs (0 when its buffers fit in shared memory).
int64_t hadamard_scratch_floats(int64_t bucket_count, int64_t max_length, int levels);
void quantize_buckets(const QuantizeLaunch& launch);
// Floats of global scratch the smart kernel needs (its DP argmins and, for buckets over 512, the
// index permutation of the candidate sampling; quant/smart_device.cu).
int64_t smart_scratch_floats(int64_t bucket_count, int64_t max_length, int levels);
void quantize_smart_buckets(const QuantizeLaunch& launch);
// *total += sum of per_bucket[0..count) (fixed order).
void add_variances(const double* per_bucket, int64_t count, double* total);
void set_step(int64_t* step, int64_t value);
void advance_step(int64_t* step);

}  // namespace cuda

}  // namespace qnn
