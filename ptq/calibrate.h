// Post-training quantization of a trained float CIFAR ResNet: the QAT ResNet of nn/qat_resnet.h
// with the linear method (Jacob et al. CVPR 2018: symmetric per-channel weight grids, affine
// activation grids), whose observers' ranges are set by calibration instead of training. The
// model then evaluates by fake quantization and exports with nn/qat_export.h, like a QAT model.
//
// calibrate_ptq(model, images, options), model built with QatMethod::Linear and the float
// weights loaded (batch norms folded in when its spec says so):
//   1. activations: the calibration images run through the float model (fake quantization off,
//      PyTorch's calibration mode), every activation quantizer's input is summarised (positive
//      count, sum, sum of squares, max; a histogram of the positive values for percentile, mse
//      and kl) and the range method (ptq/range_methods.h) sets its clip alpha: range [0, alpha];
//   2. weights: each convolution's and the classifier's weight (w * f when a batch norm is folded
//      in, f = gamma / sqrt(var + eps)) gets alpha per output channel or one per tensor: range
//      [-alpha, alpha]; with bit allocation (ptq/bit_allocation.h) the inner convolutions'
//      channels get their own bit widths (weights then hold their values on those grids, inside
//      8-bit containers);
//   3. bias correction (Finkelstein et al. 2019, "Fighting quantization bias with bias"; Nagel
//      et al. 2019, "Data-free quantization through weight equalization and bias correction";
//      Banner et al. 2019): quantizing a weight shifts its layer's mean output by
//      d_c = E[conv(x, Q(W) - W)]_c, the expectation over the calibration images and positions.
//      With the whole calibration set as one batch through the quantized model, each layer in
//      turn removes its own shift before its output is computed, so later layers see corrected
//      inputs: the batch norm's beta -= f d (a folded layer: beta -= d; the classifier: bias -= d).
// The classifier and its input are calibrated by min-max (not clipped) unless clip_last; their
// bits are the spec's first_last_bits (8), as are the first convolution's.
#pragma once
#include <map>
#include <string>

#include "nn/qat_resnet.h"
#include "ptq/range_methods.h"

namespace qnn {

struct PtqOptions {
  RangeOptions range;              // method (weights and activations), percentile, histogram bins
  bool per_channel = false;        // weights: alpha per output channel (else one per tensor)
  bool bias_correction = false;
  bool bit_allocation = false;     // inner convolutions: bits per output channel ...
  double budget_bits = 4;          // ... averaging this many (the model's weight_bits must be 8: containers)
  bool clip_last = false;          // classifier weights and input clipped by the method too
  int64_t batch_size = 128;        // calibration batches (bias correction: all images in one)
};

struct PtqResult {
  // Export metadata: "qweight.<weight>.channel_bits" = "4,3,5,..." for bit-allocated weights.
  std::map<std::string, std::string> metadata;
  double inner_weight_bits = 0;  // average bits of the inner convolutions' output channels
};

// images: [N, 3, H, W] normalised as for evaluation, on the model's device (the CPU).
PtqResult calibrate_ptq(QatCifarResNet& model, const Tensor& images, const PtqOptions& options);

}  // namespace qnn
