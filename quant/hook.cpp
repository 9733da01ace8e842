// GradientQuantizationHook: see quant/hook.h.
#include "quant/hook.h"

#include <algorithm>

#include "autograd/flat_parameters.h"
#include "tensor/check.h"

namespace qnn {

GradientQuantizationHook::GradientQuantizationHook(std::unique_ptr<GradientQuantizer> quantizer, HookOptions options)
    : quantizer_(std::move(quantizer)), options_(options) {
  QNN_CHECK(quantizer_ != nullptr, "needs a quantizer (scheme \"none\" means: install no hook)");
}

void GradientQuantizationHook::install(FlatParameters& params) {
  layer_sizes_.clear();
  for (const Variable& leaf : params.leaves()) layer_sizes_.push_back(leaf.numel());
  params.add_grad_hook([this](Tensor& flat_grad) { apply(flat_grad.data(), flat_grad.numel()); });
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
    if (variance) *variance += quantizer_->variance_slice(g + first, s, first, seed, step);
    const Payload p = quantizer_->encode_slice(g + first, s, first, seed, step);
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
  ++step_;
}

}  // namespace qnn
