// VarianceRecorder (see quant/variance_recorder.h).
#include "quant/variance_recorder.h"

namespace qnn {

VarianceRecorder::VarianceRecorder(const std::vector<std::string>& schemes, const QuantizerOptions& options,
                                   uint64_t seed)
    : names_(schemes), history_(schemes.size()), seed_(seed) {
  QNN_CHECK(!schemes.empty(), "needs at least one scheme");
  for (const std::string& name : schemes) {
    auto q = make_quantizer(name, options);
    QNN_CHECK(q != nullptr, "scheme '", name, "' adds no variance to measure; leave it out");
    quantizers_.push_back(std::move(q));
  }
}

void VarianceRecorder::record(const float* gradient, int64_t n) {
  for (size_t s = 0; s < quantizers_.size(); ++s) {
    quantizers_[s]->observe(gradient, n, steps_);
    history_[s].push_back(quantizers_[s]->variance(gradient, n, seed_, static_cast<uint64_t>(steps_)));
  }
  ++steps_;
}

void VarianceRecorder::install(FlatParameters& parameters) {
  // A gradient on the GPU is measured on a host copy (measurement runs eagerly, not in a graph).
  parameters.add_grad_hook([this](Tensor& g) {
    const Tensor host = g.to(Device::CPU);
    record(host.data(), host.numel());
  });
}

double VarianceRecorder::mean(size_t scheme) const {
  const auto& h = history_.at(scheme);
  double sum = 0;
  for (double v : h) sum += v;
  return h.empty() ? 0.0 : sum / double(h.size());
}

}  // namespace qnn
