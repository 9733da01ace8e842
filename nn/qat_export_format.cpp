// The file format of a QAT export: packed codes and whole-number metadata (see
// nn/qat_export_format.h).
#include "nn/qat_export_format.h"

#include <cerrno>
#include <cstdlib>

#include "tensor/check.h"

namespace qnn {

int64_t metadata_integer(const SafetensorsFile& file, const std::string& key) {
  auto it = file.metadata.find(key);
  QNN_CHECK(it != file.metadata.end(), file.path, ": metadata '", key, "' is missing");
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(it->second.c_str(), &end, 10);
  QNN_CHECK(!it->second.empty() && *end == '\0' && errno != ERANGE, file.path, ": metadata '", key,
            "' should be a whole number of at most 64 bits, found '", it->second, "'");
  return v;
}

int export_bit_width(const SafetensorsFile& file, const std::string& key) {
  const int64_t bits = metadata_integer(file, key);
  QNN_CHECK(bits >= 2 && bits <= 8, file.path, ": ", key, " is ", bits, ", expected 2 to 8");
  return int(bits);
}

int export_container_bits(int bits) {
  QNN_CHECK(bits >= 2 && bits <= 8, "export bit widths are 2 to 8, found ", bits);
  return bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
}

Tensor pack_codes(const std::vector<int>& codes, int bits) {
  const int c = export_container_bits(bits), per = 8 / c;
  std::vector<float> bytes((codes.size() + per - 1) / per, 0.0f);
  std::vector<unsigned> packed(bytes.size(), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    QNN_CHECK(codes[i] >= 0 && codes[i] < (1 << c), "code ", codes[i], " at ", i, " does not fit in ", c, " bits");
    packed[i / per] |= unsigned(codes[i]) << ((i % per) * c);
  }
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = float(packed[i]);
  return Tensor::from_vector(bytes, {int64_t(bytes.size())});
}

std::vector<int> unpack_codes(const Tensor& bytes, int64_t count, int bits) {
  const int c = export_container_bits(bits), per = 8 / c;
  QNN_CHECK(bytes.numel() == (count + per - 1) / per, "packed ", count, " codes of ", c, " bits need ",
            (count + per - 1) / per, " bytes, found ", bytes.numel());
  const std::vector<float> b = bytes.to_vector();
  std::vector<int> codes(count);
  for (int64_t i = 0; i < count; ++i) codes[i] = (unsigned(b[i / per]) >> ((i % per) * c)) & ((1u << c) - 1);
  return codes;
}

}  // namespace qnn
