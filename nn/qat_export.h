// Low-bit export of a trained QAT ResNet (nn/qat_resnet.h): every quantized weight as the
// integers its quantizer puts it on, packed into bytes, with the per-channel scale and zero
// point that give it back, w = (q - z) * s; every activation quantizer's scale and zero point;
// and the remaining float tensors (batch norm, biases, the quantizers' own state). The layout is
// documented in docs/qat-export.md and read without qnn by scripts/read_qat_export.py.
//
// Each method's weight grid, w_q = (q - z) s with integers q in [qmin, qmax]:
//   linear  the observer's per-channel qparams (Jacob et al. CVPR 2018; PyTorch's FakeQuantize)
//   lsq     the learned step, z = 0, q in [-2^(b-1), 2^(b-1) - 1] (Esser et al. ICLR 2020)
//   dorefa, pact   w_q = 2k/n - 1 (DoReFa-Net eq. 9): s = 2/n, z = n/2, q = k in [0, n], n = 2^b - 1
//   wrpn    w_q = k/m, m = 2^(b-1) - 1 (WRPN): s = 1/m, z = 0, q in [-m, m]
// Activations: linear, the observer's (s, z); lsq, the learned step; pact, alpha/n; dorefa and
// wrpn, 1/n (their [0, 1] grid); z = 0 for all but linear.
// The file's packed codes and metadata are read and written by nn/qat_export_format.h.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "nn/qat_export_format.h"
#include "nn/qat_resnet.h"
#include "tensor/safetensors.h"

namespace qnn {

// Writes the export of `model` (trained: observers must have ranges, steps must be set) to `path`;
// `metadata` is added to the file's (the app records the architecture there).
void export_qat_model(QatCifarResNet& model, const std::string& path, std::map<std::string, std::string> metadata);

// Loads an export into a model built with the same spec: weights become their dequantized
// values (and the weight quantizers pass them through), the rest loads as a state. Evaluating
// the model then gives what the exported model gave, up to the last bit of the dequantization.
void load_qat_export(QatCifarResNet& model, const SafetensorsFile& file);

}  // namespace qnn
