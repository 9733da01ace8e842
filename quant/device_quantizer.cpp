// DeviceQuantizer, host side (see quant/device_quantizer.h): the kernel each scheme names
// (GradientQuantizer::device_scheme) and the kernels' limits, the bucket table of the slices
// (cached on the device), the level table of level-set schemes (uploaded when it changes), and
// the payload's bit count computed from sizes alone.
#include "quant/device_quantizer.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "quant/bucketing.h"
#include "quant/smart.h"
#include "quant/walsh_hadamard.h"
#include "tensor/check.h"
#include "tensor/device.h"

namespace qnn {

namespace {

using cuda::DeviceBucket;

// A double kept in a two-float CUDA tensor: the kernels read and write it as a double, which the
// GPU loads only from an 8-byte aligned address.
bool holds_device_double(const Tensor& t) {
  return t.is_cuda() && t.numel() == 2 && reinterpret_cast<uintptr_t>(t.data()) % alignof(double) == 0;
}

DeviceScheme scheme_of(const GradientQuantizer& q) {
  const std::optional<DeviceScheme> scheme = q.device_scheme();
  QNN_CHECK(scheme.has_value(), "scheme '", q.name(), "' has no CUDA implementation (DeviceQuantizer::supports)");
  return *scheme;
}

std::vector<int64_t> slices_or_whole(int64_t n, const std::vector<int64_t>& slices) {
  if (slices.empty()) return {n};
  int64_t total = 0;
  for (int64_t s : slices) total += s;
  QNN_CHECK(total == n, "the slices add up to ", total, " but the gradient has ", n, " coordinates");
  return slices;
}

// Equal sizes and every float equal by bit pattern (+0 and -0 differ; the tables hold no NaN).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// `bytes` of host data into `device` (zero-padded to whole floats), on the stream. A device
// tensor of the right size is refilled in place, so that a captured graph reading it keeps a
// valid address (and reads the new contents); otherwise a new one is allocated. The host copy
// is pageable memory: cudaMemcpyAsync has staged it when it returns (tensor/device.cu).
void upload(Tensor& device, const void* data, size_t bytes) {
  const int64_t floats = int64_t((bytes + sizeof(float) - 1) / sizeof(float));
  Tensor host({floats});
  std::memset(host.data(), 0, size_t(floats) * sizeof(float));
  std::memcpy(host.data(), data, bytes);
  if (!device.defined() || !device.is_cuda() || device.numel() != floats) device = Tensor({floats}, Device::CUDA);
  device.copy_from(host);
}

}  // namespace

struct DeviceQuantizer::Impl {
  std::vector<int64_t> slices;  // the slices the bucket table was built for
  int64_t n = -1;
  Tensor buckets;               // DeviceBucket array on the device
  int64_t bucket_count = 0, max_length = 0;
  std::vector<float> levels;    // the level table uploaded
  Tensor level_table;
  Tensor bucket_variance, scratch;
};

bool DeviceQuantizer::supports(const GradientQuantizer& q) {
  const std::optional<DeviceScheme> scheme = q.device_scheme();
  if (!scheme) return false;
  const QuantizerOptions& o = q.options();
  // smart: c(d) = min(max(floor(P d), 512), d) grows with d, so the full bucket's bounds all.
  if (scheme->kernel == DeviceKernel::smart)
    return smart_candidate_count(o.bucket_size, o.sample_fraction) <= kMaxDeviceSmartCandidates &&
           o.levels <= kMaxDeviceSmartLevels;
  const bool grid = scheme->kernel == DeviceKernel::standard || scheme->kernel == DeviceKernel::hadamard;
  return !grid || o.levels <= kMaxDeviceGridLevels;
}

DeviceQuantizer::DeviceQuantizer(const GradientQuantizer& quantizer)
    : quantizer_(quantizer), impl_(std::make_unique<Impl>()) {
  (void)scheme_of(quantizer);  // fails early for an unsupported scheme
}

DeviceQuantizer::~DeviceQuantizer() = default;

void DeviceQuantizer::quantize(Tensor& grad, const std::vector<int64_t>& slices, uint64_t seed,
                               const DeviceStep& step, Tensor* variance) {
  QNN_CHECK(grad.is_cuda(), "DeviceQuantizer::quantize needs a CUDA gradient");
  QNN_CHECK(variance == nullptr || holds_device_double(*variance),
            "the variance accumulator must be a two-float CUDA tensor (one double, 8-byte aligned)");
  const int64_t n = grad.numel();
  const std::vector<int64_t> sizes = slices_or_whole(n, slices);
  const QuantizerOptions& o = quantizer_.options();
  const DeviceScheme scheme = scheme_of(quantizer_);
  Impl& m = *impl_;

  if (n != m.n || sizes != m.slices) {  // the bucket table of these slices
    std::vector<DeviceBucket> table;
    int64_t first = 0, longest = 0;
    for (int64_t s : sizes) {
      const Buckets b(s, o.bucket_size, o.quantize_tail);
      for (int64_t k = 0; k < b.count; ++k) {
        const int64_t key = scheme.flat_keys ? first + b.begin(k) : b.begin(k);
        table.push_back(DeviceBucket{first + b.begin(k), key, b.length(k)});
        longest = std::max(longest, b.length(k));
      }
      first += s;
    }
    m.bucket_count = int64_t(table.size());
    m.max_length = longest;
    if (table.empty()) m.buckets = Tensor();
    else upload(m.buckets, table.data(), table.size() * sizeof(DeviceBucket));
    m.bucket_variance = table.empty() ? Tensor() : Tensor({2 * m.bucket_count}, Device::CUDA);
    int64_t scratch = 0;
#ifdef QNN_CUDA
    if (scheme.kernel == DeviceKernel::hadamard)
      scratch = cuda::hadamard_scratch_floats(m.bucket_count, longest, o.levels);
    if (scheme.kernel == DeviceKernel::smart)
      scratch = cuda::smart_scratch_floats(m.bucket_count, longest, o.levels);
#endif
    m.scratch = scratch > 0 ? Tensor({scratch}, Device::CUDA) : Tensor();
    m.slices = sizes;
    m.n = n;
  }
  if (scheme.levels) {
    // Adaptive schemes change the table at refits. Compared by bit pattern, not by float ==:
    // a level going from +0 to -0 decodes to s * -0 = -0 on the CPU and must be uploaded too.
    if (!same_bits(*scheme.levels, m.levels)) {
      m.levels = *scheme.levels;
      upload(m.level_table, m.levels.data(), m.levels.size() * sizeof(float));  // in place when the count is kept
    }
  }
  if (m.bucket_count == 0) return;  // nothing quantized: every coordinate passes through

  cuda::QuantizeLaunch launch;
  launch.kernel = scheme.kernel;
  launch.grad = grad.data();
  launch.buckets = reinterpret_cast<const DeviceBucket*>(m.buckets.data());
  launch.bucket_count = m.bucket_count;
  launch.max_length = m.max_length;
  launch.levels = o.levels;
  launch.level_table = m.level_table.defined() ? m.level_table.data() : nullptr;
  launch.level_count = int(m.levels.size());
  launch.seed = seed;
  launch.step = step.data();
  launch.bucket_variance = variance ? reinterpret_cast<double*>(m.bucket_variance.data()) : nullptr;
  launch.sample_fraction = o.sample_fraction;
  launch.scratch = m.scratch.defined() ? m.scratch.data() : nullptr;
#ifdef QNN_CUDA
  cuda::quantize_buckets(launch);
  if (variance)
    cuda::add_variances(launch.bucket_variance, m.bucket_count, reinterpret_cast<double*>(variance->data()));
#endif
}

double DeviceQuantizer::bits_per_coordinate(int64_t n, const std::vector<int64_t>& slices) const {
  const QuantizerOptions& o = quantizer_.options();
  const DeviceScheme scheme = scheme_of(quantizer_);
  int64_t bits = 0;
  for (int64_t s : slices_or_whole(n, slices)) {  // Payload::bits() of each slice's payload
    const Buckets b(s, o.bucket_size, o.quantize_tail);
    const int64_t passthrough = s - b.quantized;
    if (scheme.levels) {
      const int64_t count = int64_t(scheme.levels->size());
      bits += 32 * (b.count + count + passthrough) + int64_t(index_bits_for(count)) * b.quantized;
      continue;
    }
    if (scheme.kernel == DeviceKernel::smart) {  // K+1 levels per bucket, no scales, every coordinate indexed
      bits += 32 * b.count * o.levels + int64_t(index_bits_for(o.levels)) * s;
      continue;
    }
    int64_t indices = b.quantized;
    if (scheme.kernel == DeviceKernel::hadamard) {
      indices = 0;
      for (int64_t k = 0; k < b.count; ++k) indices += next_power_of_two(b.length(k));
    }
    bits += 32 * (2 * b.count + passthrough) + int64_t(index_bits_for(o.levels)) * indices;
  }
  return n ? double(bits) / double(n) : 0.0;
}

DeviceStep::DeviceStep(int64_t step) : value_({2}, Device::CUDA) { set(step); }

void DeviceStep::set(int64_t step) {
#ifdef QNN_CUDA
  cuda::set_step(reinterpret_cast<int64_t*>(value_.data()), step);
#else
  (void)step;
#endif
}

void DeviceStep::advance() {
#ifdef QNN_CUDA
  cuda::advance_step(reinterpret_cast<int64_t*>(value_.data()));
#endif
}

double read_device_double(const Tensor& value) {
  QNN_CHECK(value.numel() == 2, "a double is held in two floats, got ", value.numel());
  const std::vector<float> words = value.to_vector();
  double out;
  std::memcpy(&out, words.data(), sizeof out);
  return out;
}

void add_device_double(const Tensor& value, Tensor& total) {
  QNN_CHECK(holds_device_double(value) && holds_device_double(total),
            "doubles held in two 8-byte aligned floats on the GPU expected, got ", value.numel(), " and ", total.numel(),
            " floats");
#ifdef QNN_CUDA
  cuda::add_variances(reinterpret_cast<const double*>(value.data()), 1, reinterpret_cast<double*>(total.data()));
#endif
}

int64_t DeviceStep::read() const {
  const std::vector<float> words = value_.to_vector();
  int64_t out;
  std::memcpy(&out, words.data(), sizeof out);
  return out;
}

double quantize_on_device(const GradientQuantizer& quantizer, Tensor& grad, uint64_t seed, uint64_t step,
                          const std::vector<int64_t>& slices, double* variance) {
  DeviceQuantizer device(quantizer);
  DeviceStep device_step{int64_t(step)};
  Tensor sum;
  if (variance) sum = Tensor::zeros({2}, Device::CUDA);  // two zero floats: the double 0
  device.quantize(grad, slices, seed, device_step, variance ? &sum : nullptr);
  if (variance) *variance = read_device_double(sum);
  return device.bits_per_coordinate(grad.numel(), slices);
}

}  // namespace qnn
