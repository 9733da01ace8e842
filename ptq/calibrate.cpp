// Post-training calibration of a QAT ResNet (see ptq/calibrate.h).
#include "ptq/calibrate.h"

#include <cmath>
#include <functional>
#include <vector>

#include "nn/layers.h"
#include "nn/qat_conv_bn.h"
#include "ptq/bit_allocation.h"

namespace qnn {

namespace {

// A quantized weight layer and the batch norm after it (none for the classifier).
struct WeightLayer {
  std::string name;  // state_dict path, e.g. layer1.0.conv1
  QatConv2d* conv = nullptr;
  QatLinear* fc = nullptr;
  BatchNorm2d* bn = nullptr;
  Variable& weight() const { return conv ? conv->weight : fc->weight; }
  QatQuantizer& quantizer() const { return conv ? *conv->weight_fake_quant : *fc->weight_fake_quant; }
};

struct Activation {
  std::string name;
  QatQuantizer* quantizer;
};

// Depth first, in registration (= forward) order. A convolution's batch norm is the next batch
// norm registered beside it (conv1 -> bn1, conv2 -> bn2, shortcut.0 -> shortcut.1).
void collect(Module& m, const std::string& prefix, std::vector<WeightLayer>& layers, std::vector<Activation>& acts) {
  const auto& children = m.named_children();
  for (size_t i = 0; i < children.size(); ++i) {
    const std::string path = prefix + children[i].first;
    Module* child = children[i].second.get();
    if (auto* conv = dynamic_cast<QatConv2d*>(child)) {
      WeightLayer l{path, conv, nullptr, conv->folded_batch_norm()};
      for (size_t j = i + 1; j < children.size() && !l.bn; ++j) l.bn = dynamic_cast<BatchNorm2d*>(children[j].second.get());
      layers.push_back(l);
    } else if (auto* fc = dynamic_cast<QatLinear*>(child)) {
      layers.push_back({path, nullptr, fc, nullptr});
    } else if (auto* q = dynamic_cast<QatQuantizer*>(child)) {
      acts.push_back({path, q});
    } else {
      collect(*child, path + ".", layers, acts);
    }
  }
}

// f = gamma / sqrt(running_var + eps) per output channel of a folded layer; empty otherwise.
std::vector<double> fold_factors(const WeightLayer& l) {
  if (!l.conv || !l.conv->folded_batch_norm()) return {};
  const std::vector<float> f = fold_factor(*l.bn).value().to_vector();
  return std::vector<double>(f.begin(), f.end());
}

// Sets a linear quantizer's observed range per channel (or [1]) and makes it take it up.
void set_range(QatQuantizer& q, const std::vector<float>& min_val, const std::vector<float>& max_val) {
  for (auto& [name, t] : q.named_buffers()) {
    if (name == "min_val") t->copy_from(Tensor::from_vector(min_val, {int64_t(min_val.size())}));
    if (name == "max_val") t->copy_from(Tensor::from_vector(max_val, {int64_t(max_val.size())}));
    if (name == "initialized") t->fill(1.0f);
  }
  q.after_load();
}

// Runs the images through the model in batches (no graph, evaluation mode).
void run_batches(QatCifarResNet& model, const Tensor& images, int64_t batch_size) {
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size)
    model(Variable(images.narrow(begin, std::min(images.size(0), begin + batch_size))));
}

void calibrate_activations(QatCifarResNet& model, const std::vector<Activation>& acts, const Tensor& images,
                           const PtqOptions& options) {
  const size_t count = acts.size();
  std::vector<PositiveStats> stats(count);
  std::vector<Histogram> histograms(count);
  for (size_t k = 0; k < count; ++k)
    acts[k].quantizer->input_hook = [&stats, k](const Tensor& x) {
      const Tensor host = x.to(Device::CPU);
      stats[k].add(host.data(), host.numel());
    };
  run_batches(model, images, options.batch_size);
  if (needs_histogram(options.range.method)) {
    for (size_t k = 0; k < count; ++k) {
      histograms[k] = Histogram(stats[k].max, options.range.histogram_bins);
      acts[k].quantizer->input_hook = [&histograms, k](const Tensor& x) {
        const Tensor host = x.to(Device::CPU);
        std::vector<float> positive;
        for (int64_t i = 0; i < host.numel(); ++i)
          if (host.data()[i] > 0.0f) positive.push_back(host.data()[i]);
        histograms[k].add(positive.data(), int64_t(positive.size()));
      };
    }
    run_batches(model, images, options.batch_size);
  }
  for (size_t k = 0; k < count; ++k) {
    QatQuantizer& q = *acts[k].quantizer;
    q.input_hook = nullptr;
    const bool last = k + 1 == count;  // the classifier's input
    RangeOptions range = options.range;
    if (last && !options.clip_last) range.method = RangeMethod::MinMax;
    const QuantGrid grid = QuantGrid::activations(q.bits(), q.fake_quantizer()->config().symmetric);
    const double alpha = activation_clip(stats[k], histograms[k], grid, range);
    set_range(q, {0.0f}, {float(alpha)});
  }
}

// One layer's weight ranges; with bit allocation its weights move onto their channels' grids.
// Returns the channels' bits (empty without bit allocation).
std::vector<int> calibrate_weights(const WeightLayer& l, bool inner, const PtqOptions& options) {
  QatQuantizer& q = l.quantizer();
  Tensor& w = l.weight().value();
  const int64_t channels = w.size(0), per = w.numel() / channels;
  const std::vector<double> f = fold_factors(l);
  std::vector<float> eff = w.to_vector();  // what the quantizer sees: w f when folded
  if (!f.empty())
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < per; ++i) eff[size_t(c * per + i)] = float(eff[size_t(c * per + i)] * f[size_t(c)]);
  RangeOptions range = options.range;
  if (l.fc && !options.clip_last) range.method = RangeMethod::MinMax;
  const QuantGrid container = QuantGrid::weights(q.bits());
  std::vector<float> lo(static_cast<size_t>(channels)), hi(static_cast<size_t>(channels));
  std::vector<int> bits;
  if (options.bit_allocation && inner) {
    std::vector<double> spread;  // per-channel standard deviation, the paper's proxy for alpha
    for (int64_t c = 0; c < channels; ++c) {
      double mean = 0, sq = 0;
      for (int64_t i = 0; i < per; ++i) mean += eff[size_t(c * per + i)];
      mean /= double(per);
      for (int64_t i = 0; i < per; ++i) sq += std::pow(eff[size_t(c * per + i)] - mean, 2.0);
      spread.push_back(std::sqrt(sq / double(std::max<int64_t>(per - 1, 1))));
    }
    bits = allocate_bits(spread, options.budget_bits);
    std::vector<float> moved = w.to_vector();
    for (int64_t c = 0; c < channels; ++c) {
      float* row = eff.data() + c * per;
      double step = 0.0;  // the channel's own grid step; 0 bits: the channel is zero
      if (bits[size_t(c)] > 0) {
        const QuantGrid grid = QuantGrid::weights(bits[size_t(c)]);
        const double alpha = weight_clip(row, per, grid, range);
        if (alpha > 0.0) {
          step = grid.scale(alpha);
          for (int64_t i = 0; i < per; ++i) row[i] = float(grid.quantize(row[i], alpha));
        }
      }
      for (int64_t i = 0; i < per; ++i) {
        if (step == 0.0) row[i] = 0.0f;
        const double fc = f.empty() ? 1.0 : f[size_t(c)];
        moved[size_t(c * per + i)] = fc != 0.0 ? float(row[i] / fc) : 0.0f;
      }
      // The container's scale equals the channel's step: its (wider) grid holds the values exactly.
      hi[size_t(c)] = float(step * (container.qmax - container.qmin) / 2.0);
      lo[size_t(c)] = -hi[size_t(c)];
    }
    w.copy_from(Tensor::from_vector(moved, w.shape()));
  } else {
    const double whole = options.per_channel ? 0.0 : weight_clip(eff.data(), int64_t(eff.size()), container, range);
    for (int64_t c = 0; c < channels; ++c) {
      const double alpha = options.per_channel ? weight_clip(eff.data() + c * per, per, container, range) : whole;
      hi[size_t(c)] = float(alpha);
      lo[size_t(c)] = -float(alpha);
    }
  }
  set_range(q, lo, hi);
  return bits;
}

// Bias correction of one layer from its input x (see ptq/calibrate.h): d = mean of the output
// of (Q(W) - W), per output channel.
void correct_bias(const WeightLayer& l, const std::vector<float>& float_weight, const Variable& x) {
  const Tensor& w = l.weight().value();
  const int64_t channels = w.size(0), per = w.numel() / channels;
  const std::vector<double> f = fold_factors(l);
  std::vector<float> eff = w.to_vector(), reference = float_weight;
  if (!f.empty())
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < per; ++i) {
        eff[size_t(c * per + i)] = float(eff[size_t(c * per + i)] * f[size_t(c)]);
        reference[size_t(c * per + i)] = float(reference[size_t(c * per + i)] * f[size_t(c)]);
      }
  const std::vector<float> quantized =
      l.quantizer().forward(Variable(Tensor::from_vector(eff, w.shape()).to(w.device()))).value().to_vector();
  std::vector<float> delta(quantized.size());
  for (size_t i = 0; i < delta.size(); ++i) delta[i] = quantized[i] - reference[i];
  const Variable dw(Tensor::from_vector(delta, w.shape()).to(w.device()));
  const std::vector<float> out =
      (l.conv ? conv2d(x, dw, Variable(), l.conv->params) : linear(x, dw, Variable())).value().to_vector();
  const int64_t rows = x.size(0), positions = int64_t(out.size()) / (rows * channels);
  std::vector<double> shift(size_t(channels), 0.0);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < positions; ++p) shift[size_t(c)] += out[size_t((n * channels + c) * positions + p)];
  Tensor& bias = l.bn ? l.bn->bias.value() : l.fc ? l.fc->bias.value() : l.conv->bias.value();
  std::vector<float> b = bias.to_vector();
  for (int64_t c = 0; c < channels; ++c) {
    const double d = shift[size_t(c)] / double(rows * positions);
    // Unfolded: the batch norm multiplies the convolution's shift by f before adding beta.
    const double gain = l.bn && f.empty() ? double(l.bn->weight.value().to_vector()[size_t(c)]) /
                                                std::sqrt(double(l.bn->running_var->to_vector()[size_t(c)]) + l.bn->eps)
                                          : 1.0;
    b[size_t(c)] = float(b[size_t(c)] - gain * d);
  }
  bias.copy_from(Tensor::from_vector(b, bias.shape()).to(bias.device()));
}

// Whatever happens, the model leaves calibration with no hooks (they point into calibration's
// locals) and with fake quantization on.
struct CalibrationScope {
  QatCifarResNet& model;
  const std::vector<WeightLayer>& layers;
  const std::vector<Activation>& acts;
  ~CalibrationScope() {
    for (const WeightLayer& l : layers) {
      if (l.conv) l.conv->input_hook = nullptr;
      else l.fc->input_hook = nullptr;
    }
    for (const Activation& a : acts) a.quantizer->input_hook = nullptr;
    for (QatQuantizer* q : model.quantizers()) q->set_fake_quant_enabled(true);
  }
};

}  // namespace

PtqResult calibrate_ptq(QatCifarResNet& model, const Tensor& images, const PtqOptions& options) {
  QNN_CHECK(model.spec().method == QatMethod::Linear, "post-training quantization calibrates the linear method's "
            "observers; this model is ", model.spec().describe());
  QNN_CHECK(images.dim() == 4 && images.size(0) > 0, "calibration needs images [N, C, H, W], got ",
            shape_str(images.shape()));
  QNN_CHECK(options.batch_size > 0, "the calibration batch size must be positive, got ", options.batch_size);
  QNN_CHECK(!options.bit_allocation || model.spec().weight_bits == 8,
            "bit allocation keeps its weights in 8-bit containers: build the model with weight_bits 8, not ",
            model.spec().weight_bits);
  QNN_CHECK(!options.bit_allocation || (options.budget_bits >= 1 && options.budget_bits <= 4),
            "bit allocation applies to budgets of 1 to 4 bits a channel, got ", options.budget_bits);
  std::vector<WeightLayer> layers;
  std::vector<Activation> acts;
  collect(model, "", layers, acts);
  for (const WeightLayer& l : layers)
    QNN_CHECK(l.fc || l.bn || l.conv->bias.defined(), l.name, ": a convolution without batch norm or bias");
  model.eval();
  NoGradGuard no_grad;
  const CalibrationScope scope{model, layers, acts};
  for (QatQuantizer* q : model.quantizers()) q->set_fake_quant_enabled(false);
  calibrate_activations(model, acts, images, options);

  PtqResult result;
  std::vector<std::vector<float>> float_weights;
  double bit_sum = 0, channel_count = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    float_weights.push_back(layers[i].weight().value().to_vector());
    const bool inner = i > 0 && !layers[i].fc;
    const std::vector<int> bits = calibrate_weights(layers[i], inner, options);
    if (!bits.empty()) {
      std::string text;
      for (int b : bits) text += (text.empty() ? "" : ",") + std::to_string(b), bit_sum += b, ++channel_count;
      result.metadata["qweight." + layers[i].name + ".weight.channel_bits"] = text;
    } else if (inner) {
      bit_sum += double(layers[i].quantizer().bits()) * double(layers[i].weight().size(0));
      channel_count += double(layers[i].weight().size(0));
    }
  }
  result.inner_weight_bits = channel_count > 0 ? bit_sum / channel_count : 0.0;
  for (QatQuantizer* q : model.quantizers()) q->set_fake_quant_enabled(true);

  if (options.bias_correction) {
    for (size_t i = 0; i < layers.size(); ++i) {
      const WeightLayer& l = layers[i];
      const std::vector<float>* reference = &float_weights[i];
      std::function<void(const Variable&)> hook = [l, reference](const Variable& x) { correct_bias(l, *reference, x); };
      if (l.conv) l.conv->input_hook = hook;
      else l.fc->input_hook = hook;
    }
    model(Variable(images));
  }
  return result;
}

}  // namespace qnn
