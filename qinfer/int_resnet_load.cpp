// Building the integer CIFAR ResNet from a QAT export (see qinfer/int_resnet.h): reading and
// checking the packed weights, the activation grids and the batch norms, and folding each batch
// norm into its convolution's requantization constants. qinfer/int_resnet.cpp runs the network.
#include "qinfer/int_resnet.h"

#include <cmath>
#include <cstdlib>

#include "nn/qat_export_format.h"
#include "qinfer/conv_direct.h"
#include "qinfer/stem.h"

namespace qnn::qinfer {

namespace {

constexpr double kBatchNormEps = 1e-5;  // BatchNorm2d's
// Bounds on what an export may ask the engine to build: far above a CIFAR ResNet's (its largest
// weight holds 36,864 values at width 1; its stem is 3x3 over 3 channels).
constexpr int64_t kMaxWeightElements = int64_t(1) << 24;
constexpr int64_t kMaxStemKernel = 7, kMaxInputChannels = 16;

}  // namespace

IntWeight read_export_weight(const SafetensorsFile& file, const std::string& name) {
  const std::string p = "qweight." + name;
  const int64_t bits = export_bit_width(file, p + ".bits");
  // Every method's qmin lies in [-128, 0]; the bound keeps the arithmetic below in range.
  const int64_t qmin = metadata_integer(file, p + ".qmin");
  QNN_CHECK(qmin >= -256 && qmin <= 256, file.path, ": ", p, ".qmin is ", qmin, ", expected -256 to 256");
  const std::vector<float> dims = file.get(p + ".shape").to_vector();
  QNN_CHECK(!dims.empty(), file.path, ": ", p, ".shape is empty");
  IntWeight w;
  int64_t numel = 1;
  for (float d : dims) {
    QNN_CHECK(d >= 1 && d <= float(kMaxWeightElements) && std::nearbyint(d) == d &&
                  numel <= kMaxWeightElements / int64_t(d),
              file.path, ": ", p, ".shape holds ", d, "; expected whole numbers from 1 making at most ",
              kMaxWeightElements, " values");
    w.shape.push_back(int64_t(d));
    numel *= w.shape.back();
  }
  const int64_t channels = w.shape[0], per_channel = numel / channels;
  const std::vector<float> s = file.get(p + ".scale").to_vector(), z = file.get(p + ".zero_point").to_vector();
  QNN_CHECK(int64_t(s.size()) == channels && int64_t(z.size()) == channels, file.path, ": ", p,
            ".scale and .zero_point need ", channels, " values, found ", s.size(), " and ", z.size());
  const std::vector<int> codes = unpack_codes(file.get(p + ".packed"), numel, bits);
  w.values.resize(numel);
  w.scale.resize(channels);
  w.bits = int(bits);
  for (int64_t c = 0; c < channels; ++c) {
    // Integer zero points give q - z; half-integer ones (DoReFa's n/2) give 2q - 2z at half the scale.
    const double z2 = 2.0 * double(z[c]);
    QNN_CHECK(std::nearbyint(z2) == z2 && std::fabs(z2) <= 1024, file.path, ": ", name, " channel ", c,
              " has zero point ", z[c], ", expected a multiple of 1/2 from -512 to 512");
    const bool half = std::nearbyint(double(z[c])) != double(z[c]);
    const int64_t factor = half ? 2 : 1, zi = int64_t(std::nearbyint(z2)) / (half ? 1 : 2);
    w.scale[c] = double(s[c]) / double(factor);
    w.code_scale.push_back(int(factor));
    w.code_base.push_back(int(factor * qmin - zi));
    for (int64_t i = 0; i < per_channel; ++i) {
      const int64_t q = codes[c * per_channel + i] + qmin, v = factor * q - zi;
      QNN_CHECK(v >= -128 && v <= 127, file.path, ": ", name, " holds the integer weight ", v,
                " (code ", q, ", zero point ", z[c], "), outside s8");
      w.values[c * per_channel + i] = int8_t(v);
    }
  }
  return w;
}

namespace {

ActivationGrid read_grid(const SafetensorsFile& file, const std::string& quantizer) {
  const std::string p = "qact." + quantizer;
  ActivationGrid g;
  const std::vector<float> scale = file.get(p + ".scale").to_vector(), zero = file.get(p + ".zero_point").to_vector();
  QNN_CHECK(scale.size() == 1 && zero.size() == 1, file.path, ": ", p, ".scale and .zero_point should hold one value each, found ",
            scale.size(), " and ", zero.size());
  g.scale = scale[0];
  const float z = zero[0];
  const int64_t bits = export_bit_width(file, p + ".bits");
  g.qmax = int32_t((1 << bits) - 1);
  QNN_CHECK(std::isfinite(g.scale) && g.scale > 0, file.path, ": ", p, ".scale is ", g.scale, ", expected > 0");
  QNN_CHECK(std::nearbyint(z) == z && z >= 0 && z <= g.qmax, file.path, ": ", p, ".zero_point is ", z,
            ", expected a whole number in [0, ", g.qmax, "]");
  g.zero_point = int32_t(z);
  return g;
}

// Batch norm bn_prefix as y = f x + b per channel.
void read_batch_norm(const SafetensorsFile& file, const std::string& bn, int64_t channels, std::vector<double>& f,
                     std::vector<double>& b) {
  const std::vector<float> gamma = file.get(bn + ".weight").to_vector(), beta = file.get(bn + ".bias").to_vector(),
                           mean = file.get(bn + ".running_mean").to_vector(),
                           var = file.get(bn + ".running_var").to_vector();
  QNN_CHECK(int64_t(gamma.size()) == channels && int64_t(beta.size()) == channels &&
                int64_t(mean.size()) == channels && int64_t(var.size()) == channels,
            file.path, ": batch norm ", bn, " should have ", channels, " channels");
  f.resize(channels);
  b.resize(channels);
  for (int64_t c = 0; c < channels; ++c) {
    f[c] = double(gamma[c]) / std::sqrt(double(var[c]) + kBatchNormEps);
    b[c] = double(beta[c]) - f[c] * double(mean[c]);
  }
}

// A requantization constant that is not a finite float (a zero or huge scale, a non-finite batch
// norm) would make the integer paths disagree and the outputs meaningless: refused at load.
void check_finite(const SafetensorsFile& file, const std::string& layer, int64_t channel, float multiplier, float bias) {
  QNN_CHECK(std::isfinite(multiplier) && std::isfinite(bias), file.path, ": ", layer, " output channel ", channel,
            " has the requantization multiplier ", multiplier, " and bias ", bias,
            "; its scales and batch norm should give finite values");
}

// A 3x3 convolution of the residual blocks, its batch norm folded, requantized from `in` to `out`.
IntConv make_conv(const SafetensorsFile& file, const std::string& conv, const std::string& bn, int64_t stride,
                  const ActivationGrid& in, const ActivationGrid& out, bool pack_4bit) {
  const IntWeight w = read_export_weight(file, conv + ".weight");
  QNN_CHECK(w.shape.size() == 4 && w.shape[2] == 3 && w.shape[3] == 3, file.path, ": ", conv,
            ".weight should be [out, in, 3, 3], found ", shape_str(w.shape));
  IntConv c;
  c.shape = {w.shape[1], w.shape[0], w.shape[2], stride, w.shape[2] / 2};
  const std::vector<int8_t> nhwc = conv_weight_nhwc(w.values, c.shape);
  const int64_t k = c.shape.kernel * c.shape.kernel * c.shape.in_channels;
  // Codes of 4 bits or fewer with one code_scale, every code's value in s8: kept two per byte.
  bool packable = pack_4bit && w.bits <= 4;
  for (size_t o = 0; o < w.code_scale.size(); ++o)
    packable = packable && w.code_scale[o] == w.code_scale[0] && w.code_base[o] >= -128 &&
               w.code_base[o] + 15 * w.code_scale[o] <= 127;
  if (packable) {
    const std::vector<int8_t> base(w.code_base.begin(), w.code_base.end());
    c.weights = pack_weights_4bit(nhwc.data(), c.shape.out_channels, k, w.code_scale[0], base.data());
  } else {
    c.weights = pack_weights(nhwc.data(), c.shape.out_channels, k);
  }
  std::vector<double> f, b;
  read_batch_norm(file, bn, c.shape.out_channels, f, b);
  c.in = in;
  c.out = out;
  for (int64_t o = 0; o < c.shape.out_channels; ++o) {
    c.offset.push_back(in.zero_point * c.weights.sums[o]);
    c.multiplier.push_back(float(double(in.scale) * w.scale[o] * f[o] / double(out.scale)));
    c.bias.push_back(float(b[o] / double(out.scale)));
    check_finite(file, conv, o, c.multiplier.back(), c.bias.back());
  }
  return c;
}

// The quantizers' state_dict path prefixes of a block: "layer2.0.".
std::string block_prefix(int stage, int64_t index) { return "layer" + std::to_string(stage) + "." + std::to_string(index) + "."; }

}  // namespace

bool is_qat_export(const SafetensorsFile& file) {
  auto it = file.metadata.find("format");
  return it != file.metadata.end() && it->second == kQatExportFormat;
}

IntResNet::IntResNet(const SafetensorsFile& file, const InputNormalization& fallback, bool pack_4bit) {
  QNN_CHECK(is_qat_export(file), file.path, ": not a qnn QAT export (metadata 'format' should be ", kQatExportFormat, ")");
  auto meta = [&](const std::string& key) { return file.metadata.count(key) ? file.metadata.at(key) : std::string(); };
  QNN_CHECK(meta("shortcut") != "B" && !file.has("qweight.layer2.0.shortcut.0.weight.shape"), file.path,
            ": the integer engine runs ResNets with option-A shortcuts; this export has projection (option B) shortcuts");
  description_ = (meta("arch").empty() ? std::string("resnet") : meta("arch")) + " " + meta("qat");
  norm_ = fallback;
  if (!meta("input_mean").empty() || !meta("input_stddev").empty()) {
    norm_ = {{}, {}};
    for (auto [key, out] : {std::pair{"input_mean", &norm_.mean}, std::pair{"input_stddev", &norm_.stddev}}) {
      std::string text = meta(key);
      for (size_t start = 0; start <= text.size();) {
        size_t end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        char* stop = nullptr;
        const std::string item = text.substr(start, end - start);
        out->push_back(std::strtof(item.c_str(), &stop));
        QNN_CHECK(!item.empty() && *stop == '\0', file.path, ": metadata '", key, "' should be comma-separated numbers, found '",
                  text, "'");
        start = end + 1;
      }
    }
  }

  // Stem: the image's pixels, one accumulator per (output, input) channel pair.
  const IntWeight w1 = read_export_weight(file, "conv1.weight");
  QNN_CHECK(w1.shape.size() == 4 && w1.shape[2] == w1.shape[3] && w1.shape[2] % 2 == 1 &&
                w1.shape[2] <= kMaxStemKernel && w1.shape[1] <= kMaxInputChannels,
            file.path, ": conv1.weight should be [out, in, k, k] with k odd and at most ", kMaxStemKernel,
            " and at most ", kMaxInputChannels, " input channels, found ", shape_str(w1.shape));
  const int64_t co = w1.shape[0], ci = w1.shape[1], k = w1.shape[2], taps = k * k;
  QNN_CHECK(int64_t(norm_.mean.size()) == ci && int64_t(norm_.stddev.size()) == ci, file.path, ": the input has ", ci,
            " channels, the normalisation ", norm_.mean.size(), " means and ", norm_.stddev.size(), " deviations");
  stem_shape_ = {ci, co * ci, k, 1, k / 2};
  std::vector<int8_t> expanded(co * ci * taps * ci, 0);
  for (int64_t o = 0; o < co; ++o)
    for (int64_t c = 0; c < ci; ++c)
      for (int64_t t = 0; t < taps; ++t) expanded[((c * co + o) * taps + t) * ci + c] = w1.values[(o * ci + c) * taps + t];
  stem_weights_ = pack_weights(expanded.data(), co * ci, taps * ci);
  if (direct_rgb_fits(stem_shape_))
    stem_rgb_weights_ = pack_weights(rgb_weights_as_4_channels(expanded, stem_shape_).data(), co * ci, 36);
  for (int64_t c = 0; c < ci; ++c) {
    QNN_CHECK(std::isfinite(norm_.mean[c]) && std::isfinite(norm_.stddev[c]) && norm_.stddev[c] > 0, file.path,
              ": input channel ", c, " has mean ", norm_.mean[c], " and standard deviation ", norm_.stddev[c],
              "; expected finite values and a positive deviation");
    pixel_scale_.push_back(float(1.0 / (255.0 * double(norm_.stddev[c]))));
    pixel_zero_.push_back(float(255.0 * double(norm_.mean[c])));
  }
  stem_out_ = read_grid(file, "act1_fake_quant");
  std::vector<double> f, b;
  read_batch_norm(file, "bn1", co, f, b);
  for (int64_t o = 0; o < co; ++o) {
    stem_multiplier_.push_back(float(w1.scale[o] * f[o] / double(stem_out_.scale)));
    stem_bias_.push_back(float(b[o] / double(stem_out_.scale)));
    check_finite(file, "conv1", o, stem_multiplier_.back(), stem_bias_.back());
  }
  const int64_t k1 = k + 1;
  stem_correction_.assign(k1 * k1 * k1 * k1 * co, 0.0f);
  for (int64_t h0 = 0; h0 <= k; ++h0)
    for (int64_t h1 = h0; h1 <= k; ++h1)
      for (int64_t w0 = 0; w0 <= k; ++w0)
        for (int64_t wl = w0; wl <= k; ++wl)
          for (int64_t o = 0; o < co; ++o) {
            double sum = 0;
            for (int64_t c = 0; c < ci; ++c) {
              int64_t ws = 0;
              for (int64_t kh = h0; kh < h1; ++kh)
                for (int64_t kw = w0; kw < wl; ++kw) ws += w1.values[(o * ci + c) * taps + kh * k + kw];
              sum += double(pixel_scale_[c]) * double(pixel_zero_[c]) * double(ws);
            }
            stem_correction_[(((h0 * k1 + h1) * k1 + w0) * k1 + wl) * co + o] = float(sum);
          }

  // Residual blocks, as many as the export holds per stage.
  ActivationGrid grid = stem_out_;
  int64_t channels = co;
  for (int stage = 1; file.has("qweight." + block_prefix(stage, 0) + "conv1.weight.shape"); ++stage)
    for (int64_t i = 0; file.has("qweight." + block_prefix(stage, i) + "conv1.weight.shape"); ++i) {
      const std::string p = block_prefix(stage, i);
      IntBlock block;
      const int64_t stride = stage > 1 && i == 0 ? 2 : 1;
      const ActivationGrid mid = read_grid(file, p + "act1_fake_quant"), out = read_grid(file, p + "act2_fake_quant");
      block.conv1 = make_conv(file, p + "conv1", p + "bn1", stride, grid, mid, pack_4bit);
      block.conv2 = make_conv(file, p + "conv2", p + "bn2", 1, mid, out, pack_4bit);
      const ConvShape &s1 = block.conv1.shape, &s2 = block.conv2.shape;
      QNN_CHECK(s1.in_channels == channels && s2.in_channels == s1.out_channels && s2.out_channels == s1.out_channels,
                file.path, ": ", p, "conv1 and conv2 take ", s1.in_channels, " and ", s2.in_channels, " channels and give ",
                s1.out_channels, " and ", s2.out_channels, "; the block's input has ", channels);
      QNN_CHECK(s1.in_channels <= s1.out_channels, file.path, ": ", p,
                "conv1 narrows the channels; option A only pads them");
      channels = s2.out_channels;
      block.pad_before = (block.conv1.shape.out_channels - block.conv1.shape.in_channels) / 2;
      block.residual_multiplier = float(double(grid.scale) / double(out.scale));
      blocks_.push_back(std::move(block));
      grid = out;
    }
  QNN_CHECK(!blocks_.empty(), file.path, ": no residual blocks (qweight.layer1.0.conv1.weight) found");

  // Head.
  head_in_ = read_grid(file, "fc_input_fake_quant");
  const IntWeight fc = read_export_weight(file, "fc.weight");
  QNN_CHECK(fc.shape.size() == 2, file.path, ": fc.weight should be [classes, features]");
  classes_ = fc.shape[0];
  features_ = fc.shape[1];
  QNN_CHECK(features_ == blocks_.back().conv2.shape.out_channels, file.path, ": fc.weight has ", features_,
            " features, the last block ", blocks_.back().conv2.shape.out_channels, " channels");
  fc_weight_ = fc.values;
  const std::vector<float> bias = file.get("fc.bias").to_vector();
  QNN_CHECK(int64_t(bias.size()) == classes_, file.path, ": fc.bias should have ", classes_, " values");
  for (int64_t j = 0; j < classes_; ++j) {
    int32_t sum = 0;
    for (int64_t i = 0; i < features_; ++i) sum += fc_weight_[j * features_ + i];
    fc_sums_.push_back(sum);
    fc_scale_.push_back(float(double(head_in_.scale) * fc.scale[j]));
    fc_bias_.push_back(bias[j]);
    check_finite(file, "fc", j, fc_scale_.back(), fc_bias_.back());
  }
}

}  // namespace qnn::qinfer
