// libFuzzer target for the safetensors reader (tensor/safetensors.h): header JSON syntax,
// dtypes, shapes, offsets and data, through load_safetensors(bytes, size, name), which runs
// the same code as the file reader.
//
// The input is a whole file. Loading must either throw qnn::Error or return tensors that agree
// with the bytes: unique names, sizes that add up to the data section, I64 values that are
// whole numbers within 2^24. The bytes after the length prefix are also parsed as a header on
// their own (so the JSON parser is reached whatever the prefix says), and every header the
// parser accepts must survive a round trip through format_safetensors_header and
// parse_safetensors_header unchanged. Anything else (another
// exception, a crash, a sanitizer report, an allocation over the fuzzer's limit) is a defect.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "tensor/allocator.h"
#include "tensor/check.h"
#include "tensor/safetensors.h"
#include "tensor/safetensors_header.h"

namespace {

// Stops the run so that libFuzzer saves the input: the reader accepted something wrong.
void require(bool ok) {
  if (!ok) std::abort();
}

bool same_entries(const qnn::SafetensorsHeader& a, const qnn::SafetensorsHeader& b) {
  if (a.metadata != b.metadata || a.entries.size() != b.entries.size()) return false;
  for (size_t i = 0; i < a.entries.size(); ++i) {
    const qnn::SafetensorsEntry& x = a.entries[i];
    const qnn::SafetensorsEntry& y = b.entries[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.begin != y.begin || x.end != y.end)
      return false;
  }
  return true;
}

void check_loaded(const qnn::SafetensorsFile& f, const uint8_t* data, size_t size) {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  const int64_t data_bytes = static_cast<int64_t>(size - 8 - header_len);
  std::set<std::string> names;
  int64_t covered = 0;
  for (const qnn::NamedTensor& t : f.tensors) {
    require(names.insert(t.name).second && t.name != "__metadata__");
    require(t.tensor.defined() && t.tensor.numel() == qnn::shape_numel(t.tensor.shape()));
    covered += t.tensor.numel() * (t.as_int64 ? 8 : 4);
    if (t.as_int64)
      for (int64_t i = 0; i < t.tensor.numel(); ++i) {
        const float v = t.tensor.data()[i];
        require(std::nearbyint(v) == v && std::fabs(v) <= 16777216.0f);
      }
  }
  require(covered == data_bytes);

}

// Parses `json` as a header on its own; a header it accepts, written back by
// format_safetensors_header and parsed again, must be the same header.
void check_header(const std::string& json) {
  try {
    const qnn::SafetensorsHeader header = qnn::parse_safetensors_header(json, "fuzz");
    const std::string again = qnn::format_safetensors_header(header);
    require(same_entries(header, qnn::parse_safetensors_header(again, "fuzz (written back)")));
  } catch (const qnn::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const qnn::SafetensorsFile f = qnn::load_safetensors(data, size, "fuzz.safetensors");
    check_loaded(f, data, size);
  } catch (const qnn::Error&) {
  }
  // The JSON parser on its own, without the length prefix having to be right: everything
  // after the first 8 bytes is the header.
  if (size >= 8) check_header(std::string(reinterpret_cast<const char*>(data) + 8, size - 8));
  qnn::cpu_release_cached();  // freed tensors go back to the system, where ASan watches them
  return 0;
}
