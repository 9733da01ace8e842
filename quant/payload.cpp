// Bit packing for payloads (see quant/payload.h).
#include "quant/payload.h"

#include "tensor/check.h"

namespace qnn {

int index_bits_for(int64_t count) {
  QNN_CHECK(count >= 1, "needs at least one level, got ", count);
  int bits = 1;
  while ((int64_t(1) << bits) < count) ++bits;
  return bits;
}

void pack_indices(const uint32_t* indices, int64_t n, int bits, std::vector<uint64_t>& packed) {
  QNN_CHECK(bits >= 1 && bits <= 32, "index width must be 1..32 bits, got ", bits);
  const int64_t total_bits = n * bits;
  packed.assign((total_bits + 63) / 64, 0);
  int64_t i = 0;
  if (64 % bits == 0) {
    // Widths that divide 64 (1, 2, 4, 8, 16, 32): whole words of 64 / bits indices, none
    // straddling two words, checked at once by the bits they set above the width.
    const int per_word = 64 / bits;
    uint64_t seen = 0;
    for (int64_t w = 0; w < n / per_word; ++w, i += per_word) {
      uint64_t word = 0;
      for (int s = 0; s < per_word; ++s) {
        seen |= indices[i + s];
        word |= uint64_t(indices[i + s]) << (s * bits);
      }
      packed[w] = word;
    }
    if (bits < 32 && (seen >> bits) != 0) i = 0;  // the loop below names the first that does not fit
  }
  for (; i < n; ++i) {
    QNN_CHECK(bits == 32 || indices[i] < (uint64_t(1) << bits), "index ", indices[i], " at ", i,
              " does not fit in ", bits, " bits");
    const int64_t bit = i * bits, word = bit / 64, offset = bit % 64;
    packed[word] |= uint64_t(indices[i]) << offset;
    if (offset + bits > 64) packed[word + 1] |= uint64_t(indices[i]) >> (64 - offset);
  }
}

uint32_t unpack_index(const std::vector<uint64_t>& packed, int64_t i, int bits) {
  const int64_t bit = i * bits, word = bit / 64, offset = bit % 64;
  uint64_t v = packed[word] >> offset;
  if (offset + bits > 64) v |= packed[word + 1] << (64 - offset);
  return static_cast<uint32_t>(v & ((bits == 64) ? ~0ull : ((uint64_t(1) << bits) - 1)));
}

}  // namespace qnn
