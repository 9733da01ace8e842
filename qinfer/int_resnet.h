// An integer CIFAR ResNet (He et al. 2016, option-A shortcuts) built from a QAT export
// (docs/qat-export.md, nn/qat_export.h) and run with integer arithmetic: u8 activations in NHWC
// between layers, s8 weights, s32 accumulators, and one float multiply-add per output for the
// requantization (Jacob et al., CVPR 2018; fbgemm's float multiplier). The arithmetic and the
// layout are written out in docs/integer-inference.md; in short:
//
//   input   the 8-bit pixels themselves: channel c's normalised value (p/255 - mean_c) / std_c is
//           (p - z_c) s_c with s_c = 1 / (255 std_c), z_c = 255 mean_c, so the image is exact
//   conv1   one s32 accumulator per (output channel, input channel); t = sum_c s_c acc_c - the
//           zero-point term of the taps inside the image, then v = t M + B
//   conv    batch norm folded: f = gamma / sqrt(var + eps); M = s_in s_w f / s_out,
//           B = (beta - f mu) / s_out; q = clamp(round((acc - z_in sum w) M + B) + z_out, z_out, qmax)
//   block   conv2's requantization adds the shortcut (x - z_x) s_x / s_out (option A: strided,
//           zero channels on both sides) before the ReLU's clamp
//   head    the average pool sums u8 codes in s32 and requantizes them to the classifier's input
//           grid; the classifier accumulates in s32 and its logits are dequantized to float
//
// Weights w = (q - z) s with integer z give s8 values q - z; DoReFa's and PACT's half-integer
// z = n/2 give 2q - n with the scale s / 2. Any method of the export loads (linear, lsq, pact,
// dorefa, wrpn, folded batch norms too); the residual blocks' 4- and 2-bit codes stay two per
// byte and are widened to s8 in the kernels (the VNNI instruction multiplies bytes), the stem's
// and the classifier's are unpacked to s8 when the model is built.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "qinfer/conv.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace qnn::qinfer {

// An activation grid: value = (q - zero_point) scale, q in [0, qmax].
struct ActivationGrid {
  float scale = 1;
  int32_t zero_point = 0, qmax = 255;
};

// A weight of the export as s8 integers: the real weight is values[i] * scale[c] for output
// channel c (the first axis); values in the file's order (row-major in `shape`).
// The export's codes give the values: values[c][i] = code_scale[c] * code + code_base[c] with
// code in [0, 2^bits) (what lets 4-bit weights be kept as codes, qinfer/gemm.h pack_weights_4bit).
struct IntWeight {
  Shape shape;
  std::vector<int8_t> values;
  std::vector<double> scale;
  int bits = 8;
  std::vector<int> code_scale, code_base;
};
// qweight.NAME of an export: its codes unpacked (2, 4 or 8 per byte as packed) and made s8,
// q - z (integer z) or 2q - 2z with half the scale (half-integer z).
IntWeight read_export_weight(const SafetensorsFile& file, const std::string& name);

// A convolution with its batch norm folded and its output requantized (see the header comment).
struct IntConv {
  ConvShape shape;
  PackedWeights weights;
  std::vector<int32_t> offset;
  std::vector<float> multiplier, bias;
  ActivationGrid in, out;
};

struct IntBlock {
  IntConv conv1, conv2;
  float residual_multiplier = 0;  // s_x / s_out
  int64_t pad_before = 0;         // option A: zero channels in front of the input's
};

// The per-channel normalisation the model was trained with: (p / 255 - mean) / stddev.
struct InputNormalization {
  std::vector<float> mean, stddev;
};

class IntResNet {
 public:
  // Builds the engine from an export file. Its metadata input_mean / input_stddev give the
  // normalisation when present; otherwise `fallback` does (an export written before they were
  // recorded). Errors name the file and what is wrong (not an export, a projection shortcut, a
  // missing tensor, a weight that does not fit s8).
  // Weights of 4 bits or fewer are kept two per byte and widened in the kernels when pack_4bit
  // (and the layer's codes share one code_scale); otherwise as s8. Both give the same logits.
  IntResNet(const SafetensorsFile& file, const InputNormalization& fallback, bool pack_4bit = true);

  // Logits [N, classes] of float images [N, C, H, W] normalised as in training (each value maps
  // back to its pixel).
  Tensor forward(const Tensor& images) const;
  // Logits (N x classes, row-major) of u8 pixels in NHWC order.
  std::vector<float> forward_pixels(const uint8_t* pixels, int64_t n, int64_t h, int64_t w) const;
  // The pixels of normalised float images, NHWC.
  std::vector<uint8_t> pixels_of(const Tensor& images) const;
  // The stem's output codes (u8 NHWC [n][h][w][16 width]), for comparison with the simulation.
  std::vector<uint8_t> stem_pixels(const uint8_t* pixels, int64_t n, int64_t h, int64_t w) const;

  int64_t depth() const { return int64_t(blocks_.size()) * 2 + 2; }
  // Bytes of the weights as the engine holds them (packed convolutions, stem and classifier).
  int64_t weight_bytes() const;
  int64_t classes() const { return classes_; }
  const std::string& description() const { return description_; }

 private:
  struct Trace {
    std::vector<uint8_t>* stem = nullptr;
  };
  std::vector<float> run(const uint8_t* pixels, int64_t n, int64_t h, int64_t w, const Trace& trace) const;
  void stem(const uint8_t* pixels, int64_t n, int64_t h, int64_t w, uint8_t* out) const;

  std::string description_;
  InputNormalization norm_;
  // Stem: expanded weights (row ci * C_out + c holds w[c][ci][..] at input channel ci's columns).
  ConvShape stem_shape_;
  PackedWeights stem_weights_;
  PackedWeights stem_rgb_weights_;  // the same as 4-channel pixels for the direct convolution (3x3 RGB stems)
  std::vector<float> pixel_scale_, pixel_zero_;  // s_c, z_c per input channel
  std::vector<float> stem_multiplier_, stem_bias_;
  // sum_ci s_ci z_ci sum w[c][ci][kh][kw] over the taps kh in [kh0, kh1), kw in [kw0, kw1): the
  // zero-point term of a position whose taps inside the image are those; index
  // ((kh0 * (K + 1) + kh1) * (K + 1) + kw0) * (K + 1) + kw1) * C_out + c.
  std::vector<float> stem_correction_;
  ActivationGrid stem_out_;
  std::vector<IntBlock> blocks_;
  // Head.
  ActivationGrid head_in_;
  int64_t classes_ = 0, features_ = 0;
  std::vector<int8_t> fc_weight_;  // [classes][features]
  std::vector<int32_t> fc_sums_;
  std::vector<float> fc_scale_, fc_bias_;  // s_fc_in s_w per class, the float bias
};

// Whether a loaded safetensors file is a QAT export (metadata format qnn-qat-export-1).
bool is_qat_export(const SafetensorsFile& file);

}  // namespace qnn::qinfer
