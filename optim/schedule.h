// Learning-rate schedules, as functions of training progress (epoch, and step within the epoch
// for per-step schedules). Formulas follow PyTorch's schedulers:
//   multistep:  lr = base * gamma^(number of milestones <= epoch)          (MultiStepLR)
//   cosine:     lr = base * (1 + cos(pi * epoch / epochs)) / 2            (CosineAnnealingLR, eta_min 0)
//   onecycle:   per step t of T = epochs * steps_per_epoch (OneCycleLR, cosine annealing):
//               warm-up over the first 30% of steps from base/25 up to base, then down to
//               base/25/1e4:  lr = end + (start - end) * (1 + cos(pi * phase_fraction)) / 2.
//               PyTorch also cycles momentum under OneCycleLR; qnn keeps momentum fixed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

struct LRSchedule {
  std::string kind = "multistep";  // multistep | cosine | onecycle
  float base_lr = 0.1f;
  std::vector<int64_t> milestones;  // multistep
  float gamma = 0.1f;               // multistep
  int64_t epochs = 1;               // cosine, onecycle
  int64_t steps_per_epoch = 1;      // onecycle
  float warmup_fraction = 0.3f;     // onecycle
  float div_factor = 25.0f, final_div_factor = 1e4f;  // onecycle

  // The learning rate for the given step (counted from 0) of the given epoch (from 0).
  float lr_at(int64_t epoch, int64_t step_in_epoch) const;
};

// Checks kind and parameters; the error lists the valid kinds.
void validate(const LRSchedule& schedule);

}  // namespace qnn
