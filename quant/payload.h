// Payload: a quantized gradient as it would travel between data-parallel workers.
//
// Every scheme encodes a flat gradient into per-bucket scales, an optional level table, and one
// level index per coordinate, bit-packed at `index_bits` bits each (sign included where the
// scheme has signed levels); coordinates a scheme leaves unquantized (a partial tail bucket in
// the learning-to-quantize convention) travel as raw floats. Bits per coordinate are counted
// from this structure, not assumed: 32 bits per scale, level and raw float, plus the indices.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace qnn {

struct Payload {
  std::string scheme;
  int64_t size = 0;         // coordinates encoded
  int64_t bucket_size = 0;
  int index_bits = 0;       // bits per packed index
  std::vector<float> scales;       // per bucket, scheme-defined (e.g. min and unit, or a norm)
  std::vector<float> levels;       // level table(s) the decoder needs, scheme-defined
  std::vector<uint64_t> indices;   // bit-packed indices, coordinate order
  std::vector<float> passthrough;  // coordinates sent in full precision
  uint64_t seed = 0, step = 0;     // shared randomness the decoder regenerates (e.g. Hadamard signs)
  int64_t first_index = 0;  // flat index of the first coordinate (a slice of a larger gradient)
  int64_t extra_indices = 0;  // indices sent beyond one per quantized coordinate (Hadamard padding)

  int64_t bits() const {
    return 32 * int64_t(scales.size() + levels.size() + passthrough.size()) +
           int64_t(index_bits) * (size - int64_t(passthrough.size()) + extra_indices);
  }
  double bits_per_coordinate() const { return size ? double(bits()) / double(size) : 0.0; }
};

// Bits needed to index `count` levels: ceil(log2(count)), at least 1.
int index_bits_for(int64_t count);

// Packs `n` indices of `bits` bits each (each < 2^bits) into `packed` (replacing it); the stream is
// little-endian in bits: index i occupies bits [i*bits, (i+1)*bits) of the concatenated words.
void pack_indices(const uint32_t* indices, int64_t n, int bits, std::vector<uint64_t>& packed);
// Index i of a packed stream.
uint32_t unpack_index(const std::vector<uint64_t>& packed, int64_t i, int bits);

}  // namespace qnn
