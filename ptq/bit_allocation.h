// Per-channel bit allocation under a total budget (Banner, Nahshan and Soudry, NeurIPS 2019,
// section 5, eqs. 10-11). C channels share a quota of B = C 2^M bins (M bits each on average).
// A channel whose values spread over alpha_i gets rounding noise ~ alpha_i^2 / B_i^2; minimising
// the sum under sum_i B_i = B (Lagrange) gives
//
//   B_i* = B alpha_i^(2/3) / sum_j alpha_j^(2/3),    M_i = round(log2 B_i*), clamped to [0, 8]
//
// Rounding moves the average away from M, so the target is corrected as the paper's code does:
// up to 10 times, if |M - mean(M_i)| > 0.01, the target moves by (M - mean(M_i)) / 2 and the
// bits are allocated again. alpha_i may be the clip value or a proxy for it (the channel's
// standard deviation, as the paper's code uses for weights).
#pragma once
#include <vector>

namespace qnn {

// M_i for a target average of `bits` (a quota of C 2^bits bins): the rule above, once.
std::vector<int> allocate_bits_once(const std::vector<double>& alphas, double bits);

// M_i whose mean is within 0.01 of `bits` where 10 corrections reach it (else the last try).
std::vector<int> allocate_bits(const std::vector<double>& alphas, double bits);

}  // namespace qnn
