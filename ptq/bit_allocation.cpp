// Per-channel bit allocation (see ptq/bit_allocation.h).
#include "ptq/bit_allocation.h"

#include <algorithm>
#include <cmath>

#include "tensor/check.h"

namespace qnn {

std::vector<int> allocate_bits_once(const std::vector<double>& alphas, double bits) {
  QNN_CHECK(!alphas.empty(), "bit allocation needs at least one channel");
  double total = 0.0;
  for (double a : alphas) {
    QNN_CHECK(std::isfinite(a) && a >= 0.0, "bit allocation: a channel's alpha must be finite and >= 0, got ", a);
    total += std::pow(a, 2.0 / 3.0);
  }
  const double quota = double(alphas.size()) * std::pow(2.0, bits);
  std::vector<int> out;
  for (double a : alphas) {
    const double share = total > 0.0 ? quota * std::pow(a, 2.0 / 3.0) / total : 0.0;
    const double m = share > 0.0 ? std::round(std::log2(share)) : 0.0;
    out.push_back(int(std::clamp(m, 0.0, 8.0)));
  }
  return out;
}

std::vector<int> allocate_bits(const std::vector<double>& alphas, double bits) {
  double target = bits;
  std::vector<int> out;
  for (int attempt = 0; attempt < 10; ++attempt) {
    out = allocate_bits_once(alphas, target);
    double mean = 0.0;
    for (int m : out) mean += m;
    mean /= double(out.size());
    if (std::fabs(bits - mean) <= 0.01) break;
    target += (bits - mean) / 2.0;
  }
  return out;
}

}  // namespace qnn
