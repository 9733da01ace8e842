// The adaptive learning-to-quantize schemes alq, alq_nb, amq and amq_nb: a level-set quantizer
// (quant/level_set_quantizer.h: L2 norm per bucket, stochastic rounding over levels in [-1, 1])
// whose levels are refitted from the gradient's statistics (quant/adaptive_levels.h) at the
// steps of the update schedule (learning-to-quantize's: 0, 100, 2000, then every 10000). Between refits it is
// exactly the fixed level-set quantizer with the last fitted levels; levels start as NUQSGD's
// exponential levels with multiplier p (QuantizerOptions::nuq_multiplier).
// Source: learning-to-quantize, nuq/quantize.py (update_levels) and estim/gestim.py.
// The reference pools statistics over 10 extra mini-batches at each refit; here the refit uses
// the gradient of the step itself (no extra forward passes inside the training step).
//
// Checkpoint state (state(), load_state(); quant/quantizer_state.h):
//   levels       F32 [2^bits]  the level table in use (fitted at the last refit)
//   multiplier   I64 [4]       AMQ's p, the double the next AMQ fit starts from (ALQ keeps p's start)
//   refits       I64 [4]       refits so far (AMQ's first fit starts from other points)
//   nb_variance  I64 [4]       V of the levels under the last norm-based model (a double)
#pragma once
#include <memory>

#include "quant/adaptive_levels.h"
#include "quant/level_set_quantizer.h"

namespace qnn {

class AdaptiveQuantizer : public LevelSetQuantizer {
 public:
  AdaptiveQuantizer(const std::string& name, const QuantizerOptions& options);
  void observe(const float* x, int64_t n, int64_t step) override;
  bool observes_at(int64_t step) const override { return refit_due(step, options_); }
  const AdaptiveLevels& adaptive() const { return adaptive_; }
  std::vector<NamedTensor> state() const override;
  void load_state(const std::vector<NamedTensor>& state) override;

 private:
  AdaptiveLevels adaptive_;
};

// name: alq, alq_nb, amq or amq_nb.
std::unique_ptr<GradientQuantizer> make_adaptive_quantizer(const std::string& name, const QuantizerOptions& options);

}  // namespace qnn
