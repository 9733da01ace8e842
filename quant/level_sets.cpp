// Level tables of learning-to-quantize (see quant/level_sets.h).
#include "quant/level_sets.h"

#include <cmath>

#include "tensor/check.h"

namespace qnn {

std::vector<float> uniform_levels(int bits) {
  QNN_CHECK(bits >= 1 && bits <= 16, "bits must be 1..16 (2^bits levels, sign included), got ",
            bits);
  const int count = 1 << bits;
  std::vector<float> levels(count);
  // (2i - (count-1)) / (count-1): an exact integer numerator keeps the table symmetric and its
  // ends exactly -1 and 1.
  for (int i = 0; i < count; ++i)
    levels[i] = static_cast<float>(double(2 * i - (count - 1)) / double(count - 1));
  return levels;
}

std::vector<float> exponential_levels(int bits, double p) {
  QNN_CHECK(bits >= 1 && bits <= 16, "bits must be 1..16 (2^bits levels, sign included), got ",
            bits);
  QNN_CHECK(p > 0.0 && p < 1.0, "the exponential multiplier p must lie in (0, 1), got ", p);
  const int half = 1 << (bits - 1);
  std::vector<float> levels(2 * half);
  for (int j = 0; j < half; ++j) {
    const float v = static_cast<float>(std::pow(p, j));
    levels[j] = -v;                 // -p^0 first
    levels[2 * half - 1 - j] = v;   // p^0 last
  }
  for (int i = 0; i + 1 < 2 * half; ++i)
    QNN_CHECK(levels[i] < levels[i + 1], "p = ", p, " with ", bits, " bits gives levels that are ",
              "not distinct in float32 (smallest magnitude p^", half - 1, " = ", levels[half], ")");
  return levels;
}

std::vector<float> ternary_levels() { return {-1.0f, 0.0f, 1.0f}; }

}  // namespace qnn
