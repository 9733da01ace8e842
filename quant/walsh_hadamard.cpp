// The orthonormal fast Walsh-Hadamard transform: see quant/walsh_hadamard.h.
#include "quant/walsh_hadamard.h"

#include <cmath>

#include "tensor/check.h"

namespace qnn {

int64_t next_power_of_two(int64_t n) {
  QNN_CHECK(n >= 1 && n <= (int64_t(1) << 62), "needs 1 <= n <= 2^62, got ", n);
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

void walsh_hadamard(float* x, int64_t n) {
  QNN_CHECK(n >= 1 && (n & (n - 1)) == 0, "length must be a power of two, got ", n);
  for (int64_t half = 1; half < n; half *= 2)
    for (int64_t block = 0; block < n; block += 2 * half)
      for (int64_t k = block; k < block + half; ++k) {
        const float a = x[k], b = x[k + half];
        x[k] = a + b;
        x[k + half] = a - b;
      }
  const float scale = float(1.0 / std::sqrt(double(n)));
  for (int64_t k = 0; k < n; ++k) x[k] *= scale;
}

}  // namespace qnn
