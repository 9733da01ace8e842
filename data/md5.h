// MD5 message digests (RFC 1321), to check that a downloaded archive is the one its publisher
// lists. MD5 is broken for security; here it only detects truncated or corrupted transfers and
// wrong files, against the checksum published with the data.
//
//   Md5 md5;  md5.update(bytes, n);  ...;  std::string hex = md5.hex_digest();
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace qnn {

class Md5 {
 public:
  Md5();
  // Appends n bytes to the message; may be called any number of times with any split.
  void update(const void* data, size_t n);
  // The digest of everything appended so far, as 32 lowercase hex digits. Ends the message:
  // call it once.
  std::string hex_digest();

 private:
  void transform(const uint8_t block[64]);

  std::array<uint32_t, 4> state_;
  std::array<uint8_t, 64> buffer_;  // the bytes of an incomplete 64-byte block
  uint64_t length_ = 0;             // message bytes so far
};

// The MD5 of a whole file as 32 lowercase hex digits; a qnn::Error naming the file when it
// cannot be read.
std::string md5_file(const std::string& path);

}  // namespace qnn
