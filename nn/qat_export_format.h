// The file format of a QAT export (nn/qat_export.h, docs/qat-export.md) as both sides use it:
// the writer, which knows the float QAT model, and the integer engine that runs an export
// without it (qinfer/int_resnet.h). A quantized weight's codes u = q - qmin (0 .. 2^b - 1) are
// packed little-end first into containers of 2, 4 or 8 bits (3-bit codes take 4-bit containers,
// 5- to 7-bit ones 8-bit): four 2-bit codes a byte, two 4-bit codes, or one code a byte; code i
// sits at bits (i mod k) c .. of byte i / k. Integers such as a weight's bit width are metadata
// strings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/safetensors.h"
#include "tensor/tensor.h"

namespace qnn {

constexpr const char* kQatExportFormat = "qnn-qat-export-1";

int export_container_bits(int bits);  // 2, 4 or 8
// Codes in [0, 2^container) -> bytes (as floats 0..255, for a U8 safetensors tensor) and back.
Tensor pack_codes(const std::vector<int>& codes, int bits);
std::vector<int> unpack_codes(const Tensor& bytes, int64_t count, int bits);
// The whole number an export's metadata holds under `key` (e.g. "qweight.W.bits"); a missing or
// malformed value is an error naming the file and the key.
int64_t metadata_integer(const SafetensorsFile& file, const std::string& key);
// A bit width the export's metadata holds under `key`: 2 to 8, else an error naming file and key.
int export_bit_width(const SafetensorsFile& file, const std::string& key);

}  // namespace qnn
