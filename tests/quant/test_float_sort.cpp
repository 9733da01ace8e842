// sort_floats (quant/float_sort.h), the radix sort of smart's candidates, which sorts in the total
// order where -0 < +0: without both zeros its output must equal std::sort's bit for bit (short and
// long arrays, duplicates, negatives, either zero alone, extreme magnitudes); with both zeros it is
// std::sort's up to the zeros' signs, with every -0 before every +0.
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
    if (kind == 1) x = std::round(x * 3.0f) / 3.0f + 0.0f;    // many duplicates, +0 only (-0 + 0 = +0)
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

bool has_both_zeros(const std::vector<float>& v) {
  bool negative = false, positive = false;
  for (float x : v) (std::signbit(x) ? negative : positive) |= x == 0.0f;
  return negative && positive;
}

}  // namespace

TEST_CASE("sort_floats: equals std::sort bit for bit when the array does not hold both zeros") {
  std::vector<uint32_t> keys;
  for (int64_t n : {1, 2, 63, 64, 65, 300, 512, 2560}) {
    for (int kind : {0, 1, 2, 4}) {
      CAPTURE(n);
      CAPTURE(kind);
      std::vector<float> a = values(n, uint64_t(n) * 7 + uint64_t(kind), kind);
      REQUIRE(!has_both_zeros(a));
      std::vector<float> b = a;
      std::sort(a.begin(), a.end());
      sort_floats(b.data(), n, keys);
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
}

TEST_CASE("sort_floats: with both zeros, value order with every -0 before every +0") {
  std::vector<uint32_t> keys;
  for (int64_t n : {2, 11, 63, 64, 65, 300, 512, 2560}) {  // both sides of the short-array path
    CAPTURE(n);
    std::vector<float> a = values(n, uint64_t(n) * 7 + 3, 3);
    if (n == 2) a = {0.0f, -0.0f};
    REQUIRE(has_both_zeros(a));
    std::vector<float> b = a;
    sort_floats(b.data(), n, keys);
    // The same values as std::sort's order (zeros equal as numbers) ...
    std::vector<float> expected = a;
    std::sort(expected.begin(), expected.end());
    int64_t value_differ = 0;
    for (int64_t i = 0; i < n; ++i) value_differ += !(b[size_t(i)] == expected[size_t(i)]);
    CHECK(value_differ == 0);
    // ... the same zeros of each sign ...
    int64_t negative_zeros = 0, positive_zeros = 0, sorted_negative_zeros = 0;
    for (float x : a) negative_zeros += x == 0.0f && std::signbit(x), positive_zeros += x == 0.0f && !std::signbit(x);
    for (float x : b) sorted_negative_zeros += x == 0.0f && std::signbit(x);
    CHECK(sorted_negative_zeros == negative_zeros);
    // ... and the zeros as one run: all -0, then all +0.
    int64_t first_zero = 0;
    while (first_zero < n && !(b[size_t(first_zero)] == 0.0f)) ++first_zero;
    for (int64_t i = 0; i < negative_zeros + positive_zeros; ++i) {
      const float z = b[size_t(first_zero + i)];
      REQUIRE(z == 0.0f);
      CHECK(bool(std::signbit(z)) == (i < negative_zeros));
    }
  }
}

TEST_CASE("float_total_less: the key order is value order with -0 before +0") {
  const float ordered[] = {-std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::max(), -1.0f,
                           -std::numeric_limits<float>::denorm_min(), -0.0f, 0.0f,
                           std::numeric_limits<float>::denorm_min(), 1.0f, std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::infinity()};
  const int count = int(sizeof(ordered) / sizeof(ordered[0]));
  for (int i = 0; i < count; ++i) {
    const float back = float_from_order_key(float_order_key(ordered[i]));
    CHECK(std::memcmp(&ordered[i], &back, sizeof(float)) == 0);
    for (int j = 0; j < count; ++j) CHECK(float_total_less(ordered[i], ordered[j]) == (i < j));
  }
}
