// sort_floats (quant/float_sort.h), the radix sort of smart's candidates: its output must equal
// std::sort's bit for bit, for short and long arrays, duplicates, negatives, either zero alone and
// both zeros together (which it hands to std::sort), and extreme magnitudes.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "quant/float_sort.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

std::vector<float> values(int64_t n, uint64_t seed, int kind) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    float x = random_normal(seed, 8, uint64_t(i));
    if (kind == 1) x = std::round(x * 3.0f) / 3.0f;           // many duplicates, +0 only
    if (kind == 2) x = x == 0.0f ? -0.0f : std::round(x * 3.0f) / 3.0f;
    if (kind == 2 && std::round(x * 3.0f) == 0.0f) x = -0.0f;  // -0 only
    if (kind == 3) x = i % 5 == 0 ? (i % 10 == 0 ? -0.0f : 0.0f) : x;  // both zeros
    if (kind == 4) x = std::ldexp(x, int(i % 200) - 100);       // wide exponents
    v[size_t(i)] = x;
  }
  if (kind == 4 && n > 2) {
    v[0] = std::numeric_limits<float>::max(), v[1] = -std::numeric_limits<float>::max();
    v[2] = std::numeric_limits<float>::denorm_min();
  }
  return v;
}

}  // namespace

TEST_CASE("sort_floats: equals std::sort bit for bit") {
  std::vector<uint32_t> keys;
  for (int64_t n : {1, 2, 63, 64, 65, 300, 512, 2560}) {
    for (int kind = 0; kind <= 4; ++kind) {
      CAPTURE(n);
      CAPTURE(kind);
      std::vector<float> a = values(n, uint64_t(n) * 7 + uint64_t(kind), kind);
      std::vector<float> b = a;
      std::sort(a.begin(), a.end());
      sort_floats(b.data(), n, keys);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}
