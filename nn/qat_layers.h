// Quantization-aware training layers: Conv2d and Linear whose weights are fake-quantized on every
// forward pass, and the fake-quantized ReLU output that feeds the next quantized layer. The
// float weights stay the trained parameters; the forward pass sees their k-bit version and the
// backward pass uses each method's gradient (straight-through or learned), as in PyTorch's
// torch.ao.nn.qat modules. One QatQuantizer per tensor, for one of five methods:
//
//   linear  PyTorch's FakeQuantize (Jacob et al., CVPR 2018): weights signed, symmetric, per
//           output channel, moving-average min-max (PyTorch's default_per_channel_weight_fake_quant);
//           activations unsigned, affine, per tensor, moving-average min-max with constant 0.01.
//           Straight-through gradient.
//   lsq     Learned Step Size Quantization (Esser et al., ICLR 2020): a learned step per tensor,
//           signed zero-centred grid for weights, unsigned [0, 2^b - 1] for activations, initial
//           step 2 mean|v| / sqrt(Q_P) from the first tensor seen, gradient scale 1/sqrt(N Q_P).
//   pact    PACT (Choi et al., arXiv 1805.06085): activations clipped at a learned alpha (initial
//           value kPactInitialAlpha = 10, as in the paper's experiments), then quantized on
//           [0, alpha]; weights by DoReFa's quantizer, as the paper does.
//   dorefa  DoReFa-Net (Zhou et al., arXiv 1606.06160): weights through tanh normalised to
//           [-1, 1]; activations clipped to [0, 1] and quantized there.
//   wrpn    WRPN (Mishra et al., arXiv 1709.01134): weights clipped to [-1, 1] with a sign bit and
//           k - 1 magnitude bits, activations as DoReFa's; the network is widened separately
//           (QatSpec::width in nn/qat_resnet.h).
//
// State: learned steps ("scale") and PACT's alpha are parameters, so the optimizer trains them
// (and weight decay applies to them, which is PACT's L2 regularisation of alpha). Observer ranges
// ("min_val", "max_val") and "initialized" (1 once the range was observed or the step set) are
// buffers, so state_dict and checkpoints carry them; after loading a state call after_load() so
// the quantizer takes them up (a loaded step is not re-initialised). Observers update only in
// training mode: evaluation uses the ranges as trained.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "autograd/functions.h"
#include "nn/module.h"
#include "qat/fake_quantizer.h"

namespace qnn {

enum class QatMethod { None, Linear, Lsq, Pact, Dorefa, Wrpn };

// "none", "linear", "lsq", "pact", "dorefa", "wrpn"; an error listing them otherwise.
QatMethod parse_qat_method(const std::string& name);
const char* qat_method_name(QatMethod method);

constexpr float kPactInitialAlpha = 10.0f;

// Fake-quantizes one tensor: a layer's weight ([out, ...], channels = out) or its input
// activations (non-negative: a ReLU's output).
class QatQuantizer : public Module {
 public:
  enum class Role { Weight, Activation };
  // symmetric (linear activations only): a zero-centred grid, zero point at mid-range (PyTorch's
  // per_tensor_symmetric qscheme) instead of the affine [min, max] one.
  QatQuantizer(QatMethod method, int bits, Role role, int64_t channels = 1, bool symmetric = false);
  Variable forward(const Variable& x) override;
  // Takes up loaded buffers and parameters: an observed range, a set step.
  void after_load();
  // Observers stop updating (PyTorch's disable_observer); learned values keep training.
  void freeze_observer(bool frozen = true);
  // Weights only: the weight is already on this quantizer's grid (loaded from a low-bit export,
  // nn/qat_export.h), so forward passes it through unchanged.
  void set_prequantized(bool on = true) { prequantized_ = on; }
  // Off: forward passes its input through unquantized and updates nothing (PyTorch's
  // disable_fake_quant); post-training calibration (ptq/) watches the float model this way.
  void set_fake_quant_enabled(bool on) { fake_quant_enabled_ = on; }
  bool fake_quant_enabled() const { return fake_quant_enabled_; }
  // Called with every tensor forward is given, before anything else (calibration statistics).
  std::function<void(const Tensor&)> input_hook;
  QatMethod method() const { return method_; }
  int bits() const { return bits_; }
  Role role() const { return role_; }
  // linear / lsq: the fake quantizer (its qparams are the export's scales and zero points).
  FakeQuantizer* fake_quantizer() { return fq_.get(); }
  const Variable& alpha() const { return alpha_; }  // pact activations only

 private:
  QatMethod method_;
  int bits_;
  Role role_;
  std::unique_ptr<FakeQuantizer> fq_;
  Variable alpha_;
  Tensor *min_val_ = nullptr, *max_val_ = nullptr, *zero_point_ = nullptr, *initialized_ = nullptr;
  bool observer_frozen_ = false;
  bool prequantized_ = false;
  bool fake_quant_enabled_ = true;
};

class BatchNorm2d;

// Conv2d with a fake-quantized weight; parameter names as Conv2d's (weight, bias) plus the
// quantizer's under "weight_fake_quant". With a batch norm folded in (fold_batch_norm), forward
// returns the batch norm's output and the quantizer sees the folded weight (nn/qat_conv_bn.h).
class QatConv2d : public Module {
 public:
  QatConv2d(int64_t in_channels, int64_t out_channels, int kernel, int stride, int padding, QatMethod method,
            int bits);
  Variable forward(const Variable& x) override;
  // `bn` (owned elsewhere, applied after this convolution) is folded in from now on.
  void fold_batch_norm(BatchNorm2d* bn) { folded_bn_ = bn; }
  BatchNorm2d* folded_batch_norm() const { return folded_bn_; }
  Variable weight, bias;
  ConvParams params;
  std::shared_ptr<QatQuantizer> weight_fake_quant;
  // Called with the input before the convolution runs (post-training bias correction, ptq/).
  std::function<void(const Variable&)> input_hook;

 private:
  BatchNorm2d* folded_bn_ = nullptr;
};

// Linear (with bias) with a fake-quantized weight; names weight, bias, weight_fake_quant.*.
class QatLinear : public Module {
 public:
  QatLinear(int64_t in_features, int64_t out_features, QatMethod method, int bits);
  Variable forward(const Variable& x) override;
  Variable weight, bias;
  std::shared_ptr<QatQuantizer> weight_fake_quant;
  std::function<void(const Variable&)> input_hook;  // as QatConv2d's
};

}  // namespace qnn
