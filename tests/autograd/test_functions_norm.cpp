// batch_norm against values printed by PyTorch 1.13 (F.batch_norm on the same inputs), the running
// statistics update, evaluation mode, and gradients for x, gamma and beta in both modes; on a
// GPU, evaluation mode with gradients against the CPU; the fused batch_norm_relu against the separate
// ops (bit for bit), finite differences and, on a GPU, the CPU.
#include "tensor/batchnorm.h"
#include "tensor/elementwise.h"
#include "tests/autograd/helpers.h"
#include "tests/gpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace qnn;
using namespace qnn::testing;

namespace {

// x [2, 3, 2, 2] with x_i = ((37 i) mod 23) / 7 - 1.5, the same formula as the PyTorch script.
Tensor bn_input() {
  Tensor x({2, 3, 2, 2});
  for (int i = 0; i < 24; ++i) x.data()[i] = static_cast<float>(((i * 37) % 23) / 7.0 - 1.5);
  return x;
}

}  // namespace

TEST_CASE("functions: batch_norm training matches PyTorch, running statistics included") {
  Variable x(bn_input());
  Variable gamma(Tensor::from_vector({1.0f, 0.5f, -2.0f}, {3}));
  Variable beta(Tensor::from_vector({0.0f, 1.0f, 0.25f}, {3}));
  Tensor rm = Tensor::from_vector({0.1f, -0.2f, 0.3f}, {3});
  Tensor rv = Tensor::from_vector({1.0f, 2.0f, 0.5f}, {3});
  Variable y = batch_norm(x, gamma, beta, rm, rv, /*training=*/true, 0.1f, 1e-5f);
  // PyTorch 1.13: F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5)
  check_values(y.value(), {-1.423238f, 0.5446959f, -0.7204042f, 1.247529f, 0.8795179f, 0.1566251f,
                           1.281125f,  0.5582322f, -2.571369f,  -0.03213689f, 2.507095f, -1.442821f,
                           -0.4392709f, 1.528663f, 0.2635625f,  -1.001538f, 1.441768f,  0.718875f,
                           1.843375f,  1.120482f,  1.942821f,   -2.007095f, 0.5321369f, 3.071369f},
               1e-5);
  check_values(rm, {0.08464286f, -0.1657143f, 0.2628571f});
  check_values(rv, {1.018039f, 1.890379f, 0.5672011f});  // unbiased variance, momentum 0.1

  // Evaluation with the updated statistics; the buffers stay as they are.
  Variable ye = batch_norm(x, gamma, beta, rm, rv, /*training=*/false, 0.1f, 1e-5f);
  check_values(ye.value(), {-1.570533f, 0.4116586f, -0.8626072f, 1.119584f, 1.034288f, 0.5667263f,
                            1.294044f,  0.8264827f, -2.655951f,  0.7583518f, 4.172655f, -1.138483f,
                            -0.579437f, 1.402754f,  0.1284885f,  -1.145777f, 1.397947f, 0.9303853f,
                            1.657703f,  1.190142f,  3.413921f,   -1.897217f, 1.517086f, 4.931389f},
               1e-5);
  check_values(rm, {0.08464286f, -0.1657143f, 0.2628571f});
}

TEST_CASE("functions: batch_norm with a large offset keeps its variance precise") {
  // Values 1000 + {-1, 1} per channel: mean 1000, biased variance 1; a naive float
  // E[x^2] - E[x]^2 would lose most digits here.
  Tensor x({4, 1, 1, 1});
  const float v[4] = {999, 1001, 999, 1001};
  for (int i = 0; i < 4; ++i) x.data()[i] = v[i];
  Tensor rm = Tensor::zeros({1}), rv = Tensor::full({1}, 1.0f);
  Variable y = batch_norm(Variable(x), Variable(Tensor::full({1}, 1.0f)), Variable(Tensor::zeros({1})),
                          rm, rv, true, 1.0f, 0.0f + 1e-12f);
  check_values(y.value(), {-1, 1, -1, 1});
  check_values(rm, {1000});
  check_values(rv, {4.0f / 3.0f});
}

TEST_CASE("functions: batch_norm errors name the op and the shapes") {
  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0f);
  Variable x(Tensor::zeros({2, 3, 2, 2}));
  Variable g4(Tensor::full({4}, 1.0f)), b3(Tensor::zeros({3}));
  CHECK_THROWS_WITH_AS(batch_norm(x, g4, b3, rm, rv, true, 0.1f, 1e-5f),
                       "[batch_norm] x [2, 3, 2, 2] has 3 channels: gamma and beta must be [3], got [4] and [3]",
                       Error);
  Variable one(Tensor::zeros({1, 3, 1, 1}));
  Variable g3(Tensor::full({3}, 1.0f));
  CHECK_THROWS_WITH_AS(batch_norm(one, g3, b3, rm, rv, true, 0.1f, 1e-5f),
                       doctest::Contains("more than one value per channel"), Error);
}

TEST_CASE("functions: batch_norm gradients for x, gamma and beta") {
  const Tensor x = Tensor::normal({3, 2, 3, 3}, 0.5f, 2.0f, 41);
  const Tensor gamma = Tensor::from_vector({1.5f, -0.7f}, {2});
  const Tensor beta = Tensor::from_vector({0.2f, -0.3f}, {2});
  for (bool training : {true, false}) {
    INFO("training ", training);
    Tensor rm = Tensor::from_vector({0.3f, -0.1f}, {2}), rv = Tensor::from_vector({2.0f, 0.5f}, {2});
    CHECK_GRADCHECK(
        [&](const std::vector<Variable>& v) {
          // Fresh copies of the buffers each call: evaluation must see the same statistics.
          Tensor m = rm.clone(), s = rv.clone();
          return batch_norm(v[0], v[1], v[2], m, s, training, 0.1f, 1e-5f);
        },
        {x, gamma, beta});
  }
}

// Evaluation mode with gradients keeps the running statistics' invstd for backward; on the GPU it
// must be computed without touching device memory from the host. Tolerances: y and dx are
// per-element affine maps (a few ulps, atol = rtol = 1e-5); dgamma and dbeta are 100-term sums
// in another order (atol 1e-4, rtol 1e-5).
GPU_TEST_CASE("functions: batch_norm in evaluation mode with gradients on the GPU matches the CPU") {
  const Tensor x = Tensor::normal({4, 3, 5, 5}, 0.5f, 2.0f, 43);
  const Tensor dy = Tensor::uniform({4, 3, 5, 5}, -1, 1, 44);
  const Tensor gamma = Tensor::from_vector({1.5f, -0.7f, 0.9f}, {3});
  const Tensor beta = Tensor::from_vector({0.2f, -0.3f, 0.1f}, {3});
  const Tensor rm = Tensor::from_vector({0.3f, -0.1f, 0.7f}, {3});
  const Tensor rv = Tensor::from_vector({2.0f, 0.5f, 1.3f}, {3});
  struct Result {
    Tensor y, dx, dgamma, dbeta;
  };
  auto run = [&](Device device) {
    Variable vx(x.clone().to(device), true), vg(gamma.clone().to(device), true), vb(beta.clone().to(device), true);
    Tensor m = rm.clone().to(device), s = rv.clone().to(device);
    const Variable y = batch_norm(vx, vg, vb, m, s, false, 0.1f, 1e-5f);
    y.backward(dy.to(device));
    return Result{y.value(), vx.grad(), vg.grad(), vb.grad()};
  };
  const Result cpu = run(Device::CPU), gpu = run(Device::CUDA);
  REQUIRE(gpu.dx.is_cuda());
  CHECK(closeness(gpu.y, cpu.y, 1e-5, 1e-5) <= 1);
  CHECK(closeness(gpu.dx, cpu.dx, 1e-5, 1e-5) <= 1);
  CHECK(closeness(gpu.dgamma, cpu.dgamma, 1e-4, 1e-5) <= 1);
  CHECK(closeness(gpu.dbeta, cpu.dbeta, 1e-4, 1e-5) <= 1);
}

namespace {

// Every bit of a and b agrees (same shape, same floats; NaN compared by bits too).
void check_identical(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(std::memcmp(a.data(), b.data(), a.numel() * sizeof(float)) == 0);
}

// The smallest |v| over t.
float min_abs(const Tensor& t) {
  float m = INFINITY;
  for (float v : t.to_vector()) m = std::min(m, std::fabs(v));
  return m;
}

}  // namespace

// The fused op must round every value as the separate ops do: same forward values, running
// statistics and gradients, bit for bit, with and without a residual, in training and evaluation.
TEST_CASE("functions: batch_norm_relu is bit-identical to relu(batch_norm) and add_relu(batch_norm, r)") {
  const Tensor x = Tensor::normal({4, 3, 5, 6}, 0.3f, 1.7f, 51);
  const Tensor r = Tensor::normal({4, 3, 5, 6}, 0.0f, 1.0f, 52);
  const Tensor dy = Tensor::uniform({4, 3, 5, 6}, -1, 1, 53);
  const Tensor gamma = Tensor::from_vector({1.5f, -0.7f, 0.9f}, {3});
  const Tensor beta = Tensor::from_vector({0.2f, -0.3f, 0.1f}, {3});
  for (bool training : {true, false}) {
    for (bool residual : {false, true}) {
      INFO("training ", training, ", residual ", residual);
      struct Result {
        Tensor y, dx, dgamma, dbeta, dr, rm, rv;
      };
      auto run = [&](bool fused) {
        Variable vx(x.clone(), true), vg(gamma.clone(), true), vb(beta.clone(), true);
        Variable vr(r.clone(), true);
        Tensor rm = Tensor::from_vector({0.3f, -0.1f, 0.7f}, {3});
        Tensor rv = Tensor::from_vector({2.0f, 0.5f, 1.3f}, {3});
        Variable y;
        if (fused)
          y = batch_norm_relu(vx, vg, vb, rm, rv, training, 0.1f, 1e-5f, residual ? vr : Variable());
        else if (residual)
          y = add_relu(batch_norm(vx, vg, vb, rm, rv, training, 0.1f, 1e-5f), vr);
        else
          y = relu(batch_norm(vx, vg, vb, rm, rv, training, 0.1f, 1e-5f));
        y.backward(dy);
        return Result{y.value(), vx.grad(), vg.grad(), vb.grad(), vr.grad(), rm, rv};
      };
      const Result fused = run(true), reference = run(false);
      const std::vector<float> y = fused.y.to_vector();
      REQUIRE(std::count(y.begin(), y.end(), 0.0f) > 50);  // the mask matters
      REQUIRE(std::count(y.begin(), y.end(), 0.0f) < 300);
      check_identical(fused.y, reference.y);
      check_identical(fused.dx, reference.dx);
      check_identical(fused.dgamma, reference.dgamma);
      check_identical(fused.dbeta, reference.dbeta);
      check_identical(fused.rm, reference.rm);
      check_identical(fused.rv, reference.rv);
      CHECK(fused.dr.defined() == residual);
      if (residual) check_identical(fused.dr, reference.dr);
    }
  }
}

// Without a residual, backward recomputes the ReLU's mask from x and the map forward applied,
// instead of reading y. Where bn(x) is about zero, whether it is +0, a tiny positive or a tiny
// negative float depends on exactly how x * a + b was evaluated (one rounding or two): x sits at
// its channel's mean (batch or running) and beta is 0, so bn(x) is the rounding error of
// mean * a. The recomputed mask must still be the forward's, bit for bit.
TEST_CASE("functions: batch_norm_relu's recomputed mask is the forward's where bn(x) is about zero") {
  const int64_t n = 4, c = 16, hw = 9;
  Tensor x({n, c, 3, 3});
  Tensor gamma({c}), beta = Tensor::zeros({c}), means({c});
  for (int64_t ch = 0; ch < c; ++ch) {
    // Exactly representable mean, reached exactly by the batch statistics: pairs mean -+ d.
    const float mu = 0.1f * static_cast<float>(ch + 1) + 0.0371f;
    means.data()[ch] = mu;
    gamma.data()[ch] = 0.37f + 0.113f * static_cast<float>(ch);
    for (int64_t img = 0; img < n; ++img)
      for (int64_t i = 0; i < hw; ++i) {
        const float d = static_cast<float>((img * hw + i) % 3) - 1.0f;  // -1, 0, +1
        x.data()[(img * c + ch) * hw + i] = d == 0.0f ? mu : mu + d * 0.5f;
      }
  }
  const Tensor dy = Tensor::uniform(x.shape(), -1, 1, 57);
  for (bool training : {true, false}) {
    INFO("training ", training);
    auto run = [&](bool fused, Tensor* y_out) {
      Variable vx(x.clone(), true), vg(gamma.clone(), true), vb(beta.clone(), true);
      Tensor rm = means.clone(), rv = Tensor::full({c}, 0.5f);
      const Variable y = fused ? batch_norm_relu(vx, vg, vb, rm, rv, training, 0.1f, 1e-5f)
                               : relu(batch_norm(vx, vg, vb, rm, rv, training, 0.1f, 1e-5f));
      y.backward(dy);
      if (y_out) *y_out = y.value();
      return std::vector<Tensor>{vx.grad(), vg.grad(), vb.grad()};
    };
    Tensor y;
    const std::vector<Tensor> fused = run(true, &y), reference = run(false, nullptr);
    // The test can fail: among the values at the mean, some came out positive and some not.
    int64_t positive = 0, zero = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t ch = (i / hw) % c;
      if (x.data()[i] != means.data()[ch]) continue;
      if (y.data()[i] > 0.0f) {
        ++positive;
        CHECK(y.data()[i] < 1e-6f);
      } else {
        ++zero;
      }
    }
    INFO("values at the mean: ", positive, " positive, ", zero, " zero");
    REQUIRE(positive > 0);
    REQUIRE(zero > 0);
    for (size_t k = 0; k < fused.size(); ++k) check_identical(fused[k], reference[k]);
  }
}

TEST_CASE("functions: batch_norm_relu keeps NaN and rejects a residual of another shape") {
  Tensor x = Tensor::normal({2, 1, 2, 2}, 0.0f, 1.0f, 54);
  x.data()[3] = std::nanf("");  // the channel's statistics, hence every output, become NaN
  Tensor rm = Tensor::zeros({1}), rv = Tensor::full({1}, 1.0f);
  Variable g(Tensor::full({1}, 1.0f)), b(Tensor::zeros({1}));
  for (float v : batch_norm_relu(Variable(x), g, b, rm, rv, true, 0.1f, 1e-5f).value().to_vector())
    CHECK(std::isnan(v));
  Variable wrong(Tensor::zeros({2, 1, 2, 3}));
  CHECK_THROWS_WITH_AS(batch_norm_relu(Variable(x), g, b, rm, rv, true, 0.1f, 1e-5f, wrong),
                       doctest::Contains("[batch_norm_relu] residual [2, 1, 2, 3] on cpu must match x [2, 1, 2, 2]"),
                       Error);
}

TEST_CASE("functions: batch_norm_relu gradients for x, gamma, beta and the residual") {
  const Tensor x = Tensor::normal({3, 2, 3, 3}, 0.5f, 2.0f, 63);
  const Tensor gamma = Tensor::from_vector({1.5f, -0.7f}, {2});
  const Tensor beta = Tensor::from_vector({0.2f, -0.3f}, {2});
  for (bool training : {true, false}) {
    INFO("training ", training);
    const Tensor rm = Tensor::from_vector({0.3f, -0.1f}, {2}), rv = Tensor::from_vector({2.0f, 0.5f}, {2});
    // Finite differences need every pre-ReLU value away from the kink at 0 (this seed gives that in
    // both modes): check it.
    Tensor m0 = rm.clone(), v0 = rv.clone();
    const Tensor pre = batch_norm(Variable(x), Variable(gamma), Variable(beta), m0, v0, training, 0.1f, 1e-5f).value();
    REQUIRE(min_abs(pre) > 0.05f);
    // A residual that keeps pre + residual away from 0 as well.
    Tensor res = Tensor::uniform(x.shape(), -1.0f, 1.0f, 56);
    for (int64_t i = 0; i < res.numel(); ++i)
      if (std::fabs(pre.data()[i] + res.data()[i]) < 0.1f) res.data()[i] += 0.3f;
    REQUIRE(min_abs(add(Variable(pre), Variable(res)).value()) > 0.05f);
    CHECK_GRADCHECK(
        [&](const std::vector<Variable>& v) {
          Tensor m = rm.clone(), s = rv.clone();
          return batch_norm_relu(v[0], v[1], v[2], m, s, training, 0.1f, 1e-5f);
        },
        {x, gamma, beta});
    CHECK_GRADCHECK(
        [&](const std::vector<Variable>& v) {
          Tensor m = rm.clone(), s = rv.clone();
          return batch_norm_relu(v[0], v[1], v[2], m, s, training, 0.1f, 1e-5f, v[3]);
        },
        {x, gamma, beta, res});
  }
}

// On the GPU the fused op runs the separate kernels one after another; it must agree with the
// CPU's fused pass (tolerances as for batch_norm above, the running statistics included).
GPU_TEST_CASE("functions: batch_norm_relu on the GPU matches the CPU, with and without a residual") {
  const Tensor x = Tensor::normal({4, 3, 5, 5}, 0.5f, 2.0f, 61);
  const Tensor r = Tensor::normal({4, 3, 5, 5}, 0.0f, 1.0f, 62);
  const Tensor dy = Tensor::uniform({4, 3, 5, 5}, -1, 1, 63);
  const Tensor gamma = Tensor::from_vector({1.5f, -0.7f, 0.9f}, {3});
  const Tensor beta = Tensor::from_vector({0.2f, -0.3f, 0.1f}, {3});
  for (bool residual : {false, true}) {
    INFO("residual ", residual);
    struct Result {
      Tensor y, dx, dgamma, dbeta, dr, rm, rv;
    };
    auto run = [&](Device device) {
      Variable vx(x.clone().to(device), true), vg(gamma.clone().to(device), true);
      Variable vb(beta.clone().to(device), true), vr(r.clone().to(device), true);
      Tensor m = Tensor::zeros({3}).to(device), s = Tensor::full({3}, 1.0f).to(device);
      const Variable y = batch_norm_relu(vx, vg, vb, m, s, true, 0.1f, 1e-5f, residual ? vr : Variable());
      y.backward(dy.to(device));
      return Result{y.value().to(Device::CPU), vx.grad().to(Device::CPU), vg.grad().to(Device::CPU),
                    vb.grad().to(Device::CPU), residual ? vr.grad().to(Device::CPU) : Tensor(),
                    m.to(Device::CPU), s.to(Device::CPU)};
    };
    const Result cpu = run(Device::CPU), gpu = run(Device::CUDA);
    CHECK(closeness(gpu.y, cpu.y, 1e-5, 1e-5) <= 1);
    CHECK(closeness(gpu.dx, cpu.dx, 1e-4, 1e-4) <= 1);
    CHECK(closeness(gpu.dgamma, cpu.dgamma, 1e-4, 1e-5) <= 1);
    CHECK(closeness(gpu.dbeta, cpu.dbeta, 1e-4, 1e-5) <= 1);
    CHECK(closeness(gpu.rm, cpu.rm, 1e-5, 1e-5) <= 1);
    CHECK(closeness(gpu.rv, cpu.rv, 1e-5, 1e-5) <= 1);
    if (residual) CHECK(closeness(gpu.dr, cpu.dr, 1e-5, 1e-5) <= 1);
  }
}

TEST_CASE("functions: batch norm backward adds dgamma and dbeta into given gradients as add_into would") {
  const Tensor x = Tensor::normal({4, 3, 5, 5}, 0.5f, 2.0f, 70, 0), dy = Tensor::uniform({4, 3, 5, 5}, -1, 1, 70, 1);
  const Tensor gamma = Tensor::uniform({3}, 0.5f, 1.5f, 70, 2), beta = Tensor::uniform({3}, -0.5f, 0.5f, 70, 3);
  const Tensor start = Tensor::uniform({3}, -1, 1, 70, 4);
  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0f), mean, invstd, affine;
  const Tensor y = batch_norm_relu_forward_training(x, Tensor(), gamma, beta, rm, rv, 0.1f, 1e-5f, mean, invstd, &affine);
  for (const Tensor& applied : {Tensor(), affine}) {
    const BatchNormGrads fresh = batch_norm_relu_backward(dy, y, x, gamma, mean, invstd, true, true, false, applied);
    BatchNormGradTargets into{start.clone(), start.clone()};
    const BatchNormGrads added =
        batch_norm_relu_backward(dy, y, x, gamma, mean, invstd, true, true, false, applied, into);
    CHECK(added.dgamma.data() == into.dgamma.data());
    CHECK(added.dx.to_vector() == fresh.dx.to_vector());
    Tensor expect_dg = start.clone(), expect_db = start.clone();
    add_into(expect_dg, fresh.dgamma);
    add_into(expect_db, fresh.dbeta);
    CHECK(into.dgamma.to_vector() == expect_dg.to_vector());
    CHECK(into.dbeta.to_vector() == expect_db.to_vector());
  }
  BatchNormGradTargets wrong{Tensor::zeros({4}), Tensor()};
  CHECK_THROWS_WITH_AS(batch_norm_backward(dy, x, gamma, mean, invstd, true, true, wrong),
                       doctest::Contains("a gradient target must be [3]"), Error);
}
