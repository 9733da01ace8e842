// Parity of the CUDA convolution (tensor/conv.cu, tensor/conv_gemm.cu) with the CPU one: the
// same random inputs through both, for ResNet-20's shapes (3x3 stride 1 and 2 with padding 1,
// the 1x1 stride-2 projection), odd sizes and a non-square kernel, with and without bias, each
// through cuDNN (default and deterministic algorithms) and through our im2col + cuBLAS path
// (backend_options().cudnn = false); backward weight adds into a non-zero dw and db, and
// conv2d_backward_data_add into a non-zero dx. Each case runs with NCHW and with channels-last
// GPU images (tensor/tensor.h), whose results must come back channels-last; with channels-last
// images cuDNN multiplies a KRSC copy of the weight (conv2d_weight_for).
//
// Tolerance: both sides compute in fp32 (TF32 off) but sum in different orders, and cuDNN may
// pick Winograd or FFT algorithms whose transforms add a little rounding of their own. A sum of
// L products of values in [-1, 1] then differs by far less than atol = 1e-5 + 2e-6 L, and
// rtol = 1e-4 covers the larger outputs; L is C*KH*KW (forward), O*KH*KW (backward data) or
// N*Ho*Wo (backward weight). A wrong tap, stride or padding is off by O(0.1) or more.
#include <doctest.h>

#include <string>
#include <vector>

#include "tensor/conv.h"
#include "tests/gpu.h"

using namespace qnn;
using qnn::testing::closeness;

namespace {

// Sets the backend switches for one scope and restores all of them (tf32 included) after.
struct Backend {
  explicit Backend(bool cudnn, bool deterministic) : saved(backend_options()) {
    backend_options().cudnn = cudnn;
    backend_options().deterministic = deterministic;
  }
  ~Backend() { backend_options() = saved; }
  BackendOptions saved;
};

struct ConvCase {
  Shape x, w;
  ConvParams p;
  bool bias;
};

double atol_for(int64_t reduction) { return 1e-5 + 2e-6 * double(reduction); }
constexpr double kRtol = 1e-4;

// Runs forward, backward data and backward weight on both devices and compares; the GPU's images
// (x, dy, dx) are channels-last if asked.
void check_parity(const ConvCase& k, uint64_t seed, bool channels_last = false) {
  auto images = [&](const Tensor& t) { return channels_last ? t.to(Device::CUDA).channels_last() : t.to(Device::CUDA); };
  const int64_t n = k.x[0], c = k.x[1], o = k.w[0], kh = k.w[2], kw = k.w[3];
  const int64_t ho = conv_out_size(k.x[2], kh, k.p), wo = conv_out_size(k.x[3], kw, k.p);
  const Tensor x = Tensor::uniform(k.x, -1, 1, seed, 0);
  const Tensor w = Tensor::uniform(k.w, -1, 1, seed, 1);
  const Tensor bias = k.bias ? Tensor::uniform({o}, -1, 1, seed, 2) : Tensor();
  const Tensor dy = Tensor::uniform({n, o, ho, wo}, -1, 1, seed, 3);
  const Tensor dw0 = Tensor::uniform(k.w, -1, 1, seed, 4);  // non-zero: backward weight adds
  const Tensor db0 = Tensor::uniform({o}, -1, 1, seed, 5);

  const Tensor xg = images(x), wg = w.to(Device::CUDA), dyg = images(dy);
  const Tensor bg = k.bias ? bias.to(Device::CUDA) : Tensor();

  const Tensor y = conv2d_forward(x, w, bias, k.p);
  const Tensor yg = conv2d_forward(xg, wg, bg, k.p);
  REQUIRE(yg.is_cuda());
  REQUIRE(yg.shape() == y.shape());
  CHECK(yg.is_channels_last() == channels_last);
  CHECK(closeness(yg, y, atol_for(c * kh * kw), kRtol) <= 1);

  // Added into a non-zero dx, before any other backward data call of the shape: the algorithm
  // search (which writes into the buffer it times on) runs here and must leave dx alone.
  const Tensor dx0 = Tensor::uniform(k.x, -1, 1, seed, 6);
  Tensor dx_sum = dx0.clone(), dx_sumg = images(dx0);
  conv2d_backward_data_add(dy, w, dx_sum, k.p);
  conv2d_backward_data_add(dyg, wg, dx_sumg, k.p);
  CHECK(closeness(dx_sumg, dx_sum, atol_for(o * kh * kw), kRtol) <= 1);

  const Tensor dx = conv2d_backward_data(dy, w, k.x, k.p);
  const Tensor dxg = conv2d_backward_data(dyg, wg, k.x, k.p);
  REQUIRE(dxg.shape() == dx.shape());
  CHECK(dxg.is_channels_last() == channels_last);
  CHECK(closeness(dxg, dx, atol_for(o * kh * kw), kRtol) <= 1);

  Tensor dw = dw0.clone(), db = db0.clone();
  Tensor dwg = dw0.to(Device::CUDA), dbg = db0.to(Device::CUDA);
  Tensor no_db, no_dbg;
  conv2d_backward_weight(x, dy, dw, k.bias ? db : no_db, k.p);
  conv2d_backward_weight(xg, dyg, dwg, k.bias ? dbg : no_dbg, k.p);
  CHECK(closeness(dwg, dw, atol_for(n * ho * wo), kRtol) <= 1);
  if (k.bias) CHECK(closeness(dbg, db, atol_for(n * ho * wo), kRtol) <= 1);
}

std::vector<ConvCase> cases() {
  return {
      {{4, 16, 32, 32}, {16, 16, 3, 3}, {1, 1}, false},  // ResNet-20 stage 1
      {{4, 16, 32, 32}, {32, 16, 3, 3}, {2, 1}, false},  // stage 2's downsampling conv
      {{4, 32, 16, 16}, {32, 32, 3, 3}, {1, 1}, true},
      {{4, 16, 32, 32}, {32, 16, 1, 1}, {2, 0}, false},  // 1x1 stride-2 projection
      {{4, 3, 32, 32}, {16, 3, 3, 3}, {1, 1}, true},     // the stem
      {{3, 5, 7, 9}, {6, 5, 3, 3}, {2, 1}, true},        // odd sizes
      {{2, 7, 11, 6}, {5, 7, 3, 2}, {1, 1}, true},       // non-square kernel
      {{1, 4, 5, 5}, {3, 4, 5, 5}, {1, 2}, false},       // kernel as large as the image
      {{2, 0, 5, 5}, {3, 0, 3, 3}, {1, 1}, true},        // no input channels: empty sums, the bias alone
      {{0, 4, 5, 5}, {3, 4, 3, 3}, {1, 1}, true},        // an empty batch
  };
}

std::string name(const ConvCase& k) {
  return str("x ", shape_str(k.x), " w ", shape_str(k.w), " stride ", k.p.stride, " pad ", k.p.padding,
             k.bias ? " bias" : "");
}

}  // namespace

GPU_TEST_CASE("conv cuda: cuDNN matches the CPU, forward and both backwards") {
  qnn::testing::NoTF32 no_tf32;
  Backend backend(true, false);
  uint64_t seed = 100;
  for (const ConvCase& k : cases())
    for (bool channels_last : {false, true}) {
      CAPTURE(name(k));
      CAPTURE(channels_last);
      check_parity(k, seed++, channels_last);
    }
}

GPU_TEST_CASE("conv cuda: cuDNN with deterministic algorithms matches the CPU and repeats bit for bit") {
  qnn::testing::NoTF32 no_tf32;
  Backend backend(true, true);
  uint64_t seed = 200;
  for (const ConvCase& k : cases())
    for (bool channels_last : {false, true}) {
      CAPTURE(name(k));
      CAPTURE(channels_last);
      check_parity(k, seed++, channels_last);
    }
  // Same inputs twice: identical weight gradients.
  const ConvCase k = cases()[0];  // a copy: cases() returns a temporary
  const Tensor x = Tensor::uniform(k.x, -1, 1, 7).to(Device::CUDA);
  const Tensor dy = Tensor::uniform({4, 16, 32, 32}, -1, 1, 8).to(Device::CUDA);
  Tensor db;
  Tensor dw1 = Tensor::zeros(k.w, Device::CUDA), dw2 = Tensor::zeros(k.w, Device::CUDA);
  conv2d_backward_weight(x, dy, dw1, db, k.p);
  conv2d_backward_weight(x, dy, dw2, db, k.p);
  CHECK(dw1.to_vector() == dw2.to_vector());
}

GPU_TEST_CASE("conv cuda: the im2col + cuBLAS path (--no-cudnn) matches the CPU") {
  qnn::testing::NoTF32 no_tf32;
  Backend backend(false, false);
  uint64_t seed = 300;
  for (const ConvCase& k : cases())
    for (bool channels_last : {false, true}) {
      CAPTURE(name(k));
      CAPTURE(channels_last);
      check_parity(k, seed++, channels_last);
    }
}

GPU_TEST_CASE("conv cuda: a batch larger than one im2col chunk") {
  // 64 MiB of columns hold 113 images of K*P = 144*1024: 160 images take two chunks.
  qnn::testing::NoTF32 no_tf32;
  Backend backend(false, false);
  check_parity({{160, 16, 32, 32}, {16, 16, 3, 3}, {1, 1}, true}, 400);
}

GPU_TEST_CASE("conv cuda: with TF32 on, results stay within TF32's rounding") {
  // TF32 keeps 10 mantissa bits (relative rounding 2^-11 ~ 5e-4 per product): a K-term sum of
  // products of values in [-1, 1] stays within ~5e-4 sqrt(K) of the fp32 result; allow 5e-3 K^0.5.
  Backend backend(true, false);  // restores tf32 too
  backend_options().tf32 = true;
  const Tensor x = Tensor::uniform({4, 16, 32, 32}, -1, 1, 9);
  const Tensor w = Tensor::uniform({16, 16, 3, 3}, -1, 1, 10);
  const Tensor y = conv2d_forward(x, w, Tensor(), {1, 1});
  const Tensor yg = conv2d_forward(x.to(Device::CUDA), w.to(Device::CUDA), Tensor(), {1, 1});
  CHECK(closeness(yg, y, 5e-3 * 12, 1e-2) <= 1);
}

// The bytes of a GPU float tensor as they lie in memory, whatever its format.
std::vector<float> memory_of(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  device_copy(out.data(), Device::CPU, t.raw(), Device::CUDA, t.nbytes());
  return out;
}

GPU_TEST_CASE("conv cuda: channels-last images multiply a KRSC copy of the weight, made once or per call alike") {
  qnn::testing::NoTF32 no_tf32;
  Backend backend(true, true);
  const int64_t o = 3, c = 4, kh = 3, kw = 2;
  const Tensor w = Tensor::uniform({o, c, kh, kw}, -1, 1, 30).to(Device::CUDA);
  const Tensor x = Tensor::uniform({2, c, 5, 6}, -1, 1, 31).to(Device::CUDA);
  const Tensor xl = x.channels_last();

  CHECK(conv2d_weight_for(x, w).raw() == w.raw());  // NCHW float images: the master itself
  const Tensor wk = conv2d_weight_for(xl, w);
  REQUIRE(wk.is_channels_last());
  CHECK(wk.shape() == w.shape());
  CHECK(wk.to_vector() == w.to_vector());
  const std::vector<float> master = w.to_vector(), krsc = memory_of(wk);
  for (int64_t i = 0; i < o; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t r = 0; r < kh * kw; ++r)
        CHECK(krsc[size_t((i * kh * kw + r) * c + ch)] == master[size_t((i * c + ch) * kh * kw + r)]);

  const ConvParams p{1, 1};
  const Tensor y = conv2d_forward(xl, wk, Tensor(), p);
  CHECK(y.to_vector() == conv2d_forward(xl, w, Tensor(), p).to_vector());
  const Tensor dy = Tensor::uniform(y.shape(), -1, 1, 32).to(Device::CUDA).channels_last();
  CHECK(conv2d_backward_data(dy, wk, x.shape(), p).to_vector() == conv2d_backward_data(dy, w, x.shape(), p).to_vector());
  // The weight gradient comes from cuDNN in KRSC and is added into the row-major dw: equal to the
  // NCHW images' gradient (deterministic algorithms, the emulator's fixed summation order).
  const Tensor dw0 = Tensor::uniform(w.shape(), -1, 1, 33).to(Device::CUDA);
  Tensor dw_last = dw0.clone(), dw_plain = dw0.clone(), no_db;
  conv2d_backward_weight(xl, dy, dw_last, no_db, p);
  conv2d_backward_weight(x, dy.contiguous(), dw_plain, no_db, p);
  CHECK(!dw_last.is_channels_last());
  CHECK(closeness(dw_last, dw_plain.to(Device::CPU), 1e-5, 1e-5) <= 1);

  const Tensor wb = conv2d_weight_for(xl.to_dtype(DType::bf16), w);  // bf16 images: bf16 and KRSC at once
  CHECK(wb.is_bf16());
  CHECK(wb.is_channels_last());
  CHECK(wb.to_vector() == w.to_dtype(DType::bf16).to_vector());
  // A weight handed over in another form than the images take (KRSC beside NCHW images, bf16 and
  // KRSC beside NCHW bf16 images) is converted for the call: the results are the master's.
  CHECK(conv2d_forward(x, wk, Tensor(), p).to_vector() == conv2d_forward(x, w, Tensor(), p).to_vector());
  const Tensor xb = x.to_dtype(DType::bf16);
  CHECK(conv2d_forward(xb, wb, Tensor(), p).to_vector() == conv2d_forward(xb, w, Tensor(), p).to_vector());
  backend_options().krsc_filters = false;  // cuDNN given the KCRS master beside NHWC images
  CHECK(conv2d_weight_for(xl, w).raw() == w.raw());
  CHECK(closeness(conv2d_forward(xl, w, Tensor(), p), y.to(Device::CPU), 1e-5, 1e-5) <= 1);
  Tensor dw_kcrs = dw0.clone();
  conv2d_backward_weight(xl, dy, dw_kcrs, no_db, p);
  CHECK(closeness(dw_kcrs, dw_plain.to(Device::CPU), 1e-5, 1e-5) <= 1);
  backend_options().krsc_filters = true;
  backend_options().cudnn = false;  // the im2col path multiplies a row-major weight
  CHECK(!conv2d_weight_for(xl, w).is_channels_last());
}

GPU_TEST_CASE("conv cuda: weights and weight gradients off 16-byte alignment (windows of a flat buffer) work alike") {
  qnn::testing::NoTF32 no_tf32;
  Backend backend(true, true);
  const Shape ws{3, 4, 3, 3};
  const Tensor master = Tensor::uniform(ws, -1, 1, 40).to(Device::CUDA);
  const Tensor x = Tensor::uniform({2, 4, 6, 6}, -1, 1, 41).to(Device::CUDA);
  Tensor flat_w = Tensor::zeros({1 + master.numel()}, Device::CUDA);
  Tensor w = flat_w.slice(1, ws);  // 4 bytes into its buffer
  w.copy_from(master);
  CHECK(conv2d_weight_for(x, master).raw() == master.raw());
  CHECK(conv2d_weight_for(x, w).raw() != w.raw());  // cuDNN gets an aligned copy
  const ConvParams p{1, 1};
  const Tensor y = conv2d_forward(x, master, Tensor(), p);
  CHECK(conv2d_forward(x, w, Tensor(), p).to_vector() == y.to_vector());
  const Tensor dy = Tensor::uniform(y.shape(), -1, 1, 42).to(Device::CUDA);
  CHECK(conv2d_backward_data(dy, w, x.shape(), p).to_vector() == conv2d_backward_data(dy, master, x.shape(), p).to_vector());
  const Tensor dw0 = Tensor::uniform(ws, -1, 1, 43).to(Device::CUDA);
  Tensor flat_g = Tensor::zeros({1 + master.numel()}, Device::CUDA);
  Tensor dw = flat_g.slice(1, ws), dw_aligned = dw0.clone(), no_db;
  dw.copy_from(dw0);
  conv2d_backward_weight(x, dy, dw, no_db, p);
  conv2d_backward_weight(x, dy, dw_aligned, no_db, p);
  CHECK(closeness(dw, dw_aligned.to(Device::CPU), 1e-5, 1e-5) <= 1);
  CHECK(flat_g.to_vector()[0] == 0.0f);  // nothing written before the window
}

GPU_TEST_CASE("conv cuda: a channels-last weight gradient is refused") {
  const Tensor x = Tensor::uniform({2, 4, 6, 6}, -1, 1, 1).to(Device::CUDA).channels_last();
  const Tensor dy = Tensor::uniform({2, 3, 6, 6}, -1, 1, 2).to(Device::CUDA).channels_last();
  Tensor dw = Tensor::zeros({3, 4, 3, 3}, Device::CUDA).channels_last(), db;
  CHECK_THROWS_WITH_AS(conv2d_backward_weight(x, dy, dw, db, {1, 1}),
                       doctest::Contains("accumulates in float32 [O, C, KH, KW] row-major"), Error);
}

GPU_TEST_CASE("conv cuda: images in two memory formats are a clear error") {
  const Tensor x = Tensor::uniform({2, 4, 6, 6}, -1, 1, 1).to(Device::CUDA).channels_last();
  const Tensor dy = Tensor::uniform({2, 3, 6, 6}, -1, 1, 2).to(Device::CUDA);
  Tensor dw = Tensor::zeros({3, 4, 3, 3}, Device::CUDA), db;
  CHECK_THROWS_WITH_AS(conv2d_backward_weight(x, dy, dw, db, {1, 1}), doctest::Contains("channels-last"), Error);
}

GPU_TEST_CASE("conv cuda: a CPU weight with a GPU input is a clear error") {
  const Tensor x = Tensor::uniform({1, 2, 5, 5}, -1, 1, 1).to(Device::CUDA);
  const Tensor w = Tensor::uniform({3, 2, 3, 3}, -1, 1, 2);
  CHECK_THROWS_WITH_AS(conv2d_forward(x, w, Tensor(), {1, 1}), doctest::Contains("CPU"), Error);
}
