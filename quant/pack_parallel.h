// Bit packing of level indices, one output word at a time, so that threads can share the work.
//
// Word w of the stream holds bits [64w, 64w + 64): the indices i with i*bits in that range,
// plus the high part of an index that starts in word w-1 and the low part of one that ends in
// word w+1. Computing each word from the indices that overlap it needs no synchronisation and
// gives exactly the layout of pack_indices (quant/payload.h): index i at bits [i*bits, (i+1)*bits).
#pragma once
#include <cstdint>
#include <vector>

namespace qnn {

// Same result as pack_indices(indices, n, bits, packed); every index must be < 2^bits (not
// checked: callers pass indices of a level table that fits). Runs on OpenMP threads when large.
void pack_indices_parallel(const uint32_t* indices, int64_t n, int bits,
                           std::vector<uint64_t>& packed);

}  // namespace qnn
