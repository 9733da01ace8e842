// MD5 as RFC 1321 section 3 specifies it (see data/md5.h): the message is padded to a multiple
// of 64 bytes and each 64-byte block goes through four rounds of sixteen steps that update four
// 32-bit words; all words are little-endian.
#include "data/md5.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <vector>

#include "tensor/check.h"

namespace qnn {

namespace {

// T[i] = floor(2^32 * |sin(i + 1)|) (RFC 1321 3.4), exact in double precision.
const std::array<uint32_t, 64>& sine_table() {
  static const std::array<uint32_t, 64> table = [] {
    std::array<uint32_t, 64> t{};
    for (int i = 0; i < 64; ++i) t[i] = static_cast<uint32_t>(std::floor(4294967296.0 * std::fabs(std::sin(i + 1.0))));
    return t;
  }();
  return table;
}

// Left rotation of each step, by round (rows) and step within the round modulo 4.
constexpr int kShift[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

inline uint32_t rotate_left(uint32_t x, int s) { return (x << s) | (x >> (32 - s)); }

inline uint32_t load_le32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

}  // namespace

Md5::Md5() : state_{0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u}, buffer_{} {}

void Md5::transform(const uint8_t block[64]) {
  uint32_t x[16];
  for (int i = 0; i < 16; ++i) x[i] = load_le32(block + 4 * i);
  const std::array<uint32_t, 64>& t = sine_table();
  uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
  for (int i = 0; i < 64; ++i) {
    const int round = i / 16;
    uint32_t f;
    int k;  // which word of the block this step adds
    switch (round) {
      case 0: f = (b & c) | (~b & d); k = i; break;                 // F
      case 1: f = (b & d) | (c & ~d); k = (5 * i + 1) % 16; break;  // G
      case 2: f = b ^ c ^ d; k = (3 * i + 5) % 16; break;           // H
      default: f = c ^ (b | ~d); k = (7 * i) % 16; break;          // I
    }
    // a = b + ((a + f(b, c, d) + X[k] + T[i]) <<< s), then the words rotate: (a, b, c, d) <-
    // (d, a', b, c), which is the RFC's relabelling of the four words from step to step.
    const uint32_t rotated = rotate_left(a + f + x[k] + t[i], kShift[round][i % 4]);
    a = d;
    d = c;
    c = b;
    b = b + rotated;
  }
  state_[0] += a;
  state_[1] += b;
  state_[2] += c;
  state_[3] += d;
}

void Md5::update(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_t used = static_cast<size_t>(length_ % 64);
  length_ += n;
  if (used > 0) {  // complete the buffered block first
    const size_t take = std::min(n, 64 - used);
    std::memcpy(buffer_.data() + used, p, take);
    p += take;
    n -= take;
    used += take;
    if (used < 64) return;
    transform(buffer_.data());
  }
  for (; n >= 64; p += 64, n -= 64) transform(p);
  if (n > 0) std::memcpy(buffer_.data(), p, n);
}

std::string Md5::hex_digest() {
  // Padding (RFC 1321 3.1, 3.2): one 0x80 byte, zeros up to 56 mod 64, then the message length
  // in bits as a little-endian 64-bit number.
  const uint64_t bits = length_ * 8;
  const size_t used = static_cast<size_t>(length_ % 64);
  uint8_t pad[72] = {0x80};
  const size_t zeros_to = used < 56 ? 56 : 120;
  uint8_t length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<uint8_t>(bits >> (8 * i));
  update(pad, zeros_to - used);
  update(length_bytes, 8);

  static const char* hex = "0123456789abcdef";
  std::string out;
  for (uint32_t word : state_) {
    for (int i = 0; i < 4; ++i) {
      const uint8_t byte = static_cast<uint8_t>(word >> (8 * i));
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  }
  return out;
}

std::string md5_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw Error(str("[md5_file] ", path, ": cannot open it for reading"));
  Md5 md5;
  std::vector<char> chunk(1 << 20);
  while (file) {
    file.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    md5.update(chunk.data(), static_cast<size_t>(file.gcount()));
  }
  if (!file.eof()) throw Error(str("[md5_file] ", path, ": read failed"));
  return md5.hex_digest();
}

}  // namespace qnn
