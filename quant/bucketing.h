// Bucketing shared by the gradient quantizers (as smart-quantizer and learning-to-quantize bucket a flat gradient).
//
// A flat vector of n coordinates splits into consecutive buckets of `bucket_size`; the last one
// may be shorter. smart-quantizer quantizes that short tail as a bucket of its own length;
// learning-to-quantize leaves it unquantized (QuantizerOptions::quantize_tail picks). Here also
// the small pieces every scheme's payload code needs: copying the passed-through tail and
// reading indices back out of a packed stream without a function call per coordinate.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/payload.h"
#include "quant/quantizer.h"
#include "tensor/check.h"

namespace qnn {

struct Buckets {
  int64_t size = 0;       // bucket_size
  int64_t count = 0;      // buckets quantized
  int64_t quantized = 0;  // coordinates quantized; [quantized, n) is passed through

  Buckets(int64_t n, int64_t bucket_size, bool quantize_tail) : size(bucket_size) {
    check_bucket_size(bucket_size);  // quant/quantizer.h
    QNN_CHECK(n >= 0, "negative length ", n);
    quantized = quantize_tail ? n : (n / bucket_size) * bucket_size;
    count = (quantized + bucket_size - 1) / bucket_size;
  }
  int64_t begin(int64_t b) const { return b * size; }
  int64_t length(int64_t b) const { return std::min(size, quantized - b * size); }
};

// Threads pay off only on large vectors: starting a parallel region costs microseconds (far
// more on a loaded machine), a bucket of 512 coordinates about one.
inline bool parallel_worthwhile(int64_t coordinates) { return coordinates >= 32768; }

// Index i of a stream packed by pack_indices (the same layout as unpack_index, inlined).
inline uint32_t read_index(const uint64_t* words, int64_t i, int bits) {
  const int64_t bit = i * bits, word = bit / 64, offset = bit % 64;
  uint64_t v = words[word] >> offset;
  if (offset + bits > 64) v |= words[word + 1] << (64 - offset);
  return static_cast<uint32_t>(v & ((uint64_t(1) << bits) - 1));
}

// out[j] = index first + j for j < count: read_index over a run, whole words at a time where the
// width divides 64 (the indices of a word then never straddle two words).
inline void read_indices(const uint64_t* words, int64_t first, int64_t count, int bits, uint32_t* out) {
  int64_t j = 0;
  if (64 % bits == 0) {
    const int per_word = 64 / bits;
    const uint64_t mask = (uint64_t(1) << bits) - 1;  // bits <= 32
    for (; j < count && (first + j) % per_word != 0; ++j) out[j] = read_index(words, first + j, bits);
    for (; j + per_word <= count; j += per_word) {
      const uint64_t word = words[(first + j) / per_word];
      for (int s = 0; s < per_word; ++s) out[j + s] = uint32_t((word >> (s * bits)) & mask);
    }
  }
  for (; j < count; ++j) out[j] = read_index(words, first + j, bits);
}

// out[j] = table[index first + j] for j < count (every index within the table).
inline void read_levels(const uint64_t* words, int64_t first, int64_t count, int bits, const float* table, float* out) {
  constexpr int64_t kRun = 256;
  uint32_t index[kRun];
  for (int64_t c = 0; c < count; c += kRun) {
    const int64_t len = count - c < kRun ? count - c : kRun;
    read_indices(words, first + c, len, bits, index);
    for (int64_t j = 0; j < len; ++j) out[c + j] = table[index[j]];
  }
}

// A payload's common fields for a bucketed scheme: sizes, index width, the shared randomness,
// `scales_per_bucket` zeroed scales per quantized bucket, and the passed-through tail of x.
inline Payload bucketed_payload(const std::string& scheme, const float* x, int64_t n, int64_t first,
                                const Buckets& buckets, int index_bits, int scales_per_bucket, uint64_t seed,
                                uint64_t step) {
  Payload p;
  p.scheme = scheme;
  p.size = n;
  p.bucket_size = buckets.size;
  p.index_bits = index_bits;
  p.seed = seed, p.step = step, p.first_index = first;
  p.scales.resize(size_t(scales_per_bucket) * size_t(buckets.count));
  p.passthrough.assign(x + buckets.quantized, x + n);
  return p;
}

// Checks that a payload is what a scheme's decoder expects; returns the buckets of its quantized
// coordinates (the passed-through ones follow them).
inline Buckets check_payload(const Payload& p, const char* scheme, int64_t bucket_size, int64_t scales_per_bucket) {
  QNN_CHECK(p.scheme == scheme, "payload of scheme '", p.scheme, "' given to the ", scheme, " decoder");
  QNN_CHECK(p.bucket_size == bucket_size, "payload bucket size ", p.bucket_size, ", decoder expects ", bucket_size);
  const int64_t quantized = p.size - int64_t(p.passthrough.size());
  QNN_CHECK(quantized >= 0, "payload has ", p.passthrough.size(), " passthrough values for ", p.size, " coordinates");
  const Buckets buckets(quantized, bucket_size, true);
  QNN_CHECK(int64_t(p.scales.size()) == scales_per_bucket * buckets.count, "payload has ", p.scales.size(),
            " scales for ", quantized, " quantized coordinates");
  return buckets;
}

}  // namespace qnn
