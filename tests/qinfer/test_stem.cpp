// The stem's requantization (qinfer/stem.h): the row form (stem_requantize_positions, AVX-512 and
// scalar) gives the per-position scalar bytes, for RGB and wider inputs and channel counts that
// are not a multiple of 16.
#include <doctest.h>

#include <random>

#include "qinfer/gemm.h"
#include "qinfer/stem.h"
#include "tests/qinfer/gemm_paths.h"

using namespace qnn::qinfer;

TEST_CASE("qinfer stem: requantizing a row of positions gives the per-position scalar bytes") {
  testing::PathGuard guard;
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> acc_value(-60000, 60000);
  std::uniform_real_distribution<float> scale(0.002f, 0.02f), multiplier(0.5f, 4.0f), shift(-30.0f, 30.0f);
  for (auto [ci, co] : {std::pair<int64_t, int64_t>{3, 16}, {3, 20}, {1, 16}, {5, 32}})
    for (GemmPath path : testing::paths()) {
      CAPTURE(ci);
      CAPTURE(co);
      CAPTURE(gemm_path_name(path));
      const int64_t count = 37;
      std::vector<int32_t> acc(count * ci * co);
      for (int32_t& a : acc) a = acc_value(rng);
      std::vector<float> pixel_scale(ci), mult(co), bias(co), table(3 * co);
      for (float& v : pixel_scale) v = scale(rng);
      for (float& v : mult) v = multiplier(rng);
      for (float& v : bias) v = shift(rng);
      for (float& v : table) v = shift(rng);
      std::vector<const float*> corrections(count);
      for (int64_t i = 0; i < count; ++i) corrections[i] = table.data() + (i % 3) * co;
      StemRequant rq;
      rq.in_channels = ci;
      rq.out_channels = co;
      rq.pixel_scale = pixel_scale.data();
      rq.multiplier = mult.data();
      rq.bias = bias.data();
      rq.zero_point = 4;
      rq.qmax = 200;
      std::vector<uint8_t> want(count * co), got(count * co);
      for (int64_t i = 0; i < count; ++i)
        kernels::stem_requantize_scalar(acc.data() + i * ci * co, corrections[i], rq, want.data() + i * co);
      set_gemm_path(path);
      stem_requantize_positions(acc.data(), count, corrections.data(), rq, got.data());
      CHECK(got == want);
      int64_t clamped = 0;
      for (uint8_t v : want) clamped += v == 4 || v == 200;
      CHECK(clamped < count * co);  // the values are not all at the clamps
    }
}
