// GradientQuantizationHook: see quant/hook.h.
#include "quant/hook.h"

#include <algorithm>
#include <limits>

#include "autograd/flat_parameters.h"
#include "quant/device_quantizer.h"
#include "quant/quantizer_state.h"
#include "tensor/check.h"
#include "tensor/elementwise.h"

namespace qnn {

GradientQuantizationHook::GradientQuantizationHook(std::unique_ptr<GradientQuantizer> quantizer, HookOptions options)
    : quantizer_(std::move(quantizer)), options_(options) {
  QNN_CHECK(quantizer_ != nullptr, "needs a quantizer (scheme \"none\" means: install no hook)");
}

GradientQuantizationHook::~GradientQuantizationHook() = default;

void GradientQuantizationHook::install(FlatParameters& params) {
  layer_sizes_.clear();
  for (const Variable& leaf : params.leaves()) layer_sizes_.push_back(leaf.numel());
  params.add_grad_hook([this](Tensor& flat_grad) { apply(flat_grad); });
}

int64_t GradientQuantizationHook::quantize_slices(float* g, int64_t n, uint64_t seed, double* variance) const {
  std::vector<int64_t> sizes = {n};
  if (options_.flattening == Flattening::per_layer && !layer_sizes_.empty()) sizes = layer_sizes_;
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  QNN_CHECK(total == n, "the layer sizes add up to ", total, " but the gradient has ", n, " coordinates");
  const uint64_t step = uint64_t(step_);
  int64_t bits = 0, first = 0;
  for (int64_t s : sizes) {
    // With the variance wanted, one call: schemes that fit levels per call fit them once.
    double v = 0;
    const Payload p =
        quantizer_->encode_slice_with_variance(g + first, s, first, seed, step, variance ? &v : nullptr);
    if (variance) *variance += v;
    quantizer_->decode(p, g + first);
    bits += p.bits();
    first += s;
  }
  return bits;
}

void GradientQuantizationHook::apply(float* grad, int64_t n) {
  quantizer_->observe(grad, n, step_);
  double variance = 0;
  const int64_t bits = quantize_slices(grad, n, options_.seed, options_.record_variance ? &variance : nullptr);
  last_bits_ = n ? double(bits) / double(n) : 0.0;
  last_variance_ = variance;
  variance_total_ += variance;
  variance_on_device_ = false;
  ++step_;
}

void GradientQuantizationHook::quantize_and_average(const std::vector<const float*>& worker_grads, int64_t n,
                                                    float* out) {
  QNN_CHECK(!worker_grads.empty(), "needs at least one worker gradient");
  const int64_t workers = int64_t(worker_grads.size());
  quantizer_->observe(worker_grads[0], n, step_);
  scratch_.resize(n);
  sum_.assign(n, 0.0f);
  double variance = 0;
  int64_t bits = 0;
  for (int64_t w = 0; w < workers; ++w) {
    std::copy(worker_grads[w], worker_grads[w] + n, scratch_.begin());
    bits += quantize_slices(scratch_.data(), n, worker_seed(options_.seed, w),
                            options_.record_variance ? &variance : nullptr);
    for (int64_t i = 0; i < n; ++i) sum_[i] += scratch_[i];
  }
  const float inverse = 1.0f / float(workers);
  for (int64_t i = 0; i < n; ++i) out[i] = workers == 1 ? sum_[i] : sum_[i] * inverse;
  last_bits_ = n ? double(bits) / double(n * workers) : 0.0;
  last_variance_ = variance / double(workers * workers);
  variance_total_ += last_variance_;
  variance_on_device_ = false;
  ++step_;
}

void GradientQuantizationHook::finish_exchanged_step(double bits_per_coordinate, double variance) {
  last_bits_ = bits_per_coordinate;
  last_variance_ = variance;
  variance_total_ += variance;
  variance_on_device_ = false;
  ++step_;
  if (device_step_) device_step_->set(step_);
}

void GradientQuantizationHook::set_step(int64_t step) {
  step_ = step;
  if (device_step_) device_step_->set(step);
}

std::vector<NamedTensor> GradientQuantizationHook::state(const std::string& prefix) const {
  std::vector<NamedTensor> out = {state_count(prefix + "step", step_)};
  for (NamedTensor& entry : quantizer_->state()) {
    entry.name = prefix + quantizer_->name() + "." + entry.name;
    out.push_back(std::move(entry));
  }
  return out;
}

void GradientQuantizationHook::load_state(const std::vector<NamedTensor>& tensors, const std::string& prefix) {
  const std::string scheme_prefix = prefix + quantizer_->name() + ".";
  std::vector<NamedTensor> own, quantizer_state;
  for (const NamedTensor& t : tensors) {
    if (t.name.compare(0, prefix.size(), prefix) != 0) continue;  // not the hook's
    if (t.name.compare(0, scheme_prefix.size(), scheme_prefix) == 0) {
      quantizer_state.push_back(t);
      quantizer_state.back().name = t.name.substr(scheme_prefix.size());
    } else {
      own.push_back(t);
    }
  }
  StateReader reader(own, "quantization hook (scheme '" + quantizer_->name() + "', names starting with '" + prefix + "')");
  const int64_t step = reader.count(prefix + "step", std::numeric_limits<int64_t>::max());
  reader.finish();  // e.g. another scheme's entries: <prefix>alq.levels in an amq hook
  quantizer_->load_state(quantizer_state);  // checks all before it changes anything
  set_step(step);
}

void GradientQuantizationHook::load_state(const SafetensorsFile& file, const std::string& prefix) {
  try {
    load_state(file.tensors, prefix);
  } catch (const Error& e) {
    QNN_CHECK(false, file.path, ": ", e.what());
  }
}

double GradientQuantizationHook::variance_total() const {
  double total = variance_total_;
  if (device_variance_total_.defined()) total += read_device_double(device_variance_total_);
  return total;
}

void GradientQuantizationHook::reset_variance_total() {
  variance_total_ = 0;
  if (device_variance_total_.defined()) device_variance_total_.zero();
}

double GradientQuantizationHook::last_variance() const {
  if (variance_on_device_) {
    last_variance_ = read_device_double(device_variance_) / variance_divisor_;
    variance_on_device_ = false;
  }
  return last_variance_;
}

bool GradientQuantizationHook::device_capturable(int64_t step) const {
  return DeviceQuantizer::supports(*quantizer_) && !quantizer_->observes_at(step);
}

std::vector<int64_t> GradientQuantizationHook::device_slices() const {
  if (options_.flattening == Flattening::per_layer && !layer_sizes_.empty()) return layer_sizes_;
  return {};
}

bool GradientQuantizationHook::prepare_device(const Tensor& observed) {
  if (!DeviceQuantizer::supports(*quantizer_)) return false;
  if (quantizer_->observes_at(step_)) {  // adaptive refit: statistics on the host, CPU code
    const std::vector<float> host = observed.to_vector();
    quantizer_->observe(host.data(), int64_t(host.size()), step_);
  }
  if (!device_) device_ = std::make_unique<DeviceQuantizer>(*quantizer_);
  if (!device_step_) device_step_ = std::make_unique<DeviceStep>(step_);
  if (options_.record_variance) {
    if (!device_variance_.defined()) device_variance_ = Tensor({2}, Device::CUDA);
    device_variance_.zero();  // two zero floats: the double 0
  }
  return true;
}

void GradientQuantizationHook::apply_through_host(Tensor& grad) {
  std::vector<float> host = grad.to_vector();
  apply(host.data(), int64_t(host.size()));
  grad.copy_from(Tensor::from_vector(host, grad.shape()));
  if (device_step_) device_step_->set(step_);
}

void GradientQuantizationHook::apply(Tensor& grad) {
  if (!grad.is_cuda()) return apply(grad.data(), grad.numel());
  if (!prepare_device(grad)) return apply_through_host(grad);
  const std::vector<int64_t> slices = device_slices();
  device_->quantize(grad, slices, options_.seed, *device_step_,
                    options_.record_variance ? &device_variance_ : nullptr);
  if (options_.record_variance) {
    if (!device_variance_total_.defined()) device_variance_total_ = Tensor::zeros({2}, Device::CUDA);
    add_device_double(device_variance_, device_variance_total_);
  }
  device_step_->advance();
  last_bits_ = device_->bits_per_coordinate(grad.numel(), slices);
  last_variance_ = 0;
  variance_on_device_ = options_.record_variance;
  variance_divisor_ = 1;
  ++step_;
}

void GradientQuantizationHook::quantize_and_average(const std::vector<Tensor>& worker_grads, Tensor& out) {
  QNN_CHECK(!worker_grads.empty(), "needs at least one worker gradient");
  const int64_t n = out.numel(), workers = int64_t(worker_grads.size());
  for (const Tensor& g : worker_grads)
    QNN_CHECK(g.numel() == n && g.device() == out.device(), "worker gradients must match the output's size and device");
  if (!out.is_cuda() || !DeviceQuantizer::supports(*quantizer_)) {  // on the host
    std::vector<std::vector<float>> host;
    std::vector<const float*> pointers;
    for (const Tensor& g : worker_grads) host.push_back(g.to_vector());
    for (const auto& h : host) pointers.push_back(h.data());
    std::vector<float> mean(size_t(n), 0.0f);
    quantize_and_average(pointers, n, mean.data());
    out.copy_from(Tensor::from_vector(mean, out.shape()));
    if (device_step_) device_step_->set(step_);
    return;
  }
  prepare_device(worker_grads[0]);
  const std::vector<int64_t> slices = device_slices();
  if (!device_scratch_.defined() || device_scratch_.numel() != n) {
    device_scratch_ = Tensor({n}, Device::CUDA);
    device_sum_ = Tensor({n}, Device::CUDA);
  }
  device_sum_.zero();
  for (int64_t w = 0; w < workers; ++w) {  // the CPU loop's operations, in its order
    device_scratch_.copy_from(worker_grads[w]);
    device_->quantize(device_scratch_, slices, worker_seed(options_.seed, w), *device_step_,
                      options_.record_variance ? &device_variance_ : nullptr);
    add_into(device_sum_, device_scratch_);
  }
  out.copy_from(workers == 1 ? device_sum_ : scale(device_sum_, 1.0f / float(workers)));
  device_step_->advance();
  last_bits_ = device_->bits_per_coordinate(n, slices);
  last_variance_ = 0;
  variance_on_device_ = options_.record_variance;
  variance_divisor_ = double(workers * workers);
  // Emulated workers run eagerly (never captured): the total can take this step's value now.
  if (options_.record_variance) variance_total_ += last_variance();
  ++step_;
}

}  // namespace qnn
