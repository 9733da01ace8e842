// Option limits (quant/quantizer.h): a bucket size far beyond the data costs nothing (every
// buffer is sized by the coordinates; hadamard pads a bucket to the power of two of what it
// holds), a bucket size beyond 2^62 and levels, bits, sample fractions or multipliers out of
// range are clear errors, and a 64-bit flag value is range-checked before it becomes an int.
#include <doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quant/bucketing.h"
#include "quant/quantizer.h"
#include "quant/walsh_hadamard.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

QuantizerOptions options(int64_t bucket, int levels = 16) {
  QuantizerOptions o;
  o.bucket_size = bucket;
  o.levels = levels;
  return o;
}

}  // namespace

TEST_CASE("bucket sizes beyond the data: one bucket of the data, buffers sized by the data") {
  const std::vector<float> x = random_vector(37, 5);
  const int64_t n = int64_t(x.size());
  for (const std::string& name : quantizer_names()) {
    if (name == "none" || name == "smart") continue;  // smart: below 2^31, below
    const auto whole = make_quantizer(name, options(n));
    for (int64_t bucket : {int64_t(1) << 40, kMaxBucketSize}) {  // 4 TiB and 16 EiB of floats if sized by bucket_size
      INFO(name, " bucket ", bucket);
      const auto q = make_quantizer(name, options(bucket));
      std::vector<float> y = x;
      double bits = 0;
      REQUIRE_NOTHROW(bits = q->quantize(y.data(), n, 3, 1));
      if (q->options().quantize_tail) {
        // The same single bucket of 37 coordinates as bucket_size 37: the same draw and payload.
        std::vector<float> z = x;
        CHECK(bits == whole->quantize(z.data(), n, 3, 1));
        CHECK(y == z);
        CHECK(q->variance(x.data(), n, 3, 1) == whole->variance(x.data(), n, 3, 1));
        CHECK(q->bucket_levels(x.data(), n, 3, 1) == whole->bucket_levels(x.data(), n, 3, 1));
      } else {
        CHECK(y == x);  // learning-to-quantize: a partial bucket travels unquantized
      }
    }
  }
  // smart's index arithmetic is 32-bit: up to 2^31 - 1 coordinates per bucket.
  QuantizerOptions o = options(int64_t(1) << 31);
  CHECK_THROWS_WITH_AS(make_quantizer("smart", o), doctest::Contains("bucket_size must be < 2^31"), Error);
  o.bucket_size = (int64_t(1) << 31) - 1;
  std::vector<float> y = x, z = x;
  make_quantizer("smart", o)->quantize(y.data(), n, 3, 1);
  make_quantizer("smart", options(n))->quantize(z.data(), n, 3, 1);
  CHECK(y == z);
}

TEST_CASE("hadamard pads each bucket to the power of two of the coordinates it holds") {
  // Buckets of 100 over 250 coordinates: 100, 100 and a tail of 50, padded to 128, 128 and 64.
  const std::vector<float> x = random_vector(250, 6);
  const auto q = make_quantizer("hadamard", options(100, 8));
  const Payload p = q->encode(x.data(), 250, 1, 0);
  CHECK(p.extra_indices == 128 + 128 + 64 - 250);
  CHECK(p.bits() == 32 * 2 * 3 + 3 * (128 + 128 + 64));
  // A bucket size beyond the vector: one bucket of 250 padded to 256, as bucket_size 250 gives.
  const Payload whole = make_quantizer("hadamard", options(250, 8))->encode(x.data(), 250, 1, 0);
  const Payload huge = make_quantizer("hadamard", options(int64_t(1) << 50, 8))->encode(x.data(), 250, 1, 0);
  CHECK(huge.extra_indices == 6);
  CHECK(huge.indices == whole.indices);
  CHECK(huge.scales == whole.scales);
}

TEST_CASE("make_quantizer: options out of range are clear errors") {
  struct Case {
    QuantizerOptions options;
    const char* message;
  };
  std::vector<Case> cases;
  auto with = [](auto change) {
    QuantizerOptions o;
    change(o);
    return o;
  };
  cases.push_back({with([](QuantizerOptions& o) { o.bucket_size = 0; }), "bucket_size must be >= 1 and <= 2^62"});
  cases.push_back({with([](QuantizerOptions& o) { o.bucket_size = -5; }), "got -5"});
  cases.push_back({with([](QuantizerOptions& o) { o.bucket_size = kMaxBucketSize + 1; }), "bucket_size must be"});
  cases.push_back({with([](QuantizerOptions& o) { o.bucket_size = std::numeric_limits<int64_t>::max(); }),
                   "bucket_size must be"});
  cases.push_back({with([](QuantizerOptions& o) { o.levels = kMaxLevels + 1; }), "levels must be <= 65536, got 65537"});
  cases.push_back({with([](QuantizerOptions& o) { o.levels = -3; }), "levels must be >= 2"});
  cases.push_back({with([](QuantizerOptions& o) { o.bits = 33; }), "bits must be 0 (derive from levels) or 1..32"});
  cases.push_back({with([](QuantizerOptions& o) { o.bits = -1; }), "got -1"});
  cases.push_back({with([](QuantizerOptions& o) { o.sample_fraction = std::nan(""); }), "sample_fraction must be in (0, 1]"});
  cases.push_back({with([](QuantizerOptions& o) { o.sample_fraction = 0.0; }), "sample_fraction must be in (0, 1]"});
  cases.push_back({with([](QuantizerOptions& o) { o.sample_fraction = 1.5; }), "sample_fraction must be in (0, 1]"});
  cases.push_back({with([](QuantizerOptions& o) { o.nuq_multiplier = 1.0; }), "nuq_multiplier must be in (0, 1)"});
  cases.push_back({with([](QuantizerOptions& o) { o.nuq_multiplier = std::nan(""); }), "nuq_multiplier"});
  cases.push_back({with([](QuantizerOptions& o) { o.refit_every = -1; }), "refit_every must be >= 0"});
  cases.push_back({with([](QuantizerOptions& o) { o.refit_at = {0, -100}; }), "refit_at steps must be >= 0"});
  for (const std::string& name : quantizer_names())
    for (const Case& c : cases) {
      INFO(name, ": ", c.message);
      CHECK_THROWS_WITH_AS(make_quantizer(name, c.options), doctest::Contains(c.message), Error);
    }
  // The schemes' own constructors and the bucket arithmetic refuse them too.
  CHECK_THROWS_WITH_AS(Buckets(10, kMaxBucketSize + 1, true), doctest::Contains("bucket_size must be"), Error);
  CHECK_THROWS_WITH_AS(next_power_of_two(kMaxBucketSize + 1), doctest::Contains("needs 1 <= n <= 2^62"), Error);
  CHECK(next_power_of_two(kMaxBucketSize) == kMaxBucketSize);
}

TEST_CASE("checked_int_option: 64-bit flag values are range-checked before they become an int") {
  CHECK(checked_int_option("--quant-levels", 16, 2, kMaxLevels) == 16);
  CHECK(checked_int_option("--quant-bits", 0, 0, kMaxBits) == 0);
  // 4294967312 = 2^32 + 16: a cast to int would give 16.
  CHECK_THROWS_WITH_AS(checked_int_option("--quant-levels", 4294967312LL, 2, kMaxLevels),
                       doctest::Contains("--quant-levels must be in 2..65536, got 4294967312"), Error);
  CHECK_THROWS_WITH_AS(checked_int_option("--quant-bits", 4294967299LL, 0, kMaxBits),
                       doctest::Contains("--quant-bits must be in 0..32, got 4294967299"), Error);
  CHECK_THROWS_WITH_AS(checked_int_option("--quant-bits", -1, 0, kMaxBits), doctest::Contains("got -1"), Error);
  CHECK_THROWS_WITH_AS(checked_int_option("x", 1, 0, int64_t(1) << 40), doctest::Contains("bad range"), Error);
}
