// Word-parallel bit packing (see quant/pack_parallel.h): word w = OR over the indices i that
// overlap bits [64w, 64w + 64) of index_i shifted to bit position i*bits - 64w.
#include "quant/pack_parallel.h"

#include "tensor/check.h"

namespace qnn {

void pack_indices_parallel(const uint32_t* indices, int64_t n, int bits,
                           std::vector<uint64_t>& packed) {
  QNN_CHECK(bits >= 1 && bits <= 32, "index width must be 1..32 bits, got ", bits);
  QNN_CHECK(n >= 0, "needs n >= 0 indices, got ", n);
  const int64_t words = (n * bits + 63) / 64;
  packed.resize(words);
#pragma omp parallel for schedule(static) if (words >= 4096)
  for (int64_t w = 0; w < words; ++w) {
    const int64_t first_bit = 64 * w, end_bit = first_bit + 64;
    uint64_t word = 0;
    // The first index overlapping this word may start in the previous one.
    for (int64_t i = first_bit / bits; i < n && i * bits < end_bit; ++i) {
      const int64_t shift = i * bits - first_bit;
      const uint64_t v = indices[i];
      word |= shift >= 0 ? v << shift : v >> -shift;
    }
    packed[w] = word;
  }
}

}  // namespace qnn
