// The scheme registry: quantizer_names() and make_quantizer() of quant/quantizer.h.
//
// One table, name -> factory. Each scheme's factory lives beside it (quant/<scheme>.h); a new
// scheme adds its row here and nothing else changes (apps, hook and tests go through the table).
#include <functional>
#include <limits>

#include "quant/adaptive_quantizer.h"
#include "quant/exponential.h"
#include "quant/hadamard.h"
#include "quant/level_set_quantizer.h"
#include "quant/quantizer.h"
#include "quant/smart.h"
#include "quant/standard.h"
#include "tensor/check.h"

namespace qnn {

namespace {

using Factory = std::function<std::unique_ptr<GradientQuantizer>(const QuantizerOptions&)>;

struct Entry {
  std::string name;
  Factory make;  // empty for "none"
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"none", nullptr},
      // smart-quantizer (IST-DASLab/smart-quantizer)
      {"standard", make_standard_quantizer},
      {"exponential", make_exponential_quantizer},
      {"hadamard", make_hadamard_quantizer},
      {"smart", make_smart_quantizer},
      // learning-to-quantize level sets (Tabrizian/learning-to-quantize)
      {"qsgd", make_qsgd_quantizer},
      {"qinf", make_qinf_quantizer},
      {"nuq", make_nuq_quantizer},
      {"trn", make_trn_quantizer},
      // learning-to-quantize adaptive levels (ALQ, AMQ)
      {"alq", [](const QuantizerOptions& o) { return make_adaptive_quantizer("alq", o); }},
      {"alq_nb", [](const QuantizerOptions& o) { return make_adaptive_quantizer("alq_nb", o); }},
      {"amq", [](const QuantizerOptions& o) { return make_adaptive_quantizer("amq", o); }},
      {"amq_nb", [](const QuantizerOptions& o) { return make_adaptive_quantizer("amq_nb", o); }},
  };
  return entries;
}

}  // namespace

const std::vector<std::string>& quantizer_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const Entry& e : registry()) out.push_back(e.name);
    return out;
  }();
  return names;
}

std::unique_ptr<GradientQuantizer> make_quantizer(const std::string& name, const QuantizerOptions& options) {
  const Entry* found = nullptr;
  for (const Entry& e : registry())
    if (e.name == name) found = &e;
  if (!found) {
    std::string valid;
    for (const std::string& n : quantizer_names()) valid += (valid.empty() ? "" : ", ") + n;
    QNN_CHECK(false, "unknown quantizer '", name, "'; valid: ", valid);
  }
  QNN_CHECK(options.levels >= 2, "levels must be >= 2, got ", options.levels);
  QNN_CHECK(options.levels <= kMaxLevels, "levels must be <= ", kMaxLevels, ", got ", options.levels);
  check_bucket_size(options.bucket_size);
  QNN_CHECK(options.bits >= 0 && options.bits <= kMaxBits, "bits must be 0 (derive from levels) or 1..", kMaxBits,
            ", got ", options.bits);
  QNN_CHECK(options.sample_fraction > 0.0 && options.sample_fraction <= 1.0,
            "sample_fraction must be in (0, 1], got ", options.sample_fraction);
  QNN_CHECK(options.nuq_multiplier > 0.0 && options.nuq_multiplier < 1.0, "nuq_multiplier must be in (0, 1), got ",
            options.nuq_multiplier);
  QNN_CHECK(options.refit_every >= 0, "refit_every must be >= 0, got ", options.refit_every);
  for (int64_t step : options.refit_at) QNN_CHECK(step >= 0, "refit_at steps must be >= 0, got ", step);
  if (!found->make) return nullptr;
  return found->make(options);
}

int checked_int_option(const std::string& what, int64_t value, int64_t lo, int64_t hi) {
  QNN_CHECK(lo <= hi && lo >= std::numeric_limits<int>::min() && hi <= std::numeric_limits<int>::max(),
            "bad range [", lo, ", ", hi, "] for ", what);
  QNN_CHECK(value >= lo && value <= hi, what, " must be in ", lo, "..", hi, ", got ", value);
  return static_cast<int>(value);
}

}  // namespace qnn
