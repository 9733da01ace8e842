// Range methods (ptq/range_methods.h) on distributions with known answers: percentiles of a
// uniform histogram, the MSE search against a brute-force scan and against ACIQ's analytical
// optimum on Laplace data, ACIQ's fitted priors for weights and for ReLU outputs; and the integer
// grid's arithmetic (ptq/grid.h) against PyTorch 1.13's quantize_per_tensor / quantize_per_channel
// (tests/fixtures/ptq.safetensors): round half to even, clamp after rounding.
#include <doctest.h>

#include <cmath>
#include <vector>

#include "ptq/aciq.h"
#include "ptq/range_methods.h"
#include "tensor/safetensors.h"

using namespace qnn;

namespace {

// n deterministic Laplace(mu, b) samples by the inverse CDF at evenly spaced probabilities.
std::vector<float> laplace_samples(int64_t n, double mu, double b) {
  std::vector<float> out;
  for (int64_t i = 0; i < n; ++i) {
    const double u = (double(i) + 0.5) / double(n) - 0.5;  // (-0.5, 0.5)
    out.push_back(float(mu - b * (u < 0 ? -1.0 : 1.0) * std::log(1.0 - 2.0 * std::fabs(u))));
  }
  return out;
}

double sum_squared_error(const std::vector<float>& x, const QuantGrid& grid, double alpha) {
  double total = 0;
  for (float v : x) total += std::pow(v - grid.quantize(v, alpha), 2.0);
  return total;
}

}  // namespace

TEST_CASE("range methods: names parse and bad ones are errors") {
  for (const char* name : {"minmax", "percentile", "mse", "aciq-laplace", "aciq-gauss", "kl"})
    CHECK(std::string(range_method_name(parse_range_method(name))) == name);
  CHECK_THROWS_WITH(parse_range_method("entropy"), doctest::Contains("valid: minmax, percentile"));
}

TEST_CASE("range methods: the percentile of a flat histogram is linear in p") {
  Histogram h(10.0, 100);
  for (double& c : h.counts) c = 3;
  CHECK(histogram_percentile(h, 50) == doctest::Approx(5.0));
  CHECK(histogram_percentile(h, 99.9) == doctest::Approx(9.99));
  CHECK(histogram_percentile(h, 100) == doctest::Approx(10.0));
  CHECK_THROWS_WITH(histogram_percentile(h, 0), doctest::Contains("(0, 100]"));
}

TEST_CASE("range methods: the MSE search finds the minimum of a brute-force scan") {
  const std::vector<float> x = laplace_samples(20000, 0.1, 0.7);
  double max_abs = 0;
  for (float v : x) max_abs = std::max(max_abs, double(std::fabs(v)));
  for (int bits : {2, 3, 4, 8}) {
    CAPTURE(bits);
    const QuantGrid grid = QuantGrid::weights(bits);
    RangeOptions options;
    options.method = RangeMethod::Mse;
    const double alpha = weight_clip(x.data(), int64_t(x.size()), grid, options);
    const double found = sum_squared_error(x, grid, alpha);
    double best = INFINITY;
    for (int k = 1; k <= 2000; ++k) best = std::min(best, sum_squared_error(x, grid, max_abs * k / 2000));
    CHECK(found <= best * (1 + 1e-6));
    CHECK(found < sum_squared_error(x, grid, max_abs));  // clipping pays at every bit width here
  }
}

TEST_CASE("range methods: on Laplace data the MSE optimum is near ACIQ's analytical one") {
  // Laplace(0, 1): ACIQ's alpha at M bits is c_M (its model: uniform rounding noise inside).
  const std::vector<float> x = laplace_samples(100000, 0.0, 1.0);
  for (int bits : {3, 4, 5}) {
    CAPTURE(bits);
    RangeOptions mse, aciq;
    mse.method = RangeMethod::Mse;
    aciq.method = RangeMethod::AciqLaplace;
    const QuantGrid grid = QuantGrid::weights(bits);
    const double a_mse = weight_clip(x.data(), int64_t(x.size()), grid, mse);
    const double a_aciq = weight_clip(x.data(), int64_t(x.size()), grid, aciq);
    CHECK(a_aciq == doctest::Approx(aciq_alpha(AciqPrior::Laplace, bits)).epsilon(0.01));
    CHECK(a_mse == doctest::Approx(a_aciq).epsilon(0.12));
  }
}

TEST_CASE("range methods: ACIQ on a ReLU output fits the positive part's exponential tail") {
  // relu(Laplace(-0.5, 2)): positive values are exponential with b = 2, so alpha = c+_M * 2.
  const std::vector<float> z = laplace_samples(200000, -0.5, 2.0);
  PositiveStats stats;
  std::vector<float> y;
  for (float v : z) y.push_back(std::max(v, 0.0f));
  stats.add(y.data(), int64_t(y.size()));
  Histogram none;
  RangeOptions options;
  options.method = RangeMethod::AciqLaplace;
  for (int bits : {2, 4, 8}) {
    CAPTURE(bits);
    const double alpha = activation_clip(stats, none, QuantGrid::activations(bits, false), options);
    CHECK(alpha == doctest::Approx(std::min(stats.max, 2.0 * aciq_alpha_one_sided(AciqPrior::Laplace, bits))).epsilon(0.01));
    // A zero-centred grid spends half its levels below zero: one bit less for [0, alpha].
    const double symmetric = activation_clip(stats, none, QuantGrid::activations(bits, true), options);
    CHECK(symmetric == doctest::Approx(std::min(stats.max, 2.0 * aciq_alpha_one_sided(AciqPrior::Laplace, bits - 1))).epsilon(0.01));
  }
  options.method = RangeMethod::MinMax;
  CHECK(activation_clip(stats, none, QuantGrid::activations(4, false), options) == stats.max);
  PositiveStats zeros;
  std::vector<float> nothing(10, 0.0f);
  zeros.add(nothing.data(), 10);
  CHECK(activation_clip(zeros, none, QuantGrid::activations(4, false), options) == 0.0);
}

TEST_CASE("range methods: grid conventions equal PyTorch's quantize_per_tensor and quantize_per_channel") {
  const SafetensorsFile f = load_safetensors("tests/fixtures/ptq.safetensors");
  int cases = 0;
  for (const char* kind : {"qpt", "qpc"})
    for (int k = 0; f.has(kind + std::to_string(k) + ".x"); ++k, ++cases) {
      const std::string p = kind + std::to_string(k) + ".";
      CAPTURE(p);
      const Tensor& xt = f.get(p + "x");
      const std::vector<float> x = xt.to_vector(), scale = f.get(p + "scale").to_vector(),
                               zp = f.get(p + "zero_point").to_vector(), range = f.get(p + "range").to_vector(),
                               q = f.get(p + "q").to_vector(), dq = f.get(p + "dq").to_vector();
      const int64_t channels = int64_t(scale.size()), per = int64_t(x.size()) / channels;
      for (int64_t i = 0; i < int64_t(x.size()); ++i) {
        const int64_t c = i / per;
        const int64_t code = quantize_code(x[i], scale[c], int64_t(zp[c]), int64_t(range[0]), int64_t(range[1]));
        CHECK_MESSAGE(code == int64_t(q[i]), "x = ", x[i], " at ", i);
        CHECK(double(code - int64_t(zp[c])) * scale[c] == doctest::Approx(dq[i]).epsilon(1e-6));
      }
    }
  CHECK(cases == 8);
}

TEST_CASE("range methods: the grid's scale and zero point are the observers' (PyTorch's)") {
  const QuantGrid w8 = QuantGrid::weights(8), a4 = QuantGrid::activations(4, false), s8 = QuantGrid::activations(8, true);
  CHECK(w8.scale(1.0) == doctest::Approx(1.0 / 127.5));
  CHECK(w8.zero_point() == 0);
  CHECK(a4.scale(3.0) == doctest::Approx(3.0 / 15));
  CHECK(a4.zero_point() == 0);
  CHECK(s8.scale(1.0) == doctest::Approx(1.0 / 127.5));
  CHECK(s8.zero_point() == 127);
  CHECK(w8.positive_levels() == 128);
  CHECK(a4.positive_levels() == 16);
  CHECK(one_sided_bits(a4) == 4);
  CHECK(one_sided_bits(s8) == 7);
}
