// LevelSetQuantizer payloads: encode/decode round trip, the tail convention (learning-to-quantize's pitfall of
// `QuantizeMultiBucket.quantize`), bits per coordinate by hand, options and set_levels errors.
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "quant/level_sets.h"
#include "tensor/check.h"
#include "tests/quant/level_set_helpers.h"

using namespace qnn;
using namespace qnn::test;

TEST_CASE("level-set payload: encode then decode equals quantize; the payload decodes alone") {
  const int64_t d = 1000;
  const std::vector<float> x = normal_vector(d, 21);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(128, 3));
    const Payload p = q->encode(x.data(), d, 8, 4);
    CHECK(p.scheme == scheme.name);
    CHECK(p.size == d);
    CHECK(p.bucket_size == 128);
    CHECK(p.scales.size() == 7);
    CHECK(p.passthrough.size() == 104);
    const auto& table = static_cast<const LevelSetQuantizer&>(*q).levels();
    CHECK(p.levels == table);
    CHECK(p.index_bits == index_bits_for(int64_t(table.size())));
    std::vector<float> decoded(d), quantized = x;
    q->decode(p, decoded.data());
    q->quantize(quantized.data(), d, 8, 4);
    CHECK(decoded == quantized);
    // Another instance with a different level table decodes it the same: the table travels.
    LevelSetQuantizer other("other", LevelNorm::L2, {-1.0f, 1.0f}, level_options(128, 1));
    std::vector<float> again(d);
    other.decode(p, again.data());
    CHECK(again == decoded);
  }
}

TEST_CASE("level-set payload: a length that is an exact multiple quantizes its last bucket") {
  // The reference quantizes buckets[:-1] and leaves the last full bucket at zero.
  const std::vector<float> x = normal_vector(3 * 128, 22);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(128, 3));
    const Payload p = q->encode(x.data(), 384, 1, 0);
    CHECK(p.scales.size() == 3);
    CHECK(p.passthrough.empty());
    std::vector<float> out(384);
    q->decode(p, out.data());
    const auto levels = q->bucket_levels(x.data(), 384, 1, 0);
    REQUIRE(levels.size() == 3);
    int zeros = 0, on_levels = 0;
    for (int64_t i = 256; i < 384; ++i) {
      zeros += out[i] == 0.0f;
      on_levels += std::find(levels[2].begin(), levels[2].end(), out[i]) != levels[2].end();
    }
    CHECK(zeros < 128);  // trn rounds many small coordinates to 0, but not the whole bucket
    CHECK(on_levels == 128);
    CHECK(q->variance(x.data(), 384, 1, 0) > 0.0);
  }
}

TEST_CASE("level-set payload: a single full bucket is quantized") {
  // The reference's slice [:-0] is empty: nothing would be quantized.
  const std::vector<float> x = normal_vector(128, 23);
  auto q = make_qsgd_quantizer(level_options(128, 3));
  const Payload p = q->encode(x.data(), 128, 1, 0);
  CHECK(p.scales.size() == 1);
  CHECK(p.passthrough.empty());
  std::vector<float> out(128);
  q->decode(p, out.data());
  CHECK(out != x);
  const auto levels = q->bucket_levels(x.data(), 128, 1, 0);
  REQUIRE(levels.size() == 1);
  for (float v : out) CHECK(std::find(levels[0].begin(), levels[0].end(), v) != levels[0].end());
}

TEST_CASE("level-set payload: a partial tail passes through bit-exactly") {
  std::vector<float> x = normal_vector(2 * 128 + 6, 24);
  const float tail[6] = {1e-30f, -0.0f, 3.0e38f, -7.25f, std::numeric_limits<float>::denorm_min(),
                         0.1f};
  std::copy(tail, tail + 6, x.begin() + 256);
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(level_options(128, 3));
    const Payload p = q->encode(x.data(), 262, 1, 0);
    CHECK(p.scales.size() == 2);
    CHECK(p.passthrough.size() == 6);
    std::vector<float> out(262);
    q->decode(p, out.data());
    CHECK(std::memcmp(out.data() + 256, tail, sizeof tail) == 0);
    // The huge tail value does not leak into the buckets' norms.
    CHECK(p.scales[1] < 100.0f);
  }
  // Shorter than one bucket: everything passes through.
  auto q = make_nuq_quantizer(level_options(512, 3));
  std::vector<float> out(50);
  const Payload p = q->encode(x.data(), 50, 1, 0);
  CHECK(p.scales.empty());
  q->decode(p, out.data());
  CHECK(std::memcmp(out.data(), x.data(), 50 * sizeof(float)) == 0);
  CHECK(q->variance(x.data(), 50, 1, 0) == 0.0);
}

TEST_CASE("level-set payload: quantize_tail quantizes the tail as a bucket of its own") {
  QuantizerOptions o = level_options(128, 3);
  o.quantize_tail = true;
  LevelSetQuantizer q("qsgd", LevelNorm::L2, uniform_levels(3), o);
  const std::vector<float> x = normal_vector(2 * 128 + 6, 25);
  const Payload p = q.encode(x.data(), 262, 1, 0);
  REQUIRE(p.scales.size() == 3);
  CHECK(p.passthrough.empty());
  double ss = 0.0;
  for (int i = 256; i < 262; ++i) ss += double(x[i]) * x[i];
  CHECK(p.scales[2] == doctest::Approx(std::sqrt(ss)).epsilon(1e-6));
  const auto levels = q.bucket_levels(x.data(), 262, 1, 0);
  REQUIRE(levels.size() == 3);
  std::vector<float> out(262);
  q.decode(p, out.data());
  for (int i = 256; i < 262; ++i)
    CHECK(std::find(levels[2].begin(), levels[2].end(), out[i]) != levels[2].end());
}

TEST_CASE("level-set payload: bits per coordinate by hand") {
  const std::vector<float> x = normal_vector(1024, 26);
  // qsgd b = 3, d = 1000, buckets of 128: 7 norms + 8 levels + 104 raw floats at 32 bits,
  // 896 indices at 3 bits: 3808 + 2688 = 6496 bits.
  auto qsgd = make_qsgd_quantizer(level_options(128, 3));
  CHECK(qsgd->encode(x.data(), 1000, 1, 0).bits() == 6496);
  CHECK(qsgd->encode(x.data(), 1000, 1, 0).bits_per_coordinate() == doctest::Approx(6.496));
  // trn: 3 levels in 2-bit indices: 32 * (7 + 3 + 104) + 2 * 896 = 5440 bits.
  std::vector<float> y = x;
  CHECK(make_trn_quantizer(level_options(128, 3))->quantize(y.data(), 1000, 1, 0) ==
        doctest::Approx(5.44));
  // nuq b = 3, d = 1024, buckets of 512: 32 * (2 + 8) + 3 * 1024 = 3392 bits = 3.3125 per coordinate.
  CHECK(make_nuq_quantizer(level_options(512, 3))->encode(x.data(), 1024, 1, 0)
            .bits_per_coordinate() == 3.3125);
}

TEST_CASE("level-set options: bits from the level count, clear errors for bad options") {
  QuantizerOptions o;
  o.bits = 0;
  o.levels = 8;
  for (const auto& scheme : level_schemes()) {
    CAPTURE(scheme.name);
    auto q = scheme.make(o);
    const auto& table = static_cast<const LevelSetQuantizer&>(*q).levels();
    CHECK(table.size() == (std::string(scheme.name) == "trn" ? 3u : 8u));
    CHECK(q->encode(nullptr, 0, 1, 0).index_bits == (std::string(scheme.name) == "trn" ? 2 : 3));
    CHECK_FALSE(q->options().quantize_tail);
  }
  o.levels = 12;  // not a power of two
  CHECK_THROWS_AS(make_qsgd_quantizer(o), Error);
  CHECK_THROWS_AS(make_qinf_quantizer(o), Error);
  CHECK_THROWS_AS(make_nuq_quantizer(o), Error);
  CHECK_NOTHROW(make_trn_quantizer(o));  // always {-1, 0, 1}
  o.levels = 1;
  CHECK_THROWS_AS(make_qsgd_quantizer(o), Error);
  CHECK_THROWS_AS(make_qsgd_quantizer(level_options(128, 17)), Error);
  CHECK_THROWS_AS(make_qinf_quantizer(level_options(128, -1)), Error);
  CHECK_THROWS_AS(make_trn_quantizer(level_options(128, -1)), Error);
  CHECK_THROWS_AS(make_qsgd_quantizer(level_options(0, 3)), Error);
  QuantizerOptions p = level_options(128, 3);
  p.nuq_multiplier = 1.0;
  CHECK_THROWS_AS(make_nuq_quantizer(p), Error);
}

TEST_CASE("level-set quantizer: set_levels replaces the table at run time") {
  LevelSetQuantizer q("alq", LevelNorm::L2, exponential_levels(3, 0.5), level_options(64, 3));
  const std::vector<float> x = normal_vector(256, 27);
  q.set_levels({-1.0f, -0.2f, 0.0f, 0.3f, 1.0f});
  const Payload p = q.encode(x.data(), 256, 1, 0);
  CHECK(p.levels == std::vector<float>{-1.0f, -0.2f, 0.0f, 0.3f, 1.0f});
  CHECK(p.index_bits == 3);
  const auto levels = q.bucket_levels(x.data(), 256, 1, 0);
  std::vector<float> out(256);
  q.decode(p, out.data());
  for (int64_t i = 0; i < 256; ++i)
    CHECK(std::find(levels[i / 64].begin(), levels[i / 64].end(), out[i]) != levels[i / 64].end());
  CHECK_THROWS_AS(q.set_levels({-1.0f}), Error);
  CHECK_THROWS_AS(q.set_levels({-1.0f, 0.5f, 0.2f, 1.0f}), Error);  // unsorted
  CHECK_THROWS_AS(q.set_levels({-1.0f, 0.0f, 0.0f, 1.0f}), Error);  // repeated
  CHECK_THROWS_AS(q.set_levels({-1.5f, 1.0f}), Error);              // outside [-1, 1]
  CHECK(q.levels().size() == 5);  // a rejected table leaves the old one
}

TEST_CASE("level-set payload: a corrupted payload is a clear error") {
  auto q = make_trn_quantizer(level_options(4, 2));
  const float x[4] = {1.0f, -1.0f, 0.5f, 0.0f};
  Payload p = q->encode(x, 4, 1, 0);
  float out[4];
  p.indices[0] |= 3u;  // index 3 of a 3-level table
  CHECK_THROWS_AS(q->decode(p, out), Error);
  p = q->encode(x, 4, 1, 0);
  p.scales.push_back(1.0f);
  CHECK_THROWS_AS(q->decode(p, out), Error);
  // The same in the last bucket of a vector large enough to decode on several threads.
  std::vector<float> big(1 << 16, 0.5f), decoded(big.size());
  p = q->encode(big.data(), int64_t(big.size()), 1, 0);
  p.indices.back() |= uint64_t(3) << 62;  // the last 2-bit index
  CHECK_THROWS_WITH_AS(q->decode(p, decoded.data()), doctest::Contains("beyond its 3 levels"), Error);
}
