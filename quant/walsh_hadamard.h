// The orthonormal fast Walsh-Hadamard transform (IST-DASLab/smart-quantizer,
// quantization.py, hadamard quantizer).
//
// H = H_n / sqrt(n) with H_n the Sylvester Hadamard matrix (entries +-1): H is symmetric and
// orthogonal, so H*H = I (self-inverse) and ||Hv|| = ||v||. Computed in place with log2(n) stages
// of butterflies (x, y) -> (x + y, x - y), then one scaling by 1/sqrt(n) (the reference applies
// 1/sqrt(2) at every stage: the same matrix, one multiply per coordinate instead of log2(n)).
#pragma once
#include <cstdint>

namespace qnn {

// The smallest power of two >= n, for 1 <= n <= 2^62 (beyond, it would not fit an int64).
int64_t next_power_of_two(int64_t n);

// x <- H x in place; n must be a power of two.
void walsh_hadamard(float* x, int64_t n);

}  // namespace qnn
