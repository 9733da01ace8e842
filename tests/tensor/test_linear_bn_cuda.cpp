// Parity of the CUDA fully connected layer (tensor/linear.cu) and batch normalisation
// (tensor/batchnorm.cu) with their CPU twins, from the same random inputs.
//
// Tolerances:
//   linear: cuBLAS in fp32 (TF32 off) sums in its own order: a sum of L products of values in
//     [-1, 1] differs by far less than atol = 1e-5 + 2e-6 L (L = in, out or N), rtol 1e-4. The
//     bias gradient adds the rows in the CPU's order with the same float additions: equal.
//   batch norm: the statistics are double sums in another order (the float results move by at
//     most an ulp) and nvcc and GCC may fuse different multiply-adds: y, dx and the statistics
//     agree to a few ulps, checked with atol = rtol = 1e-5 (inputs of scale ~2, shifted by 0.5
//     to exercise the shifted sums). dgamma and dbeta are M-term sums: rtol 1e-5, atol 1e-5 M^0.5.
#include <doctest.h>

#include <cmath>
#include <string>

#include "tensor/batchnorm.h"
#include "tensor/linear.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::closeness;
using qnn::testing::gpu;

namespace {

double linear_atol(int64_t reduction) { return 1e-5 + 2e-6 * double(reduction); }

void check_linear(int64_t n, int64_t in, int64_t out, bool with_bias, uint64_t seed) {
  CAPTURE(n); CAPTURE(in); CAPTURE(out); CAPTURE(with_bias);
  const Tensor x = Tensor::uniform({n, in}, -1, 1, seed, 0);
  const Tensor w = Tensor::uniform({out, in}, -1, 1, seed, 1);
  const Tensor b = with_bias ? Tensor::uniform({out}, -1, 1, seed, 2) : Tensor();
  const Tensor dy = Tensor::uniform({n, out}, -1, 1, seed, 3);

  const Tensor y = linear_forward(x, w, b);
  const Tensor yg = linear_forward(gpu(x), gpu(w), gpu(b));
  REQUIRE(yg.is_cuda());
  REQUIRE(yg.shape() == y.shape());
  CHECK(closeness(yg, y, linear_atol(in), 1e-4) <= 1);

  const Tensor dx = linear_backward_data(dy, w);
  const Tensor dxg = linear_backward_data(gpu(dy), gpu(w));
  REQUIRE(dxg.shape() == dx.shape());
  CHECK(closeness(dxg, dx, linear_atol(out), 1e-4) <= 1);

  // Non-zero starting gradients: backward weight adds into them.
  Tensor dw = Tensor::uniform({out, in}, -1, 1, seed, 4), db = Tensor::uniform({out}, -1, 1, seed, 5);
  Tensor dwg = gpu(dw), dbg = gpu(db);
  Tensor none, none_g;
  linear_backward_weight(x, dy, dw, with_bias ? db : none);
  linear_backward_weight(gpu(x), gpu(dy), dwg, with_bias ? dbg : none_g);
  CHECK(closeness(dwg, dw, linear_atol(n), 1e-4) <= 1);
  if (with_bias) CHECK(dbg.to_vector() == db.to_vector());
}

struct BnInputs {
  Tensor x, gamma, beta, running_mean, running_var, dy;
};

BnInputs bn_inputs(const Shape& shape, uint64_t seed) {
  const int64_t c = shape[1];
  return {Tensor::normal(shape, 0.5f, 2.0f, seed, 0), Tensor::uniform({c}, 0.5f, 1.5f, seed, 1),
          Tensor::uniform({c}, -0.5f, 0.5f, seed, 2), Tensor::uniform({c}, -0.2f, 0.2f, seed, 3),
          Tensor::uniform({c}, 0.5f, 2.0f, seed, 4), Tensor::uniform(shape, -1, 1, seed, 5)};
}

void check_bn_training(const Shape& shape, uint64_t seed) {
  CAPTURE(shape_str(shape));
  const BnInputs in = bn_inputs(shape, seed);
  const float momentum = 0.1f, eps = 1e-5f;
  Tensor rm = in.running_mean.clone(), rv = in.running_var.clone(), mean, invstd;
  Tensor rmg = gpu(in.running_mean), rvg = gpu(in.running_var), meang, invstdg;
  const Tensor y = batch_norm_forward_training(in.x, in.gamma, in.beta, rm, rv, momentum, eps, mean, invstd);
  const Tensor yg = batch_norm_forward_training(gpu(in.x), gpu(in.gamma), gpu(in.beta), rmg, rvg, momentum, eps,
                                                meang, invstdg);
  REQUIRE(yg.is_cuda());
  REQUIRE(meang.shape() == Shape({shape[1]}));
  REQUIRE(invstdg.shape() == Shape({shape[1]}));
  CHECK(closeness(yg, y, 1e-5, 1e-5) <= 1);
  CHECK(closeness(meang, mean, 1e-6, 1e-5) <= 1);
  CHECK(closeness(invstdg, invstd, 1e-6, 1e-5) <= 1);
  CHECK(closeness(rmg, rm, 1e-6, 1e-5) <= 1);
  CHECK(closeness(rvg, rv, 1e-6, 1e-5) <= 1);

  // Backward in training mode, with and without dx, from the saved statistics.
  const int64_t m = in.x.numel() / shape[1];
  const double sum_atol = 1e-5 * std::sqrt(double(m));
  for (bool need_dx : {true, false}) {
    CAPTURE(need_dx);
    const BatchNormGrads g = batch_norm_backward(in.dy, in.x, in.gamma, mean, invstd, true, need_dx);
    const BatchNormGrads gg =
        batch_norm_backward(gpu(in.dy), gpu(in.x), gpu(in.gamma), meang, invstdg, true, need_dx);
    CHECK(closeness(gg.dbeta, g.dbeta, sum_atol, 1e-5) <= 1);
    CHECK(closeness(gg.dgamma, g.dgamma, sum_atol, 1e-5) <= 1);
    CHECK(gg.dx.defined() == need_dx);
    if (need_dx) CHECK(closeness(gg.dx, g.dx, 1e-5, 1e-5) <= 1);
  }
}

void check_bn_eval(const Shape& shape, uint64_t seed) {
  CAPTURE(shape_str(shape));
  const BnInputs in = bn_inputs(shape, seed);
  const float eps = 1e-5f;
  const Tensor y = batch_norm_forward_eval(in.x, in.gamma, in.beta, in.running_mean, in.running_var, eps);
  const Tensor yg = batch_norm_forward_eval(gpu(in.x), gpu(in.gamma), gpu(in.beta), gpu(in.running_mean),
                                            gpu(in.running_var), eps);
  CHECK(closeness(yg, y, 1e-5, 1e-5) <= 1);

  // Backward in evaluation mode: the running statistics are constants.
  std::vector<float> inv = in.running_var.to_vector();
  for (float& v : inv) v = static_cast<float>(1.0 / std::sqrt(double(v) + eps));
  const Tensor invstd = Tensor::from_vector(inv, {shape[1]});
  const double sum_atol = 1e-5 * std::sqrt(double(in.x.numel() / shape[1]));
  for (bool need_dx : {true, false}) {
    CAPTURE(need_dx);
    const BatchNormGrads g = batch_norm_backward(in.dy, in.x, in.gamma, in.running_mean, invstd, false, need_dx);
    const BatchNormGrads gg = batch_norm_backward(gpu(in.dy), gpu(in.x), gpu(in.gamma), gpu(in.running_mean),
                                                  gpu(invstd), false, need_dx);
    CHECK(closeness(gg.dbeta, g.dbeta, sum_atol, 1e-5) <= 1);
    CHECK(closeness(gg.dgamma, g.dgamma, sum_atol, 1e-5) <= 1);
    CHECK(gg.dx.defined() == need_dx);
    if (need_dx) CHECK(closeness(gg.dx, g.dx, 1e-5, 1e-5) <= 1);
  }
}

}  // namespace

// With the TF32 switch on, as it is by default: it allows TF32 in convolutions, while the Linear
// layer's products stay float32 (PyTorch's defaults; TF32's operands would be off by about 1e-3
// relative, beyond these tolerances).
GPU_TEST_CASE("linear cuda: forward and both backwards match the CPU, in float32 whatever the TF32 switch") {
  const qnn::testing::TF32Switch tf32(true);
  check_linear(128, 64, 10, true, 1);  // ResNet-20's classifier at batch 128
  check_linear(128, 64, 10, false, 2);
  check_linear(7, 33, 5, true, 3);     // sizes that fit no tile
  check_linear(1, 1, 1, true, 4);
  check_linear(300, 129, 70, true, 5);
  check_linear(4, 0, 3, true, 6);  // empty sums: no inputs, no outputs, no rows
  check_linear(4, 5, 0, true, 7);
  check_linear(0, 5, 3, true, 8);
}

GPU_TEST_CASE("batch norm cuda: training forward, running statistics and backward match the CPU") {
  check_bn_training({8, 16, 12, 12}, 11);
  check_bn_training({32, 10}, 12);          // [N, C]
  check_bn_training({3, 5, 7, 9}, 13);      // odd sizes, one block per channel
  check_bn_training({64, 16, 32, 32}, 14);  // M = 65536: sixteen blocks per channel
  check_bn_training({2, 3, 1, 1}, 15);      // two values per channel
}

GPU_TEST_CASE("batch norm cuda: evaluation forward and backward match the CPU") {
  check_bn_eval({8, 16, 12, 12}, 21);
  check_bn_eval({32, 10}, 22);
  check_bn_eval({64, 16, 32, 32}, 23);
}

GPU_TEST_CASE("batch norm cuda: results repeat bit for bit") {
  const BnInputs in = bn_inputs({16, 8, 16, 16}, 31);
  Tensor rm1 = gpu(in.running_mean), rv1 = gpu(in.running_var), m1, s1;
  Tensor rm2 = gpu(in.running_mean), rv2 = gpu(in.running_var), m2, s2;
  const Tensor x = gpu(in.x), gamma = gpu(in.gamma), beta = gpu(in.beta), dy = gpu(in.dy);
  const Tensor y1 = batch_norm_forward_training(x, gamma, beta, rm1, rv1, 0.1f, 1e-5f, m1, s1);
  const Tensor y2 = batch_norm_forward_training(x, gamma, beta, rm2, rv2, 0.1f, 1e-5f, m2, s2);
  CHECK(y1.to_vector() == y2.to_vector());
  CHECK(rv1.to_vector() == rv2.to_vector());
  const BatchNormGrads g1 = batch_norm_backward(dy, x, gamma, m1, s1, true, true);
  const BatchNormGrads g2 = batch_norm_backward(dy, x, gamma, m2, s2, true, true);
  CHECK(g1.dx.to_vector() == g2.dx.to_vector());
  CHECK(g1.dgamma.to_vector() == g2.dgamma.to_vector());
}
