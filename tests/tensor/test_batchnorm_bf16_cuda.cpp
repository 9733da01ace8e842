// The CUDA batch norm on bf16 activations (tensor/batchnorm.cu): x, residual, y, dy, dx and the
// kept masked gradient in bf16, every per-channel tensor in float. Each case makes float inputs
// on the CPU, rounds them to bf16 on the GPU, and compares the GPU's results with the CPU's float
// batch norm of the *rounded* values (read back exactly): the GPU computes the same float values
// from the same inputs and rounds each output once, so
//   - bf16 outputs (y, dx) lie within one bf16 rounding of the CPU's float results: rtol 2^-8
//     (half an ulp of 8 significant bits) plus the float parity tolerance (1e-5, as
//     test_batchnorm_fused_cuda.cpp), and almost all of them equal round_to_bf16 of the CPU's
//     value exactly (a float difference of a few ulps crosses a rounding boundary rarely);
//   - float outputs (statistics, running statistics, the map, dgamma, dbeta) meet the float
//     parity tolerances: atol = rtol = 1e-5, atol 1e-5 M^0.5 for the M-term sums;
//   - the masked gradient (dy or +0) is exact.
// Shapes cover vectors of 4 (planes, or channels-last rows, a multiple of 4) and single values
// (odd planes, odd channels, a bf16 tensor 2 bytes into its buffer), a bf16 tensor 8 bytes into
// its buffer (aligned enough for 4 bf16, not for 4 floats), several blocks per channel and two
// channel slices. A last case checks that the comparison can tell: the bf16 results differ from
// the float batch norm of the unrounded inputs by far more than float tolerance.
#include <doctest.h>

#include <cmath>
#include <functional>
#include <string>

#include "tensor/batchnorm.h"
#include "tensor/bf16.h"
#include "tests/gpu.h"
#include "tests/tensor/batchnorm_inputs.h"

using namespace qnn;
using qnn::testing::closeness;
using qnn::testing::gpu;
using qnn::testing::sum_atol;

namespace {

constexpr double kRound = 1.0 / 256;  // 2^-8: one bf16 rounding, relative

struct Case {
  Shape shape;
  bool channels_last = false;
  int64_t offset = 0;  // bf16 elements into a buffer (contiguous only)
};

std::string describe(const Case& k) {
  return shape_str(k.shape) + (k.channels_last ? " channels-last" : "") +
         (k.offset ? " offset " + std::to_string(k.offset) : "");
}

std::vector<Case> cases() {
  return {{{8, 16, 12, 12}},              // planes of 144: 4 at a time
          {{3, 5, 7, 9}},                 // odd planes: 1 at a time
          {{32, 10}},                     // [N, C]
          {{64, 4, 16, 16}},              // four blocks per channel
          {{8, 16, 12, 12}, false, 4},    // 8 bytes in: still 4 at a time
          {{8, 16, 12, 12}, false, 1},    // 2 bytes in: 1 at a time
          {{8, 16, 12, 12}, true},        // channels-last, 4 channels at a time
          {{3, 5, 7, 9}, true},           // channels-last, odd channels: 1 at a time
          {{64, 4, 16, 16}, true},        // channels-last, several blocks of rows
          {{2, 1028, 2, 3}, true}};       // channels-last, two slices of channels
}

// A CPU float tensor rounded to bf16 on the GPU, placed as the case says.
Tensor bf16_on_gpu(const Tensor& t, const Case& k) {
  const Tensor b = gpu(t).to_dtype(DType::bf16);
  if (k.offset) {
    Tensor buffer({t.numel() + k.offset}, Device::CUDA, MemoryFormat::contiguous, DType::bf16);
    Tensor view = buffer.slice(k.offset, t.shape());
    view.copy_from(b);
    return view;
  }
  return k.channels_last && t.dim() == 4 ? b.channels_last() : b;
}

// The values a GPU tensor holds, as a row-major float tensor on the CPU (exact for bf16).
Tensor on_cpu(const Tensor& t) { return t.defined() ? t.to(Device::CPU) : Tensor(); }

using E = BatchNormEpilogue;
using M = BatchNormMask;

struct Forward {
  Tensor y, mean, invstd, affine, running_mean, running_var;
};

// Batch norm forward on x (and the residual for add_relu) where they lie, the per-channel tensors
// copied to the same device.
Forward forward(const Tensor& x, const Tensor& residual, const testing::BatchNormInputs& in, E e, bool training) {
  auto put = [&](const Tensor& t) { return x.is_cuda() ? gpu(t) : t.clone(); };
  Forward f;
  f.running_mean = put(in.running_mean);
  f.running_var = put(in.running_var);
  const Tensor gamma = put(in.gamma), beta = put(in.beta), r = e == E::add_relu ? residual : Tensor();
  if (training && e == E::none)
    f.y = batch_norm_forward_training(x, gamma, beta, f.running_mean, f.running_var, 0.1f, 1e-5f, f.mean, f.invstd);
  else if (training)
    f.y = batch_norm_relu_forward_training(x, r, gamma, beta, f.running_mean, f.running_var, 0.1f, 1e-5f, f.mean,
                                           f.invstd, &f.affine);
  else if (e == E::none)
    f.y = batch_norm_forward_eval(x, gamma, beta, f.running_mean, f.running_var, 1e-5f);
  else
    f.y = batch_norm_relu_forward_eval(x, r, gamma, beta, f.running_mean, f.running_var, 1e-5f, &f.affine);
  if (!training) {  // backward normalises with the running statistics
    f.mean = f.running_mean;
    std::vector<float> inv = in.running_var.to_vector();
    for (float& v : inv) v = static_cast<float>(1.0 / std::sqrt(double(v) + 1e-5));
    f.invstd = put(Tensor::from_vector(inv, {in.x.size(1)}));
  }
  return f;
}

// Backward with the mask: batch_norm_backward for none, batch_norm_relu_backward otherwise.
BatchNormGrads backward(const Tensor& dy, const Tensor& y, const Tensor& x, const Tensor& gamma, const Forward& f,
                        M mask, bool training, bool need_dx, const BatchNormGradTargets& into) {
  if (mask == M::none) return batch_norm_backward(dy, x, gamma, f.mean, f.invstd, training, need_dx, into);
  return batch_norm_relu_backward(dy, y, x, gamma, f.mean, f.invstd, training, need_dx, mask == M::by_output_kept,
                                  mask == M::by_affine ? f.affine : Tensor(), into);
}

// A bf16 GPU result against the CPU's float result from the same rounded inputs: within one
// rounding, and almost always exactly the CPU's value rounded.
void check_rounded(const Tensor& dev, const Tensor& cpu, const Case& k) {
  REQUIRE(dev.is_cuda());
  CHECK(dev.dtype() == DType::bf16);
  CHECK(dev.is_channels_last() == (k.channels_last && dev.dim() == 4));
  CHECK(closeness(dev, cpu, 2e-5, kRound + 1e-5) <= 1);
  const std::vector<float> d = dev.to_vector(), c = round_to_bf16(cpu).to_vector();
  size_t equal = 0;
  for (size_t i = 0; i < d.size(); ++i) equal += d[i] == c[i];
  CHECK(double(equal) >= 0.98 * double(d.size()));
}

bool positive_equal(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.to_vector(), y = b.to_vector();
  for (size_t i = 0; i < x.size(); ++i)
    if ((x[i] > 0.0f) != (y[i] > 0.0f)) return false;
  return true;
}

// The message of the qnn::Error that f throws ("" if none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

GPU_TEST_CASE("batch norm cuda bf16: forward with each epilogue matches the CPU on the rounded values") {
  uint64_t seed = 300;
  for (const Case& k : cases())
    for (bool training : {true, false})
      for (E e : {E::none, E::relu, E::add_relu}) {
        CAPTURE(describe(k)); CAPTURE(training); CAPTURE(int(e));
        const testing::BatchNormInputs in = testing::batchnorm_inputs(k.shape, ++seed);
        const Tensor x = bf16_on_gpu(in.x, k), r = bf16_on_gpu(in.residual, k);
        const Forward dev = forward(x, r, in, e, training);
        const Forward cpu = forward(on_cpu(x), on_cpu(r), in, e, training);
        check_rounded(dev.y, cpu.y, k);
        if (e != E::none) CHECK(positive_equal(dev.y, cpu.y));
        CHECK(dev.running_mean.dtype() == DType::f32);
        CHECK(closeness(dev.running_mean, cpu.running_mean, 1e-5, 1e-5) <= 1);
        CHECK(closeness(dev.running_var, cpu.running_var, 1e-5, 1e-5) <= 1);
        if (training) {
          CHECK(dev.mean.dtype() == DType::f32);
          CHECK(closeness(dev.mean, cpu.mean, 1e-5, 1e-5) <= 1);
          CHECK(closeness(dev.invstd, cpu.invstd, 1e-5, 1e-5) <= 1);
        }
        REQUIRE(dev.affine.defined() == (e != E::none));
        if (e != E::none) CHECK(closeness(dev.affine, cpu.affine, 1e-5, 1e-5) <= 1);
      }
}

GPU_TEST_CASE("batch norm cuda bf16: backward with each mask matches the CPU on the rounded values") {
  uint64_t seed = 400;
  for (const Case& k : cases())
    for (bool training : {true, false})
      for (M mask : {M::none, M::by_output, M::by_affine, M::by_output_kept})
        for (bool need_dx : {true, false}) {
          CAPTURE(describe(k)); CAPTURE(training); CAPTURE(int(mask)); CAPTURE(need_dx);
          const testing::BatchNormInputs in = testing::batchnorm_inputs(k.shape, ++seed);
          const E e = mask == M::none ? E::none : mask == M::by_output_kept ? E::add_relu : E::relu;
          const Tensor x = bf16_on_gpu(in.x, k), r = bf16_on_gpu(in.residual, k), dy = bf16_on_gpu(in.dy, k);
          const Forward dev = forward(x, r, in, e, training);
          const Forward cpu = forward(on_cpu(x), on_cpu(r), in, e, training);
          // Without dx, the gradients are added into existing ones.
          const int64_t c = k.shape[1];
          const Tensor start_dgamma = Tensor::uniform({c}, -1, 1, seed, 7);
          const Tensor start_dbeta = Tensor::uniform({c}, -1, 1, seed, 8);
          BatchNormGradTargets cpu_into, dev_into;
          if (!need_dx) {
            cpu_into = {start_dgamma.clone(), start_dbeta.clone()};
            dev_into = {gpu(start_dgamma), gpu(start_dbeta)};
          }
          // The CPU reads the very y the GPU masks with: the bf16 output, read back.
          const BatchNormGrads g =
              backward(on_cpu(dy), on_cpu(dev.y), on_cpu(x), in.gamma, cpu, mask, training, need_dx, cpu_into);
          const BatchNormGrads gg = backward(dy, dev.y, x, gpu(in.gamma), dev, mask, training, need_dx, dev_into);
          CHECK(gg.dgamma.dtype() == DType::f32);
          CHECK(closeness(gg.dgamma, g.dgamma, sum_atol(k.shape), 1e-5) <= 1);
          CHECK(closeness(gg.dbeta, g.dbeta, sum_atol(k.shape), 1e-5) <= 1);
          if (!need_dx) CHECK(gg.dgamma.raw() == dev_into.dgamma.raw());
          REQUIRE(gg.dx.defined() == need_dx);
          if (need_dx) check_rounded(gg.dx, g.dx, k);
          REQUIRE(gg.dy_masked.defined() == (mask == M::by_output_kept));
          if (gg.dy_masked.defined()) {
            CHECK(gg.dy_masked.dtype() == DType::bf16);
            CHECK(gg.dy_masked.is_channels_last() == (k.channels_last && k.shape.size() == 4));
            CHECK(gg.dy_masked.to_vector() == g.dy_masked.to_vector());  // dy or +0: exact
          }
        }
}

// The comparisons above have the power to see whether the inputs were rounded: from the
// unrounded inputs, the GPU's float batch norm gives results farther from the bf16 ones than
// float tolerance. And bf16 results repeat bit for bit.
GPU_TEST_CASE("batch norm cuda bf16: results differ from float on the unrounded inputs, and repeat") {
  for (bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    const Case k{{8, 16, 12, 12}, channels_last};
    const testing::BatchNormInputs in = testing::batchnorm_inputs(k.shape, 500);
    auto place = [&](const Tensor& t) { return channels_last ? gpu(t).channels_last() : gpu(t); };
    const Tensor x = bf16_on_gpu(in.x, k), r = bf16_on_gpu(in.residual, k), dy = bf16_on_gpu(in.dy, k);
    const Forward bf = forward(x, r, in, E::add_relu, true);
    const Forward f = forward(place(in.x), place(in.residual), in, E::add_relu, true);
    CHECK(f.y.dtype() == DType::f32);
    CHECK(closeness(bf.y, f.y, 1e-5, 1e-5) > 1);
    CHECK(closeness(bf.mean, f.mean, 1e-5, 1e-5) > 1);
    CHECK(closeness(bf.running_var, f.running_var, 1e-5, 1e-5) > 1);
    const Tensor gamma = gpu(in.gamma);
    const BatchNormGrads gb = backward(dy, bf.y, x, gamma, bf, M::by_output_kept, true, true, {});
    const BatchNormGrads gf = backward(place(in.dy), f.y, place(in.x), gamma, f, M::by_output_kept, true, true, {});
    CHECK(closeness(gb.dgamma, gf.dgamma, sum_atol(k.shape), 1e-5) > 1);
    CHECK(closeness(gb.dx, gf.dx, 1e-5, 1e-5) > 1);

    const Forward again = forward(x, r, in, E::add_relu, true);
    CHECK(again.y.to_vector() == bf.y.to_vector());
    CHECK(again.running_var.to_vector() == bf.running_var.to_vector());
    const BatchNormGrads gb2 = backward(dy, again.y, x, gamma, again, M::by_output_kept, true, true, {});
    CHECK(gb2.dx.to_vector() == gb.dx.to_vector());
    CHECK(gb2.dgamma.to_vector() == gb.dgamma.to_vector());
  }
}

GPU_TEST_CASE("batch norm cuda bf16: mixed element types are refused, naming the op and the types") {
  const testing::BatchNormInputs in = testing::batchnorm_inputs({4, 8, 4, 4}, 600);
  const Tensor xb = gpu(in.x).to_dtype(DType::bf16), xf = gpu(in.x);
  const Tensor rf = gpu(in.residual), dyf = gpu(in.dy), dyb = dyf.to_dtype(DType::bf16);
  const Tensor gamma = gpu(in.gamma), beta = gpu(in.beta);
  Tensor rm = gpu(in.running_mean), rv = gpu(in.running_var), mean, invstd;
  auto names = [](const std::string& message, const char* op) {
    CAPTURE(message);
    CHECK(message.find(op) != std::string::npos);
    CHECK(message.find("bfloat16") != std::string::npos);
    CHECK(message.find("float32") != std::string::npos);
  };
  // A bf16 x with a float residual, and the other way round.
  names(error_of([&] {
          batch_norm_relu_forward_training(xb, rf, gamma, beta, rm, rv, 0.1f, 1e-5f, mean, invstd, nullptr, nullptr);
        }),
        "[batch_norm]");
  names(error_of([&] {
          batch_norm_relu_forward_eval(xf, rf.to_dtype(DType::bf16), gamma, beta, rm, rv, 1e-5f, nullptr);
        }),
        "[batch_norm]");
  // Backward: dy of the other type, or y of the other type.
  const Tensor y = batch_norm_relu_forward_training(xb, Tensor(), gamma, beta, rm, rv, 0.1f, 1e-5f, mean, invstd);
  CHECK(y.dtype() == DType::bf16);
  names(error_of([&] { batch_norm_backward(dyf, xb, gamma, mean, invstd, true, true); }), "[batch_norm_backward]");
  names(error_of([&] { batch_norm_backward(dyb, xf, gamma, mean, invstd, true, true); }), "[batch_norm_backward]");
  names(error_of([&] {
          batch_norm_relu_backward(dyb, y.to_dtype(DType::f32), xb, gamma, mean, invstd, true, true);
        }),
        "[batch_norm_backward]");
  // Per-channel tensors stay float.
  names(error_of([&] {
          batch_norm_forward_training(xb, gamma.to_dtype(DType::bf16), beta, rm, rv, 0.1f, 1e-5f, mean, invstd);
        }),
        "[batch_norm]");
}
