// The scheme registry: quantizer_names() and make_quantizer() of quant/quantizer.h.
//
// One table, name -> factory. Each scheme's factory lives beside it (quant/<scheme>.h); a new
// scheme adds its row here and nothing else changes (apps, hook and tests go through the table).
#include <functional>

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
      // smart-quantizer (spec 2)
      {"standard", make_standard_quantizer},
      {"exponential", make_exponential_quantizer},
      {"hadamard", make_hadamard_quantizer},
      {"smart", make_smart_quantizer},
      // learning-to-quantize level sets (spec 3.1)
      {"qsgd", make_qsgd_quantizer},
      {"qinf", make_qinf_quantizer},
      {"nuq", make_nuq_quantizer},
      {"trn", make_trn_quantizer},
      // learning-to-quantize adaptive levels (spec 3.4-3.6)
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
  QNN_CHECK(options.bucket_size >= 1, "bucket_size must be >= 1, got ", options.bucket_size);
  QNN_CHECK(options.bits >= 0 && options.bits <= 32, "bits must be 0 (derive from levels) or 1..32, got ",
            options.bits);
  if (!found->make) return nullptr;
  return found->make(options);
}

}  // namespace qnn
