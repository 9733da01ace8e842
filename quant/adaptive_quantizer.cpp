// AdaptiveQuantizer (see quant/adaptive_quantizer.h).
#include "quant/adaptive_quantizer.h"

#include <limits>

#include "quant/level_sets.h"
#include "quant/quantizer_state.h"
#include "tensor/check.h"

namespace qnn {

namespace {
QuantizerOptions passthrough_tail(QuantizerOptions options) {
  options.quantize_tail = false;  // learning-to-quantize's convention, as for qsgd/nuq
  return options;
}

AdaptiveOptions adaptive_options(const std::string& name, const QuantizerOptions& options) {
  AdaptiveOptions a;
  a.bits = level_set_bits(options, name);
  a.multiplier = options.nuq_multiplier;
  return a;
}
}  // namespace

AdaptiveQuantizer::AdaptiveQuantizer(const std::string& name, const QuantizerOptions& options)
    : LevelSetQuantizer(name, LevelNorm::L2,
                        exponential_levels(level_set_bits(options, name), options.nuq_multiplier),
                        passthrough_tail(options)),
      adaptive_(adaptive_kind_from_name(name), adaptive_options(name, options)) {}

void AdaptiveQuantizer::observe(const float* x, int64_t n, int64_t step) {
  if (adaptive_.maybe_refit(x, n, step, options_)) set_levels(adaptive_.levels());
}

std::vector<NamedTensor> AdaptiveQuantizer::state() const {
  return {state_floats("levels", levels()), state_real("multiplier", adaptive_.multiplier()),
          state_count("refits", adaptive_.refits()), state_real("nb_variance", adaptive_.nb_variance())};
}

void AdaptiveQuantizer::load_state(const std::vector<NamedTensor>& state) {
  StateReader reader(state, "quantizer '" + name() + "'");
  const std::vector<float> levels = reader.floats("levels", int64_t(this->levels().size()));
  const double multiplier = reader.real("multiplier");
  const int64_t refits = reader.count("refits", std::numeric_limits<int>::max());
  const double nb_variance = reader.real("nb_variance");
  reader.finish();
  try {
    adaptive_.restore(levels, multiplier, refits, nb_variance);  // checks everything before it changes anything
  } catch (const Error& e) {
    QNN_CHECK(false, "quantizer '", name(), "' state: ", e.what());
  }
  set_levels(adaptive_.levels());  // valid: restore checked them
}

std::unique_ptr<GradientQuantizer> make_adaptive_quantizer(const std::string& name, const QuantizerOptions& options) {
  return std::make_unique<AdaptiveQuantizer>(name, options);
}

}  // namespace qnn
