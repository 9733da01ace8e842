// Fixed level tables of learning-to-quantize (Tabrizian/learning-to-quantize, `nuq/quantize.py`).
// A level table is sorted and lies in [-1, 1]; a bucket is normalized by its
// norm s, each normalized coordinate is rounded stochastically to an adjacent level, and the
// output is s * level. "bits" b counts the sign: a b-bit table has 2^b levels.
//
//   uniform (QSGD `q`, QSGD-inf `qinf`):  linspace(-1, 1, 2^b). An even count, so 0 is NOT a
//       level. b = 3: 8 levels, step 2/7: -1, -5/7, -3/7, -1/7, 1/7, 3/7, 5/7, 1.
//   exponential (NUQSGD `nuq`, start of ALQ/AMQ): {-p^0, ..., -p^(h-1), p^(h-1), ..., p^0} with
//       h = 2^(b-1). b = 3, p = 0.5: -1, -.5, -.25, -.125, .125, .25, .5, 1. The smallest
//       magnitude is p^(h-1), so a zero input goes to +-p^(h-1) with probability 1/2 each
//       (normalized variance p^(2(h-1)); 0.015625 for b = 3, p = 0.5).
//   ternary (TernGrad `trn`): {-1, 0, 1} whatever the bit budget.
#pragma once
#include <vector>

namespace qnn {

// 2^bits levels evenly spaced from -1 to 1, exactly symmetric; bits in 1..16.
std::vector<float> uniform_levels(int bits);
// 2^bits levels +-p^j, j = 0..2^(bits-1)-1, sorted; bits in 1..16, p in (0, 1). The levels must
// stay distinct in float32 (p^(h-1) > 0): a clear error otherwise.
std::vector<float> exponential_levels(int bits, double p);
// {-1, 0, 1}.
std::vector<float> ternary_levels();

}  // namespace qnn
