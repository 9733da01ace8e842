// The JSON header of a safetensors file, parsed and written by hand.
//
// A safetensors header is a small JSON object: an optional "__metadata__" object of string
// values, and one entry per tensor, {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}.
// That is all the JSON the format needs, so instead of a general JSON library this file reads
// exactly that subset: objects, strings (with every JSON escape), and arrays of non-negative
// integers. Anything else is an error that says at which byte of the header it went wrong and
// what was expected there. The meaning of the entries (dtypes, sizes, offsets) is checked one
// level up, in safetensors.cpp; this file only knows the syntax.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace qnn {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;          // as written: "F32", "I64", "BF16", ...
  Shape shape;                // [] is a scalar
  int64_t begin = 0, end = 0; // byte range within the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in the order they appear in the JSON
  std::map<std::string, std::string> metadata;
};

// Parses `json` (trailing spaces allowed: the format pads with them). Errors read
// "[load_safetensors] <file>: header JSON at byte <k>: expected <what>, found <what>".
// Rejects duplicate tensor names and entries missing dtype, shape or data_offsets.
SafetensorsHeader parse_safetensors_header(const std::string& json, const std::string& file);

// The JSON text of `header`, compact and unpadded: "__metadata__" first (left out when
// empty), then the entries in order.
std::string format_safetensors_header(const SafetensorsHeader& header);

}  // namespace qnn
