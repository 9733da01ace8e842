// gradcheck: compares the gradients that backward() computes with central finite differences.
//   d f / d x_i  ~  (f(x + h e_i) - f(x - h e_i)) / (2h)
// where f is the sum of the function's output weighted by a fixed random tensor (so every output
// element matters). Inputs are float32, so h is about 1e-2 and tolerances are loose (rtol 1e-2)
// but still catch any wrong formula; keep inputs away from kinks (relu at 0, max-pool ties).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "autograd/variable.h"

namespace qnn {

struct GradcheckResult {
  bool ok = true;
  std::string report;  // the first mismatches: input, index, analytic, numeric
};

GradcheckResult gradcheck(const std::function<Variable(const std::vector<Variable>&)>& f,
                          const std::vector<Tensor>& inputs, float h = 1e-2f, float rtol = 1e-2f,
                          float atol = 1e-3f);

}  // namespace qnn
