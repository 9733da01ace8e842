// Channels-last image batches on the GPU (tensor/tensor.h, docs/channels-last.md): the format's
// rules on the Tensor (conversions both ways, copies across formats and devices, which views and
// windows are allowed), element-wise ops keeping their inputs' format and refusing mixed ones, the
// per-channel scaling of batch-norm folding, and a ResNet's forward giving the NCHW logits.
// The op-by-op parity with the CPU is in the ops' own CUDA tests (conv, batch norm, pooling,
// shortcut) and the training steps in tests/train/test_training_cuda.cpp.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "nn/init.h"
#include "nn/resnet.h"
#include "tensor/channel_scale.h"
#include "tensor/elementwise.h"
#include "tests/gpu.h"
#include "tests/graph_values.h"

using namespace qnn;
using qnn::testing::closeness;
using qnn::testing::gpu;

namespace {

// What element (n, c, h, w) of a row-major tensor becomes in NHWC memory.
std::vector<float> nhwc_order(const Tensor& t) {
  const int64_t n = t.size(0), c = t.size(1), hw = t.size(2) * t.size(3);
  const std::vector<float> v = t.to_vector();
  std::vector<float> out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t p = 0; p < hw; ++p) out[(i * hw + p) * c + k] = v[(i * c + k) * hw + p];
  return out;
}

// The 4-D values of the autograd graph that ends at `out`, counted by format (leaves excepted).
struct FormatCount {
  int channels_last = 0, contiguous = 0;
};
FormatCount count_formats(const Variable& out) {
  FormatCount count;
  testing::for_each_activation(out, [&](const Tensor& v) {
    ++(v.is_channels_last() ? count.channels_last : count.contiguous);
  });
  return count;
}

// The raw memory of a tensor, in whatever order it lies.
std::vector<float> memory_of(const Tensor& t) {
  std::vector<float> out(size_t(t.numel()));
  device_copy(out.data(), Device::CPU, t.data(), t.device(), out.size() * sizeof(float));
  return out;
}

}  // namespace

GPU_TEST_CASE("channels-last: conversions lay the values out as NHWC and back") {
  for (const Shape& shape : {Shape{2, 3, 4, 5}, Shape{3, 40, 33, 2}, Shape{1, 1, 1, 1}, Shape{2, 33, 1, 1}}) {
    CAPTURE(shape_str(shape));
    const Tensor x = Tensor::normal(shape, 0, 1, 1);
    const Tensor cl = gpu(x).channels_last();
    REQUIRE(cl.is_channels_last());
    CHECK(cl.shape() == shape);
    CHECK(memory_of(cl) == nhwc_order(x));  // the layout itself
    CHECK(cl.to_vector() == x.to_vector());  // read back in row-major order
    CHECK(cl.contiguous().to_vector() == x.to_vector());
    CHECK(!cl.contiguous().is_channels_last());
    const Tensor back = cl.to(Device::CPU);
    CHECK(!back.is_channels_last());
    CHECK(back.to_vector() == x.to_vector());
    CHECK(cl.channels_last().data() == cl.data());  // already channels-last: the tensor itself
    const Tensor copy = cl.clone();
    CHECK(copy.is_channels_last());
    CHECK(memory_of(copy) == memory_of(cl));
  }
}

GPU_TEST_CASE("channels-last: copies between formats move the values to their places") {
  const Tensor x = Tensor::normal({2, 6, 3, 3}, 0, 1, 2);
  Tensor cl(x.shape(), Device::CUDA, MemoryFormat::channels_last);
  cl.copy_from(x);  // from the CPU
  CHECK(memory_of(cl) == nhwc_order(x));
  Tensor plain(x.shape(), Device::CUDA);
  plain.copy_from(cl);  // GPU to GPU, NHWC to NCHW
  CHECK(memory_of(plain) == x.to_vector());
  Tensor host(x.shape());
  host.copy_from(cl);  // to the CPU
  CHECK(host.to_vector() == x.to_vector());
  Tensor other_shape({2, 6, 9, 1}, Device::CUDA);
  CHECK_THROWS_WITH_AS(other_shape.copy_from(cl), doctest::Contains("equal shapes"), Error);
  Tensor other_cl({2, 3, 6, 3}, Device::CUDA, MemoryFormat::channels_last);  // same count, same format
  CHECK_THROWS_WITH_AS(other_cl.copy_from(cl), doctest::Contains("equal shapes"), Error);
}

GPU_TEST_CASE("channels-last: only 4-D GPU tensors, and only the views that are row-major too") {
  CHECK_THROWS_WITH_AS(Tensor({2, 3, 4, 4}, Device::CPU, MemoryFormat::channels_last), doctest::Contains("GPU"), Error);
  CHECK_THROWS_WITH_AS(Tensor({2, 3}, Device::CUDA, MemoryFormat::channels_last), doctest::Contains("4-D"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({2, 3}).channels_last(), doctest::Contains("4-D image batch on the GPU"), Error);
  const Tensor x = gpu(Tensor::normal({4, 3, 2, 2}, 0, 1, 3)).channels_last();
  CHECK_THROWS_WITH_AS(x.view({4, 12}), doctest::Contains("contiguous() first"), Error);
  CHECK_THROWS_WITH_AS(x.slice(0, {12}), doctest::Contains("contiguous() first"), Error);
  // [N, C, 1, 1] and [N, 1, H, W] lie the same in both formats: their views are plain.
  const Tensor pooled = gpu(Tensor::normal({4, 3, 1, 1}, 0, 1, 4)).channels_last();
  const Tensor flat = pooled.view({4, 3});
  CHECK(!flat.is_channels_last());
  CHECK(flat.to_vector() == pooled.to_vector());
  // Rows of images keep the format.
  const Tensor rows = x.narrow(1, 3);
  CHECK(rows.is_channels_last());
  CHECK(rows.shape() == Shape{2, 3, 2, 2});
  const std::vector<float> all = x.to_vector(), some = rows.to_vector();
  CHECK(some == std::vector<float>(all.begin() + 12, all.begin() + 36));
  const Tensor like = Tensor::empty_like(x);
  CHECK(like.is_channels_last());
  CHECK(like.shape() == x.shape());
}

GPU_TEST_CASE("channels-last: element-wise ops keep the format and refuse mixed ones") {
  const Tensor a = Tensor::normal({2, 5, 3, 3}, 0, 1, 5), b = Tensor::normal({2, 5, 3, 3}, 0, 1, 6);
  const Tensor ag = gpu(a).channels_last(), bg = gpu(b).channels_last();
  const Tensor sum = add(ag, bg), r = relu(ag), both = add_relu(ag, bg);
  CHECK(sum.is_channels_last());
  CHECK(r.is_channels_last());
  CHECK(sum.to_vector() == add(a, b).to_vector());
  CHECK(r.to_vector() == relu(a).to_vector());
  CHECK(both.to_vector() == add_relu(a, b).to_vector());
  CHECK_THROWS_WITH_AS(add(ag, gpu(b)), doctest::Contains("channels-last"), Error);
  Tensor into = gpu(a);
  CHECK_THROWS_WITH_AS(add_into(into, bg), doctest::Contains("memory formats differ"), Error);
  Tensor into_cl = ag.clone();
  add_into(into_cl, bg);
  CHECK(into_cl.to_vector() == add(a, b).to_vector());
}

GPU_TEST_CASE("channels-last: per-channel scaling along the channels equals the CPU bit for bit") {
  const Tensor x = Tensor::normal({3, 6, 4, 5}, 0, 1, 7), other = Tensor::normal({3, 6, 4, 5}, 0, 1, 8);
  const Tensor s = Tensor::uniform({6}, 0.5f, 2.0f, 9);
  const Tensor xg = gpu(x).channels_last(), og = gpu(other).channels_last(), sg = gpu(s);
  const Tensor y = channel_mul(xg, sg, 1), z = channel_div(xg, sg, 1);
  CHECK(y.is_channels_last());
  CHECK(y.to_vector() == channel_mul(x, s, 1).to_vector());
  CHECK(z.to_vector() == channel_div(x, s, 1).to_vector());
  // The same values summed in the same order as the CPU's NCHW walk.
  CHECK(channel_dot(xg, og, 1).to_vector() == channel_dot(gpu(x), gpu(other), 1).to_vector());
  CHECK_THROWS_WITH_AS(channel_mul(xg, gpu(Tensor::uniform({4}, 1, 2, 1)), 2), doctest::Contains("axis 0 or 1"), Error);
}

GPU_TEST_CASE("channels-last: a ResNet's logits and input gradient equal the NCHW run's") {
  qnn::testing::NoTF32 no_tf32;
  manual_seed(5);
  CifarResNet model(8);
  model.to(Device::CUDA);
  model.eval();
  const Tensor images = Tensor::normal({4, 3, 32, 32}, 0, 1, 10);
  auto run = [&](bool channels_last) {
    BackendOptions saved = backend_options();
    backend_options().channels_last = channels_last;
    Variable x(gpu(images), true);
    Variable logits = model.forward(x);
    const FormatCount formats = count_formats(logits);
    // ResNet-8's 7 convolutions, 7 batch norms and 2 shortcuts, and the input's conversion.
    CHECK(formats.channels_last == (channels_last ? 17 : 0));
    CHECK(formats.contiguous == (channels_last ? 0 : 16));
    mean(logits).backward();
    backend_options() = saved;
    CHECK(!x.grad().is_channels_last());  // the gradient comes back in the input's format
    return std::make_pair(logits.value().to_vector(), x.grad().to_vector());
  };
  const auto plain = run(false), cl = run(true);
  REQUIRE(plain.first.size() == cl.first.size());
  for (size_t i = 0; i < plain.first.size(); ++i) CHECK(cl.first[i] == doctest::Approx(plain.first[i]).epsilon(1e-5));
  double worst = 0;
  for (size_t i = 0; i < plain.second.size(); ++i)
    worst = std::max(worst, double(std::fabs(cl.second[i] - plain.second[i])));
  CHECK(worst < 1e-6);
}
