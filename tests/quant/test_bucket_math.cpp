// The arithmetic the CPU and GPU quantizers share (quant/bucket_math.h), where bit-identity of
// the two sides is decided: grid points as one fused multiply-add (quant/standard.h), sums of
// squares in the GPU's 32-lane order, and the exponential scheme's power-of-two intervals.
#include <doctest.h>

#include <vector>

#include "quant/bucket_math.h"
#include "quant/standard.h"
#include "tensor/float_bits.h"

using namespace qnn;

TEST_CASE("bucket_math: grid points are one fused multiply-add") {
  const float fmin = -0.3f, unit = 0.0123f;
  float table[16];
  uniform_grid_points(UniformGrid{fmin, unit}, 16, table);
  for (int j = 0; j < 16; ++j) {
    // j*unit + fmin is exact in double here, so one rounding to float is the FMA's result.
    const float single_rounding = float(double(j) * double(unit) + double(fmin));
    CHECK(float_bits(table[j]) == float_bits(single_rounding));
    CHECK(float_bits(grid_point(fmin, unit, j)) == float_bits(single_rounding));
  }
  // The fitted grid covers the maximum with its top point.
  const float lo = -1.7f, hi = 2.3f;
  const float u = fit_grid_unit(lo, hi, 16);
  CHECK(grid_point(lo, u, 15) >= hi);
  CHECK(fit_grid_unit(0.5f, 0.5f, 16) == 0.0f);
}

TEST_CASE("bucket_math: sums of squares in the 32-lane order") {
  // x_0 = 2^30 (square 2^60, ulp 256) and 9599 ones. Sequentially every 1 is lost: 2^60. In the
  // lane order lane 0 holds 2^60 (its 299 ones lost), lanes 1..31 hold 300 each, and the fold
  // w = 16, 8, 4, 2, 1 rounds to multiples of 256 at every step: 2^60 + 256, + 768, + 2048,
  // + 4352, + 9216.
  std::vector<float> x(32 * 300, 1.0f);
  x[0] = 0x1p30f;
  CHECK(lane_sum_of_squares(x.data(), int64_t(x.size())) == 0x1p60 + 9216.0);
  // Short vectors: the lanes past n stay 0.
  const float small[3] = {1.0f, 2.0f, 3.0f};
  CHECK(lane_sum_of_squares(small, 3) == 14.0);
  CHECK(lane_sum_of_squares(small, 0) == 0.0);
}

TEST_CASE("bucket_math: exponential interval and ceil_log2") {
  CHECK(ceil_log2(1.0f) == 0);
  CHECK(ceil_log2(0.75f) == 0);
  CHECK(ceil_log2(0.5f) == -1);
  CHECK(ceil_log2(0.3f) == -1);
  CHECK(ceil_log2(0x1p-149f) == -149);
  CHECK(ceil_log2(0x1.8p-140f) == -139);
  // k = 8, max_pow 0: min_pow = -6, intervals 0..6.
  CHECK(exponential_interval(0.0f, -6, 8) == 0);
  CHECK(exponential_interval(1e-9f, -6, 8) == 0);
  CHECK(exponential_interval(0.3f, -6, 8) == 5);
  CHECK(exponential_interval(1.0f, -6, 8) == 6);
}
