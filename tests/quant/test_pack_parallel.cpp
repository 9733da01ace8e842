// pack_indices_parallel must give exactly pack_indices' stream (quant/payload.h).
#include <doctest.h>

#include "quant/pack_parallel.h"
#include "quant/payload.h"
#include "tensor/random.h"

using namespace qnn;

TEST_CASE("pack_indices_parallel equals pack_indices for every width") {
  for (int bits : {1, 2, 3, 5, 7, 8, 13, 31, 32})
    for (int64_t n : {0, 1, 63, 64, 65, 1000, 300000}) {
      CAPTURE(bits);
      CAPTURE(n);
      std::vector<uint32_t> idx(n);
      const uint64_t mask = bits == 32 ? 0xFFFFFFFFull : (1ull << bits) - 1;
      for (int64_t i = 0; i < n; ++i) idx[i] = uint32_t(random_words(3, bits, i).v[0] & mask);
      std::vector<uint64_t> serial, parallel = {0xDEADBEEF, 1, 2};  // replaced, not appended to
      pack_indices(idx.data(), n, bits, serial);
      pack_indices_parallel(idx.data(), n, bits, parallel);
      REQUIRE(parallel == serial);
    }
}
