// AdaptiveQuantizer (see quant/adaptive_quantizer.h).
#include "quant/adaptive_quantizer.h"

#include "quant/level_sets.h"

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

std::unique_ptr<GradientQuantizer> make_adaptive_quantizer(const std::string& name, const QuantizerOptions& options) {
  return std::make_unique<AdaptiveQuantizer>(name, options);
}

}  // namespace qnn
