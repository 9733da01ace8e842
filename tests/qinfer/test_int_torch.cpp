// qnn's integer convolution against PyTorch 1.13's quantized Conv2d and ConvReLU2d (onednn engine)
// on the fixed scales of tests/fixtures/quantized_conv.safetensors (scripts/
// make_quantized_conv_fixture.py): the same u8 input and s8 per-channel weights, PyTorch's float
// bias, requantized with qnn's convention (one float multiplier s_in s_w / s_out per channel, the
// bias divided by s_out, round half to even, then the zero point; ReLU as the clamp at z_out).
#include <doctest.h>

#include <cmath>

#include "qinfer/conv.h"
#include "tensor/safetensors.h"

using namespace qnn;
using namespace qnn::qinfer;

TEST_CASE("qinfer torch: the integer convolution gives PyTorch's quantized Conv2d and ConvReLU2d codes") {
  const SafetensorsFile f = load_safetensors("tests/fixtures/quantized_conv.safetensors");
  for (const std::string c : {"stride1", "stride2"}) {
    CAPTURE(c);
    const std::vector<float> q = f.get(c + ".qparams").to_vector();
    const double s_in = q[0], s_out = q[2];
    const int32_t z_in = int32_t(q[1]), z_out = int32_t(q[3]);
    const Tensor& xt = f.get(c + ".x");
    const int64_t n = xt.size(0), ci = xt.size(1), h = xt.size(2), w = xt.size(3);
    const Tensor& wt = f.get(c + ".weight");
    const int64_t co = wt.size(0);
    const ConvShape s{ci, co, 3, int64_t(q[4]), 1};
    const int64_t oh = s.out_size(h), ow = s.out_size(w);
    const std::vector<float> xv = xt.to_vector(), wv = wt.to_vector(), ws = f.get(c + ".weight_scale").to_vector(),
                             bias = f.get(c + ".bias").to_vector();
    std::vector<uint8_t> x(xv.size());
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < ci; ++ch)
        for (int64_t p = 0; p < h * w; ++p) x[(i * h * w + p) * ci + ch] = uint8_t(xv[(i * ci + ch) * h * w + p]);
    std::vector<int8_t> weights(wv.begin(), wv.end());
    const PackedWeights packed = pack_weights(conv_weight_nhwc(weights, s).data(), co, 9 * ci);
    std::vector<int32_t> offset;
    std::vector<float> multiplier, bias_q;
    for (int64_t o = 0; o < co; ++o) {
      offset.push_back(z_in * packed.sums[o]);
      multiplier.push_back(float(s_in * double(ws[o]) / s_out));
      bias_q.push_back(float(double(bias[o]) / s_out));
    }
    for (bool relu : {false, true}) {
      CAPTURE(relu);
      Requant rq;
      rq.offset = offset.data();
      rq.multiplier = multiplier.data();
      rq.bias = bias_q.data();
      rq.zero_point = z_out;
      rq.lo = relu ? z_out : 0;
      rq.hi = 255;
      std::vector<uint8_t> y(n * oh * ow * co);
      conv2d_u8(x.data(), n, h, w, s, uint8_t(z_in), packed, rq, y.data());
      const std::vector<float> want = f.get(c + (relu ? ".y_relu" : ".y")).to_vector();
      REQUIRE(want.size() == y.size());
      int64_t differ = 0, clamped = 0;
      int max_diff = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t o = 0; o < co; ++o)
          for (int64_t p = 0; p < oh * ow; ++p) {
            const int a = int(want[(i * co + o) * oh * ow + p]), b = y[(i * oh * ow + p) * co + o];
            differ += a != b;
            clamped += a == 0 || a == 255;  // saturated (the ReLU's zeros are expected)
            max_diff = std::max(max_diff, std::abs(a - b));
          }
      const std::string module = c + (relu ? " ConvReLU2d" : " Conv2d");
      MESSAGE(module << ": " << differ << " of " << y.size() << " codes differ (max "
                << max_diff << "), " << clamped << " saturated");
      CHECK(differ == 0);
      CHECK(clamped < int64_t(y.size()) / 10);  // the codes spread over the range
    }
  }
}
