// Low-bit export and its loader (see nn/qat_export.h and docs/qat-export.md).
#include "nn/qat_export.h"

#include <cmath>

#include "nn/qat_conv_bn.h"
#include "nn/state_dict.h"
#include "qat/pact.h"

namespace qnn {

namespace {

struct QuantizedWeight {
  std::string name;  // the weight's state_dict name, e.g. layer1.0.conv1.weight
  Variable weight;
  QatQuantizer* quantizer;
  BatchNorm2d* folded_bn = nullptr;  // the batch norm folded into this convolution, if any
};
struct QuantizedActivation {
  std::string name;  // the quantizer's path, e.g. layer1.0.act1_fake_quant
  QatQuantizer* quantizer;
};

void collect(Module& m, const std::string& prefix, std::vector<QuantizedWeight>& weights,
             std::vector<QuantizedActivation>& activations) {
  for (auto& [name, child] : m.named_children()) {
    const std::string path = prefix + name;
    if (auto* conv = dynamic_cast<QatConv2d*>(child.get()))
      weights.push_back({path + ".weight", conv->weight, conv->weight_fake_quant.get(), conv->folded_batch_norm()});
    else if (auto* fc = dynamic_cast<QatLinear*>(child.get()))
      weights.push_back({path + ".weight", fc->weight, fc->weight_fake_quant.get()});
    else if (auto* q = dynamic_cast<QatQuantizer*>(child.get()))
      activations.push_back({path, q});
    else
      collect(*child, path + ".", weights, activations);
  }
}

struct Grid {
  std::vector<float> scale, zero_point;  // per output channel
  int64_t qmin = 0, qmax = 0;
};

Grid weight_grid(QatQuantizer& q, int64_t channels) {
  Grid g;
  const int b = q.bits();
  float s = 0, z = 0;
  switch (q.method()) {
    case QatMethod::Linear:
    case QatMethod::Lsq: {
      FakeQuantizer& fq = *q.fake_quantizer();
      const QParams p = fq.qparams();
      g.scale = p.scale.to_vector();
      g.zero_point = p.zero_point.to_vector();
      if (g.scale.size() == 1) {
        g.scale.assign(channels, g.scale[0]);
        g.zero_point.assign(channels, g.zero_point[0]);
      }
      g.qmin = fq.range().qmin;
      g.qmax = fq.range().qmax;
      return g;
    }
    case QatMethod::Pact:
    case QatMethod::Dorefa:
      g.qmax = (int64_t(1) << b) - 1;
      s = 2.0f / float(g.qmax);
      z = float(g.qmax) / 2.0f;
      break;
    case QatMethod::Wrpn:
      g.qmax = (int64_t(1) << (b - 1)) - 1;
      g.qmin = -g.qmax;
      s = 1.0f / float(g.qmax);
      break;
    case QatMethod::None: break;
  }
  g.scale.assign(channels, s);
  g.zero_point.assign(channels, z);
  return g;
}

std::pair<float, float> activation_qparams(QatQuantizer& q) {
  const float n = float((int64_t(1) << q.bits()) - 1);
  switch (q.method()) {
    case QatMethod::Linear:
    case QatMethod::Lsq: {
      const QParams p = q.fake_quantizer()->qparams();
      return {p.scale.to_vector()[0], p.zero_point.to_vector()[0]};
    }
    case QatMethod::Pact: return {std::max(q.alpha().value().item(), kPactAlphaMin) / n, 0.0f};
    default: return {1.0f / n, 0.0f};
  }
}


Tensor shape_tensor(const Shape& shape) {
  std::vector<float> dims(shape.begin(), shape.end());
  return Tensor::from_vector(dims, {int64_t(dims.size())});
}

}  // namespace

void export_qat_model(QatCifarResNet& model, const std::string& path, std::map<std::string, std::string> metadata) {
  std::vector<QuantizedWeight> weights;
  std::vector<QuantizedActivation> activations;
  collect(model, "", weights, activations);
  const bool was_training = model.training();
  model.eval();
  NoGradGuard no_grad;
  std::vector<NamedTensor> out;
  std::map<std::string, bool> is_weight;
  for (QuantizedWeight& w : weights) {
    is_weight[w.name] = true;
    const int64_t channels = w.weight.size(0);
    Grid g = weight_grid(*w.quantizer, channels);
    // A folded convolution quantizes w * f (nn/qat_conv_bn.h); its integers are exported with the
    // scale s / f, so that (q - z) s / f followed by the unchanged batch norm is the folded layer.
    const Variable fold = w.folded_bn ? fold_factor(*w.folded_bn) : Variable();
    const Variable quantized = w.folded_bn ? mul_channels(w.weight, fold, 0) : w.weight;
    const std::vector<float> wq = w.quantizer->forward(quantized).value().to_vector();
    const int64_t per_channel = w.weight.numel() / channels;
    std::vector<int> codes(wq.size());
    for (size_t i = 0; i < wq.size(); ++i) {
      const int64_t c = int64_t(i) / per_channel;
      const float exact = wq[i] * (1.0f / g.scale[c]) + g.zero_point[c];
      const float q = std::nearbyint(exact);
      QNN_CHECK(std::fabs(q - exact) < 1e-2f && q >= g.qmin && q <= g.qmax, w.name, ": value ", wq[i], " at ", i,
                " is not on the quantizer's grid (q = ", exact, ", range [", g.qmin, ", ", g.qmax, "])");
      codes[i] = int(q - g.qmin);
    }
    if (w.folded_bn) {
      const std::vector<float> f = fold.value().to_vector();
      for (int64_t c = 0; c < channels; ++c) {
        QNN_CHECK(f[c] != 0.0f, w.name, ": output channel ", c, " has batch-norm weight 0, so it cannot be unfolded");
        g.scale[c] /= f[c];
      }
    }
    const std::string p = "qweight." + w.name;
    out.push_back({p + ".packed", pack_codes(codes, w.quantizer->bits()), false, true});
    out.push_back({p + ".scale", Tensor::from_vector(g.scale, {channels})});
    out.push_back({p + ".zero_point", Tensor::from_vector(g.zero_point, {channels})});
    out.push_back({p + ".shape", shape_tensor(w.weight.shape()), true});
    metadata[p + ".bits"] = std::to_string(w.quantizer->bits());
    metadata[p + ".qmin"] = std::to_string(g.qmin);
  }
  for (QuantizedActivation& a : activations) {
    const auto [s, z] = activation_qparams(*a.quantizer);
    out.push_back({"qact." + a.name + ".scale", Tensor::full({1}, s)});
    out.push_back({"qact." + a.name + ".zero_point", Tensor::full({1}, z)});
    metadata["qact." + a.name + ".bits"] = std::to_string(a.quantizer->bits());
  }
  for (const NamedTensor& t : state_dict(model))
    if (!is_weight.count(t.name)) out.push_back({t.name, t.tensor.to(Device::CPU), t.as_int64});
  metadata["format"] = kQatExportFormat;
  metadata["qat"] = model.spec().describe();
  metadata["method"] = qat_method_name(model.spec().method);
  metadata["width"] = std::to_string(model.spec().width);
  save_safetensors(path, out, metadata);
  model.train(was_training);
}

void load_qat_export(QatCifarResNet& model, const SafetensorsFile& file) {
  QNN_CHECK(file.metadata.count("format") && file.metadata.at("format") == kQatExportFormat, file.path,
            ": not a qnn QAT export (metadata 'format' should be ", kQatExportFormat, ")");
  QNN_CHECK(file.metadata.count("qat") && file.metadata.at("qat") == model.spec().describe(), file.path,
            ": the export is of a '", file.metadata.count("qat") ? file.metadata.at("qat") : "?",
            "' model; this model is '", model.spec().describe(), "'");
  std::vector<QuantizedWeight> weights;
  std::vector<QuantizedActivation> activations;
  collect(model, "", weights, activations);
  SafetensorsFile rest;
  rest.path = file.path;
  for (const NamedTensor& t : file.tensors)
    if (t.name.rfind("qweight.", 0) != 0 && t.name.rfind("qact.", 0) != 0) rest.tensors.push_back(t);
  for (QuantizedWeight& w : weights) {
    const std::string p = "qweight." + w.name;
    const int bits = export_bit_width(file, p + ".bits");
    QNN_CHECK(bits == w.quantizer->bits(), file.path, ": ", p, ".bits is ", bits, "; the model quantizes ", w.name,
              " to ", w.quantizer->bits(), " bits");
    const int64_t qmin = metadata_integer(file, p + ".qmin");
    const std::vector<float> dims = file.get(p + ".shape").to_vector();
    const Shape shape(dims.begin(), dims.end());
    QNN_CHECK(shape == w.weight.shape(), file.path, ": ", w.name, " has shape ", shape_str(shape),
              ", the model expects ", shape_str(w.weight.shape()));
    const int64_t channels = shape[0], per_channel = w.weight.numel() / channels;
    const std::vector<float> s = file.get(p + ".scale").to_vector(), z = file.get(p + ".zero_point").to_vector();
    QNN_CHECK(int64_t(s.size()) == channels && int64_t(z.size()) == channels, file.path, ": ", p,
              ".scale and .zero_point need ", channels, " values");
    const std::vector<int> codes = unpack_codes(file.get(p + ".packed"), w.weight.numel(), bits);
    // (q - z) s, in the float operations of the method's own forward pass, so the reloaded
    // weights are bit for bit the trained model's: DoReFa's 2 (k / n) - 1 and WRPN's q / m
    // differ from (q - z) s in the last bit.
    const QatMethod method = w.quantizer->method();
    const float n = float((int64_t(1) << bits) - 1), m = float((int64_t(1) << (bits - 1)) - 1);
    std::vector<float> values(codes.size());
    for (size_t i = 0; i < codes.size(); ++i) {
      const int64_t c = int64_t(i) / per_channel;
      const float q = float(codes[i] + qmin);
      if (method == QatMethod::Dorefa || method == QatMethod::Pact) values[i] = 2.0f * (q / n) - 1.0f;
      else if (method == QatMethod::Wrpn) values[i] = q / m;
      else values[i] = (q - z[c]) * s[c];
    }
    rest.tensors.push_back({w.name, Tensor::from_vector(values, shape)});
  }
  load_model_weights(model, rest);
  model.after_load();
  for (QuantizedWeight& w : weights) w.quantizer->set_prequantized(true);
}

}  // namespace qnn
