// Parity of the CUDA batch norm's fused forms (tensor/batchnorm.cu) with their CPU twins: the ReLU
// and residual-then-ReLU epilogues, the batch counter, the applied map, backward plain and with
// each of the three ReLU masks, and dgamma/dbeta added into existing gradients. Shapes cover both
// element widths of the kernels (planes a multiple of 4 floats, read 4 at a time, and not), a
// tensor that is not 16-byte aligned (one float into its buffer: read one at a time), [N, C]
// inputs, and channels split over several blocks (the last block's finalization and its counter);
// and channels-last inputs (tensor/tensor.h): channels read 4 at a time and not, several blocks of
// rows, and more channels than a block's slice (two slices of channels).
//
// Tolerances as in test_linear_bn_cuda.cpp: atol = rtol = 1e-5 for values, atol 1e-5 M^0.5 for
// the M-term sums dgamma and dbeta. ReLU masks are compared exactly (a value rounding to either
// side of zero on one device only is astronomically unlikely with these inputs).
#include <doctest.h>

#include <cmath>
#include <string>

#include "tensor/batchnorm.h"
#include "tensor/cuda_graph.h"
#include "tests/gpu.h"
#include "tests/tensor/batchnorm_inputs.h"

using namespace qnn;
using qnn::testing::closeness;
using qnn::testing::gpu;
using qnn::testing::sum_atol;

namespace {

// A copy of t on the GPU that starts one float into its buffer (not 16-byte aligned).
Tensor gpu_unaligned(const Tensor& t) {
  Tensor buffer({t.numel() + 1}, Device::CUDA);
  Tensor view = buffer.slice(1, t.shape());
  view.copy_from(t);
  return view;
}

struct Case {
  Shape shape;
  bool unaligned = false;
  bool channels_last = false;
};

std::string describe(const Case& k) {
  return shape_str(k.shape) + (k.unaligned ? " unaligned" : "") + (k.channels_last ? " channels-last" : "");
}

std::vector<Case> cases() {
  return {{{8, 16, 12, 12}},                // planes of 144 floats: 4 at a time
          {{8, 16, 12, 12}, true},          // the same, not aligned: 1 at a time
          {{3, 5, 7, 9}},                   // odd planes
          {{32, 10}},                       // [N, C]
          {{64, 4, 16, 16}},                // M = 16384: four blocks per channel
          {{8, 16, 12, 12}, false, true},   // channels-last, 4 channels at a time
          {{3, 5, 7, 9}, false, true},      // channels-last, odd channels: 1 at a time
          {{64, 4, 16, 16}, false, true},   // channels-last, 8 blocks of rows
          {{2, 1028, 2, 3}, false, true},   // 257 vectors of 4 channels: two slices
          {{2, 301, 2, 2}, false, true}};   // 301 single channels: two slices
}

// Where a case's tensors go on the GPU: a plain copy, one float into a buffer, or channels-last.
Tensor on_gpu(const Tensor& t, const Case& k) {
  if (k.unaligned) return gpu_unaligned(t);
  return k.channels_last && t.dim() == 4 ? gpu(t).channels_last() : gpu(t);
}

// What a fused forward gives, on one device.
struct Forward {
  Tensor y, mean, invstd, affine, running_mean, running_var, batches;
};

Forward forward(const testing::BatchNormInputs& in, bool residual, bool training, const Case* device_case) {
  auto put = [&](const Tensor& t) { return device_case ? on_gpu(t, *device_case) : t.clone(); };
  Forward f;
  f.running_mean = put(in.running_mean);
  f.running_var = put(in.running_var);
  f.batches = put(Tensor::full({}, 1.0f));
  const Tensor x = put(in.x), r = residual ? put(in.residual) : Tensor();
  if (training) {
    f.y = batch_norm_relu_forward_training(x, r, put(in.gamma), put(in.beta), f.running_mean, f.running_var, 0.1f,
                                           1e-5f, f.mean, f.invstd, &f.affine, &f.batches);
  } else {
    f.y = batch_norm_relu_forward_eval(x, r, put(in.gamma), put(in.beta), f.running_mean, f.running_var, 1e-5f,
                                       &f.affine);
    f.mean = f.running_mean;
    f.invstd = Tensor::from_vector(std::vector<float>(size_t(in.x.size(1))), {in.x.size(1)});
    for (int64_t c = 0; c < in.x.size(1); ++c)
      f.invstd.data()[c] = static_cast<float>(1.0 / std::sqrt(double(in.running_var.data()[c]) + 1e-5));
    f.invstd = put(f.invstd);
  }
  return f;
}

// Zero where y is zero: the ReLU's decisions.
std::vector<bool> positive(const Tensor& y) {
  std::vector<bool> p;
  for (float v : y.to_vector()) p.push_back(v > 0.0f);
  return p;
}

}  // namespace

GPU_TEST_CASE("batch norm cuda: fused ReLU and residual forward match the CPU") {
  uint64_t seed = 40;
  for (const Case& k : cases())
    for (bool training : {true, false})
      for (bool residual : {false, true}) {
        CAPTURE(describe(k)); CAPTURE(training); CAPTURE(residual);
        const testing::BatchNormInputs in = testing::batchnorm_inputs(k.shape, ++seed);
        const Forward cpu = forward(in, residual, training, nullptr);
        const Forward dev = forward(in, residual, training, &k);
        REQUIRE(dev.y.is_cuda());
        CHECK(dev.y.is_channels_last() == k.channels_last);
        CHECK(closeness(dev.y, cpu.y, 1e-5, 1e-5) <= 1);
        CHECK(positive(dev.y) == positive(cpu.y));
        CHECK(closeness(dev.affine, cpu.affine, 1e-5, 1e-5) <= 1);
        CHECK(closeness(dev.running_mean, cpu.running_mean, 1e-5, 1e-5) <= 1);
        CHECK(closeness(dev.running_var, cpu.running_var, 1e-5, 1e-5) <= 1);
        if (training) {
          CHECK(closeness(dev.mean, cpu.mean, 1e-5, 1e-5) <= 1);
          CHECK(closeness(dev.invstd, cpu.invstd, 1e-5, 1e-5) <= 1);
        }
        // Counted once, in training only, on both devices.
        CHECK(dev.batches.to_vector() == std::vector<float>{training ? 2.0f : 1.0f});
        CHECK(cpu.batches.to_vector() == dev.batches.to_vector());
      }
}

GPU_TEST_CASE("batch norm cuda: backward, plain and through the ReLU masks, adding into gradients, matches the CPU") {
  uint64_t seed = 60;
  for (const Case& k : cases())
    for (bool training : {true, false})
      for (BatchNormMask mask : {BatchNormMask::none, BatchNormMask::by_output, BatchNormMask::by_affine,
                                 BatchNormMask::by_output_kept})
        for (bool into : {false, true}) {
          const bool residual = mask == BatchNormMask::by_output_kept;
          const bool need_dx = !(into && mask == BatchNormMask::by_output);
          CAPTURE(describe(k)); CAPTURE(training); CAPTURE(int(mask)); CAPTURE(into); CAPTURE(need_dx);
          const testing::BatchNormInputs in = testing::batchnorm_inputs(k.shape, ++seed);
          const Forward cpu = forward(in, residual, training, nullptr);
          const Forward dev = forward(in, residual, training, &k);
          const int64_t c = k.shape[1];
          const Tensor start_dgamma = Tensor::uniform({c}, -1, 1, seed, 7);
          const Tensor start_dbeta = Tensor::uniform({c}, -1, 1, seed, 8);
          BatchNormGradTargets cpu_into, dev_into;
          if (into) {
            cpu_into = {start_dgamma.clone(), start_dbeta.clone()};
            dev_into = {gpu(start_dgamma), gpu(start_dbeta)};
          }
          const bool keep = mask == BatchNormMask::by_output_kept;
          const Tensor cpu_affine = mask == BatchNormMask::by_affine ? cpu.affine : Tensor();
          const Tensor dev_affine = mask == BatchNormMask::by_affine ? dev.affine : Tensor();
          const Tensor x_dev = on_gpu(in.x, k), dy_dev = on_gpu(in.dy, k);
          const bool relu = mask != BatchNormMask::none;  // none: plain batch norm, dy reaches it whole
          const BatchNormGrads g =
              relu ? batch_norm_relu_backward(in.dy, cpu.y, in.x, in.gamma, cpu.mean, cpu.invstd, training, need_dx,
                                              keep, cpu_affine, cpu_into)
                   : batch_norm_backward(in.dy, in.x, in.gamma, cpu.mean, cpu.invstd, training, need_dx, cpu_into);
          const BatchNormGrads gg =
              relu ? batch_norm_relu_backward(dy_dev, dev.y, x_dev, gpu(in.gamma), dev.mean, dev.invstd, training,
                                              need_dx, keep, dev_affine, dev_into)
                   : batch_norm_backward(dy_dev, x_dev, gpu(in.gamma), dev.mean, dev.invstd, training, need_dx,
                                         dev_into);
          CHECK(closeness(gg.dgamma, g.dgamma, sum_atol(k.shape), 1e-5) <= 1);
          CHECK(closeness(gg.dbeta, g.dbeta, sum_atol(k.shape), 1e-5) <= 1);
          if (into) {  // the targets themselves hold the sums
            CHECK(gg.dgamma.data() == dev_into.dgamma.data());
            CHECK(gg.dbeta.data() == dev_into.dbeta.data());
            CHECK(g.dgamma.data() == cpu_into.dgamma.data());
          }
          REQUIRE(gg.dx.defined() == need_dx);
          if (need_dx) CHECK(closeness(gg.dx, g.dx, 1e-5, 1e-5) <= 1);
          if (need_dx) CHECK(gg.dx.is_channels_last() == k.channels_last);
          REQUIRE(gg.dy_masked.defined() == keep);
          if (keep) CHECK(gg.dy_masked.to_vector() == g.dy_masked.to_vector());  // dy or +0: exact
        }
}

GPU_TEST_CASE("batch norm cuda: adding into gradients equals computing them and adding") {
  const Shape shape{64, 4, 16, 16};
  const testing::BatchNormInputs in = testing::batchnorm_inputs(shape, 80);
  const Case k{shape};
  const Forward dev = forward(in, false, true, &k);
  const Tensor x = gpu(in.x), dy = gpu(in.dy), gamma = gpu(in.gamma);
  const Tensor start = Tensor::uniform({4}, -1, 1, 80, 9);
  const BatchNormGrads fresh = batch_norm_relu_backward(dy, dev.y, x, gamma, dev.mean, dev.invstd, true, false,
                                                        false, dev.affine);
  BatchNormGradTargets into{gpu(start), gpu(start)};
  batch_norm_relu_backward(dy, dev.y, x, gamma, dev.mean, dev.invstd, true, false, false, dev.affine, into);
  const std::vector<float> s = start.to_vector(), dg = fresh.dgamma.to_vector(), db = fresh.dbeta.to_vector();
  const std::vector<float> got_dg = into.dgamma.to_vector(), got_db = into.dbeta.to_vector();
  for (size_t i = 0; i < s.size(); ++i) {
    CHECK(got_dg[i] == s[i] + dg[i]);
    CHECK(got_db[i] == s[i] + db[i]);
  }
}

// The finalizing block resets its counter: a second launch finalizes too.
GPU_TEST_CASE("batch norm cuda: several blocks per channel repeat bit for bit") {
  const testing::BatchNormInputs in = testing::batchnorm_inputs({64, 4, 16, 16}, 90);
  for (bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    const Case k{in.x.shape(), false, channels_last};
    const Forward a = forward(in, true, true, &k);
    const Forward b = forward(in, true, true, &k);
    CHECK(a.y.to_vector() == b.y.to_vector());
    CHECK(a.running_var.to_vector() == b.running_var.to_vector());
    const Tensor x = on_gpu(in.x, k), dy = on_gpu(in.dy, k), gamma = gpu(in.gamma);
    const BatchNormGrads g1 = batch_norm_relu_backward(dy, a.y, x, gamma, a.mean, a.invstd, true, true, true);
    const BatchNormGrads g2 = batch_norm_relu_backward(dy, b.y, x, gamma, b.mean, b.invstd, true, true, true);
    CHECK(g1.dx.to_vector() == g2.dx.to_vector());
    CHECK(g1.dgamma.to_vector() == g2.dgamma.to_vector());
  }
}

GPU_TEST_CASE("batch norm cuda: a NaN in a channel's batch makes its statistics NaN, as on the CPU") {
  testing::BatchNormInputs in = testing::batchnorm_inputs({4, 3, 5, 5}, 91);
  in.x.data()[7] = std::nanf("");  // channel 0 of image 0
  Tensor rm = in.running_mean.clone(), rv = in.running_var.clone(), mean, invstd;
  batch_norm_forward_training(in.x, in.gamma, in.beta, rm, rv, 0.1f, 1e-5f, mean, invstd);
  Tensor grm = gpu(in.running_mean), grv = gpu(in.running_var), gmean, ginvstd;
  batch_norm_forward_training(gpu(in.x), gpu(in.gamma), gpu(in.beta), grm, grv, 0.1f, 1e-5f, gmean, ginvstd);
  for (const Tensor* t : {&rv, &invstd, &grv, &ginvstd}) {
    const std::vector<float> v = t->to_vector();
    CHECK(std::isnan(v[0]));
    CHECK(std::isfinite(v[1]));
    CHECK(std::isfinite(v[2]));
  }
}

GPU_TEST_CASE("batch norm cuda: a channels-last input and a contiguous residual are refused") {
  const testing::BatchNormInputs in = testing::batchnorm_inputs({4, 8, 4, 4}, 92);
  const Tensor x = gpu(in.x).channels_last(), r = gpu(in.residual);
  Tensor rm = gpu(in.running_mean), rv = gpu(in.running_var), mean, invstd;
  CHECK_THROWS_WITH(batch_norm_relu_forward_training(x, r, gpu(in.gamma), gpu(in.beta), rm, rv, 0.1f, 1e-5f, mean,
                                                     invstd, nullptr, nullptr),
                    doctest::Contains("channels-last"));
}

// The fusions, counted: a training step's batch norm with its ReLU and residual join, forward and
// backward with the gradients added into gamma's and beta's, is four kernels (statistics, apply,
// sums, dx), with nothing else recorded in the graph (no separate ReLU, mask, counter or
// gradient addition).
GPU_TEST_CASE("batch norm cuda: forward and backward with ReLU and residual are four graph nodes") {
  const testing::BatchNormInputs in = testing::batchnorm_inputs({16, 8, 8, 8}, 95);
  for (bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    const Case k{in.x.shape(), false, channels_last};
    const Tensor x = on_gpu(in.x, k), r = on_gpu(in.residual, k), dy = on_gpu(in.dy, k), gamma = gpu(in.gamma),
                 beta = gpu(in.beta);
    Tensor rm = gpu(in.running_mean), rv = gpu(in.running_var), batches = gpu(Tensor::full({}, 0.0f));
    BatchNormGradTargets into{gpu(Tensor::zeros({8})), gpu(Tensor::zeros({8}))};
    CudaGraph graph;
    graph.capture([&] {
      Tensor mean, invstd;
      const Tensor y = batch_norm_relu_forward_training(x, r, gamma, beta, rm, rv, 0.1f, 1e-5f, mean, invstd, nullptr,
                                                        &batches);
      batch_norm_relu_backward(dy, y, x, gamma, mean, invstd, true, true, true, Tensor(), into);
    });
    CHECK(graph.node_count() == 4);
    graph.replay();
    graph.replay();
    CHECK(batches.to_vector() == std::vector<float>{2.0f});  // counted by the replays, not the capture
  }
}
