// Sorting a bucket's float values for the smart quantizer's candidates, faster than
// std::sort on the small arrays smart sorts at every step (512 values per bucket by default).
//
// The order is our own total order on (non-NaN) floats, by the order-preserving key
//   key(x) = bits(x) ^ (x < 0 ? 0xFFFFFFFF : 0x80000000)   (flip all bits of negatives, the sign
// bit of non-negatives), compared as uint32: value order, with -0 (key 0x7FFFFFFF) before +0
// (key 0x80000000). Floats with equal keys have equal bits, so the sorted array is unique.
// sort_floats sorts ascending in the total order where -0 < +0; for arrays without both zeros
// this is exactly std::sort's result. (std::sort alone leaves the relative order of -0 and +0,
// which compare equal, to its implementation; the GPU twin, quant/smart_device.cu, ranks by the
// same key, so CPU and GPU agree bit for bit.) Inputs must be free of NaN (smart sorts only
// buckets of finite values).
//
// Long arrays: LSD radix sort, four passes of 8 bits on the keys (stable, so the key order
// exactly). Short ones: std::sort with float_total_less, whose ties are bit-identical floats.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace qnn {

// The order-preserving key of a float: key(x) < key(y) iff x < y, or x is -0 and y is +0.
inline uint32_t float_order_key(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b ^ ((b & 0x80000000u) ? 0xFFFFFFFFu : 0x80000000u);
}

// The inverse of float_order_key.
inline float float_from_order_key(uint32_t k) {
  const uint32_t b = k ^ ((k & 0x80000000u) ? 0x80000000u : 0xFFFFFFFFu);
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// The total order: x < y as numbers, or -0 before +0.
inline bool float_total_less(float x, float y) { return float_order_key(x) < float_order_key(y); }

// Sorts v[0, n) ascending in the total order where -0 < +0 (for arrays without both zeros this is
// exactly std::sort(v, v + n)'s result); `keys` is reusable scratch.
inline void sort_floats(float* v, int64_t n, std::vector<uint32_t>& keys) {
  if (n < 64) {  // too short to repay the histograms
    std::sort(v, v + n, float_total_less);
    return;
  }
  keys.resize(2 * size_t(n));
  uint32_t* key = keys.data();
  uint32_t* other = key + n;
  uint32_t count[4][256] = {};
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t k = float_order_key(v[i]);
    key[i] = k;
    ++count[0][k & 0xFF], ++count[1][(k >> 8) & 0xFF], ++count[2][(k >> 16) & 0xFF], ++count[3][k >> 24];
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
  for (int64_t i = 0; i < n; ++i) v[i] = float_from_order_key(key[i]);
}

}  // namespace qnn
