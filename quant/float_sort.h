// Sorting a bucket's float values for the smart quantizer's candidates (spec 2.5), faster than
// std::sort on the small arrays smart sorts at every step (512 values per bucket by default).
//
// LSD radix sort, four passes of 8 bits, on the order-preserving key of IEEE-754 floats
//   key(x) = bits(x) ^ (x < 0 ? 0xFFFFFFFF : 0x80000000)   (flip all bits of negatives, the sign
// bit of positives), so key order is value order with -0 before +0. The result must equal
// std::sort's to the bit: equal finite floats have equal bits except -0 and +0, whose relative
// order std::sort leaves to its implementation, so an array that holds both zeros is handed to
// std::sort itself. Inputs must be free of NaN (smart rejects non-finite gradients).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace qnn {

// Sorts v[0, n) ascending exactly as std::sort(v, v + n) does; `keys` is reusable scratch.
inline void sort_floats(float* v, int64_t n, std::vector<uint32_t>& keys) {
  if (n < 64) {  // too short to repay the histograms
    std::sort(v, v + n);
    return;
  }
  keys.resize(2 * size_t(n));
  uint32_t* key = keys.data();
  uint32_t* other = key + n;
  uint32_t count[4][256] = {};
  bool negative_zero = false, positive_zero = false;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &v[i], sizeof b);
    negative_zero |= b == 0x80000000u;
    positive_zero |= b == 0u;
    const uint32_t k = b ^ ((b & 0x80000000u) ? 0xFFFFFFFFu : 0x80000000u);
    key[i] = k;
    ++count[0][k & 0xFF], ++count[1][(k >> 8) & 0xFF], ++count[2][(k >> 16) & 0xFF], ++count[3][k >> 24];
  }
  if (negative_zero && positive_zero) {
    std::sort(v, v + n);
    return;
  }
  for (int pass = 0; pass < 4; ++pass) {
    const int shift = 8 * pass;
    if (count[pass][(key[0] >> shift) & 0xFF] == uint32_t(n)) continue;  // one digit: no-op pass
    uint32_t offset[256];
    uint32_t sum = 0;
    for (int d = 0; d < 256; ++d) offset[d] = sum, sum += count[pass][d];
    for (int64_t i = 0; i < n; ++i) other[offset[(key[i] >> shift) & 0xFF]++] = key[i];
    std::swap(key, other);
  }
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = key[i];
    const uint32_t b = k ^ ((k & 0x80000000u) ? 0x80000000u : 0xFFFFFFFFu);
    std::memcpy(&v[i], &b, sizeof b);
  }
}

}  // namespace qnn
