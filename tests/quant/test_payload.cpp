// Payload bit packing and bit counting (quant/payload.h, quant/bucketing.h).
#include <doctest.h>

#include "quant/bucketing.h"
#include "quant/payload.h"
#include "tensor/random.h"

using namespace qnn;

TEST_CASE("payload: index_bits_for") {
  CHECK(index_bits_for(1) == 1);
  CHECK(index_bits_for(2) == 1);
  CHECK(index_bits_for(3) == 2);
  CHECK(index_bits_for(16) == 4);
  CHECK(index_bits_for(17) == 5);
  CHECK(index_bits_for(int64_t(1) << 32) == 32);
}

TEST_CASE("payload: pack/unpack round trip at every width 1..32, across word boundaries") {
  for (int bits = 1; bits <= 32; ++bits) {
    const int64_t n = 203;  // 203 * bits crosses many 64-bit words, at many offsets
    std::vector<uint32_t> v(n);
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t word = random_words(bits, 0, i).v[0];
      v[i] = bits == 32 ? word : word & ((1u << bits) - 1);
    }
    v[0] = bits == 32 ? ~0u : (1u << bits) - 1;  // all ones
    std::vector<uint64_t> packed;
    pack_indices(v.data(), n, bits, packed);
    CHECK(int64_t(packed.size()) == (n * bits + 63) / 64);
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      mismatches += unpack_index(packed, i, bits) != v[i];
      mismatches += read_index(packed.data(), i, bits) != v[i];
    }
    CHECK_MESSAGE(mismatches == 0, "bits = " << bits);
  }
  std::vector<uint64_t> packed;
  const uint32_t too_big = 4;
  CHECK_THROWS_AS(pack_indices(&too_big, 1, 2, packed), Error);
  // Inside the whole words of a width that divides 64, and in the indices after them.
  for (int64_t at : {37, 98}) {
    std::vector<uint32_t> v(100, 15);
    v[size_t(at)] = 16;
    const std::string message = "[pack_indices] index 16 at " + std::to_string(at) + " does not fit in 4 bits";
    CHECK_THROWS_WITH_AS(pack_indices(v.data(), 100, 4, packed), message.c_str(), Error);
  }
}

TEST_CASE("payload: bits counted from the structure") {
  Payload p;
  p.size = 10;
  p.index_bits = 3;
  p.scales = {1, 2, 3, 4};
  p.passthrough = {5, 6};
  // 6 floats of 32 bits + 8 indices of 3 bits
  CHECK(p.bits() == 6 * 32 + 8 * 3);
  CHECK(p.bits_per_coordinate() == doctest::Approx((6 * 32 + 24) / 10.0));
  p.extra_indices = 4;
  CHECK(p.bits() == 6 * 32 + 12 * 3);
  CHECK(Payload().bits_per_coordinate() == 0.0);
}

TEST_CASE("bucketing: counts and lengths with and without the tail") {
  const Buckets with(10, 4, true), without(10, 4, false), exact(8, 4, false), single(3, 8, false);
  CHECK(with.count == 3);
  CHECK(with.length(2) == 2);
  CHECK(without.count == 2);
  CHECK(without.quantized == 8);
  CHECK(exact.count == 2);  // a full last bucket is quantized (not learning-to-quantize's [:-1] bug)
  CHECK(exact.quantized == 8);
  CHECK(single.count == 0);
  CHECK_THROWS_AS(Buckets(10, 0, true), Error);
}
