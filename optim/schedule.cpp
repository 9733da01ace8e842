// Learning-rate schedules (formulas in optim/schedule.h).
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

namespace {
constexpr double kPi = 3.14159265358979323846;
double cosine_between(double start, double end, double fraction) {
  return end + (start - end) * (1.0 + std::cos(kPi * fraction)) / 2.0;
}
}  // namespace

void validate(const LRSchedule& s) {
  QNN_CHECK(s.kind == "multistep" || s.kind == "cosine" || s.kind == "onecycle", "unknown schedule '",
            s.kind, "'; valid: multistep, cosine, onecycle");
  QNN_CHECK(s.base_lr >= 0, "learning rate must be >= 0, got ", s.base_lr);
  QNN_CHECK(s.epochs >= 1 && s.steps_per_epoch >= 1, "needs at least one epoch and one step per epoch");
  for (size_t i = 1; i < s.milestones.size(); ++i)
    QNN_CHECK(s.milestones[i] > s.milestones[i - 1], "milestones must increase, got ", s.milestones[i - 1],
              " then ", s.milestones[i]);
}

float LRSchedule::lr_at(int64_t epoch, int64_t step_in_epoch) const {
  if (kind == "multistep") {
    double lr = base_lr;
    for (int64_t m : milestones)
      if (epoch >= m) lr *= gamma;
    return static_cast<float>(lr);
  }
  if (kind == "cosine") return static_cast<float>(cosine_between(base_lr, 0.0, double(epoch) / epochs));
  // onecycle: PyTorch's phase boundaries, step counted from 0 over the whole run.
  const double total = double(epochs) * steps_per_epoch;
  const double step = double(epoch) * steps_per_epoch + step_in_epoch;
  const double start = base_lr / div_factor, end = start / final_div_factor;
  const double warm_end = warmup_fraction * total - 1.0;
  if (step <= warm_end) return static_cast<float>(cosine_between(start, base_lr, warm_end > 0 ? step / warm_end : 1.0));
  const double fraction = (step - warm_end) / (total - 1.0 - warm_end);
  return static_cast<float>(cosine_between(base_lr, end, std::min(fraction, 1.0)));
}

}  // namespace qnn
