// Quantizer state as named tensors, for checkpoints (tensor/safetensors.h): how
// GradientQuantizer::state() writes each entry and how load_state() reads it back and checks it
// (quant/quantizer.h; GradientQuantizationHook::state() adds the step and a prefix).
//
// qnn keeps every tensor in float, and a safetensors I64 entry must hold whole numbers below
// 2^24 (where float stops counting exactly). Entries are therefore:
//   floats   F32 [n]   e.g. a level table; every value finite
//   word     I64 [4]   a 64-bit word (an int64 count, or the bits of a double) as four 16-bit
//                      pieces, most significant first: exact for every value, 0x0000 0000 0000 0064
//                      is the count 100. A double keeps every bit, so a resumed fit starts from
//                      exactly the value the interrupted run had.
// StateReader looks entries up by name, checks shape and values, and finally rejects any entry it
// was not asked for, each error naming the owner, the entry, what was expected and what was found.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/safetensors.h"

namespace qnn {

NamedTensor state_floats(const std::string& name, const std::vector<float>& values);
NamedTensor state_count(const std::string& name, int64_t count);  // count >= 0
NamedTensor state_real(const std::string& name, double value);    // any double, bit for bit

class StateReader {
 public:
  // `owner` names whose state this is in errors, e.g. "quantizer 'amq'".
  StateReader(const std::vector<NamedTensor>& entries, std::string owner);

  // F32 [count], every value finite.
  std::vector<float> floats(const std::string& name, int64_t count);
  // A count in [0, max].
  int64_t count(const std::string& name, int64_t max);
  // A finite double.
  double real(const std::string& name);
  // Every entry was read: an error names the first one that was not (it belongs to nothing here).
  void finish() const;

 private:
  const NamedTensor& entry(const std::string& name, int64_t size);
  uint64_t word(const std::string& name);

  const std::vector<NamedTensor>& entries_;
  std::string owner_;
  std::vector<bool> read_;
};

}  // namespace qnn
