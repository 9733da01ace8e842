// Reading and writing safetensors files: qnn's checkpoint format, shared with PyTorch.
//
// A safetensors file is three parts:
//   8 bytes     N, the header length, a little-endian unsigned integer
//   N bytes     a JSON header: {"__metadata__": {"key": "value", ...},
//                               "conv1.weight": {"dtype": "F32", "shape": [16, 3, 3, 3],
//                                                "data_offsets": [0, 1728]}, ...}
//               padded with spaces so the data that follows starts 8-byte aligned
//   the rest    the data section: every tensor's raw little-endian bytes; data_offsets are
//               [begin, end) byte positions relative to the start of this section
// There is nothing to execute in it (unlike a pickled PyTorch checkpoint), so loading an
// untrusted file is safe, and every size can be checked before a byte of data is read.
//
// Three dtypes are supported. F32 is every qnn tensor. I64 is how PyTorch stores integer
// counters, such as BatchNorm's num_batches_tracked; qnn keeps them as float tensors with
// `as_int64 = true`. Loading converts each I64 value to float and refuses values beyond 2^24,
// where float stops counting every integer exactly (16.7 million batches is far beyond any
// run here). Saving with `as_int64` requires whole numbers and writes them as I64. U8 holds
// bytes (packed low-bit integers of a QAT export): `as_uint8` tensors must hold whole numbers
// 0..255 and are written one byte each; loading gives them back as floats.
//
// Tensors are written in the order given, and loaded in the order their data lies in the file,
// so a file qnn writes loads back in the same order whatever order the JSON keys are in.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace qnn {

struct NamedTensor {
  std::string name;
  Tensor tensor;
  bool as_int64 = false;  // stored as I64 in the file; the values are whole numbers
  bool as_uint8 = false;  // stored as U8 (bytes, e.g. packed low-bit integers); whole numbers 0..255
};

struct SafetensorsFile {
  std::string path;  // where it was loaded from, for error messages
  std::vector<NamedTensor> tensors;
  std::map<std::string, std::string> metadata;

  bool has(const std::string& name) const;
  // The tensor called `name`; a missing name throws an error naming the file and the tensor.
  const Tensor& get(const std::string& name) const;
  const NamedTensor* find(const std::string& name) const;  // nullptr when missing
};

// Writes `tensors` (CPU, unique names, not "__metadata__") and `metadata` to `path`
// atomically: the bytes go to a new temporary file in the same folder, which is flushed to
// disk (fsync) and then renamed over `path`. A crash or error leaves either the old file or
// the complete new one, never a half-written file; on error the temporary file is removed.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads a whole file, checking the header (syntax, dtypes, shapes against byte sizes, offsets
// inside the data section, tensors tiling it without gaps or overlaps, no duplicate names)
// before any data is read. Every error names the file and what was expected and found.
SafetensorsFile load_safetensors(const std::string& path);

// The same for a whole file's `size` bytes already in memory, with `name` standing for the file
// in error messages (and in SafetensorsFile::path): the same code and the same checks as the
// file reader. For callers that hold the bytes, and for the fuzz target (fuzz/).
SafetensorsFile load_safetensors(const void* bytes, size_t size, const std::string& name);

}  // namespace qnn
