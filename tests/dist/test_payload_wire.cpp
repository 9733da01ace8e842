// The payload wire format (dist/payload_wire.h) and the exchange in one process: every scheme's
// payload reads back as written, its length is the documented formula, a damaged or foreign
// payload is a clear error, and a one-rank exchange is the hook's quantization of the quantized
// layers with the others untouched. These need no MPI.
#include <doctest.h>

#include <algorithm>

#include "dist/exchange.h"
#include "dist/payload_wire.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/dist/helpers.h"

using namespace qnn;
using namespace qnn::testing;

TEST_CASE("payload wire: every scheme's payload reads back as written, at the formula's length") {
  const std::vector<float> g = seeded_gradient(3, 1500);
  QuantizerOptions options;
  options.bucket_size = 256;
  for (const std::string& scheme : quantizer_names()) {
    if (scheme == "none") continue;
    CAPTURE(scheme);
    const auto q = make_quantizer(scheme, options);
    const Payload p = q->encode_slice(g.data(), int64_t(g.size()), 40, 5, 9);
    Bytes wire;
    write_payload(p, wire);
    write_payload(p, wire);  // two back to back
    const int64_t words = (p.index_bits * (p.size - int64_t(p.passthrough.size()) + p.extra_indices) + 63) / 64;
    CHECK(int64_t(wire.size()) == 2 * (112 + 4 * int64_t(p.scales.size() + p.levels.size() + p.passthrough.size()) + 8 * words));
    CHECK(payload_wire_bytes(p) * 2 == int64_t(wire.size()));
    size_t offset = 0;
    for (int k = 0; k < 2; ++k) {
      const Payload r = read_payload(wire, offset, {scheme, int64_t(g.size()), p.first_index, 9, &p}, "rank 1");
      std::vector<float> a(g.size()), b(g.size());
      q->decode(p, a.data());
      q->decode(r, b.data());
      CHECK(bits_hash(a) == bits_hash(b));
      CHECK(r.seed == 5);
      CHECK(r.bits() == p.bits());
    }
    CHECK(offset == wire.size());
  }
}

TEST_CASE("payload wire: a foreign, out-of-step or damaged payload is an error naming the sender and the field") {
  const std::vector<float> g = seeded_gradient(4, 1000);
  QuantizerOptions options;
  options.bucket_size = 128;
  const auto q = make_quantizer("exponential", options);
  const Payload p = q->encode_slice(g.data(), 1000, 0, 1, 2);
  Bytes wire;
  write_payload(p, wire);
  auto read = [&](const Bytes& bytes, PayloadExpectation e) {
    return error_message([&] {
      size_t offset = 0;
      read_payload(bytes, offset, e, "rank 3");
    });
  };
  std::string m = read(wire, {"standard", 1000, 0, 2, nullptr});
  CHECK(contains(m, "rank 3"));
  CHECK(contains(m, "scheme 'exponential'"));
  CHECK(contains(read(wire, {"exponential", 999, 0, 2, nullptr}), "1000 coordinates, expected 999"));
  CHECK(contains(read(wire, {"exponential", 1000, 0, 7, nullptr}), "out of step"));
  CHECK(contains(read(wire, {"exponential", 1000, 8, 2, nullptr}), "starts at coordinate 0, expected 8"));
  options.bucket_size = 256;  // another rank's settings: the layout differs
  const Payload other = make_quantizer("exponential", options)->encode_slice(g.data(), 1000, 0, 1, 2);
  CHECK(contains(read(wire, {"exponential", 1000, 0, 2, &other}), "bucket size 128, this rank's has 256"));
  Bytes truncated(wire.begin(), wire.end() - 9);
  CHECK(contains(read(truncated, {"exponential", 1000, 0, 2, nullptr}), "does not fit"));
  Bytes header_only(wire.begin(), wire.begin() + 50);
  CHECK(contains(read(header_only, {}), "truncated"));
  Bytes bad_magic = wire;
  bad_magic[0] ^= 1;
  CHECK(contains(read(bad_magic, {}), "not a qnn payload"));
  Bytes bad_words = wire;
  bad_words[24 + 8 * 10] ^= 1;  // the index word count
  CHECK(contains(read(bad_words, {}), "index words"));
}

TEST_CASE("exchange: one rank quantizes the large multi-dimensional layers as the hook does and leaves the rest") {
  // Layers: a 3000-coordinate weight, a bias, a 700-coordinate weight (under 1,024), a 2000 one.
  const std::vector<ExchangeLayer> layers = {{3000, 4}, {64, 1}, {700, 2}, {2000, 2}};
  const std::vector<float> g = seeded_gradient(8, 5764);
  LocalCommunicator local;
  QuantizerOptions options;
  options.bucket_size = 512;
  auto hook = make_hook("exponential", options);
  GradientExchange exchange(local, hook.get(), layers);
  CHECK(exchange.algorithm() == ExchangeAlgorithm::allgather);
  CHECK(exchange.quantized_coordinates() == 5000);
  CHECK(exchange.fp32_coordinates() == 764);
  std::vector<float> out = g;
  exchange.average(out.data(), 5764, 1);
  // The reference: the quantized layers concatenated, through the hook.
  std::vector<float> q(g.begin(), g.begin() + 3000);
  q.insert(q.end(), g.begin() + 3764, g.end());
  auto reference = make_hook("exponential", options);
  reference->apply(q.data(), 5000);
  CHECK(std::equal(out.begin(), out.begin() + 3000, q.begin()));
  CHECK(std::equal(out.begin() + 3764, out.end(), q.begin() + 3000));
  CHECK(std::equal(out.begin() + 3000, out.begin() + 3764, g.begin() + 3000));
  CHECK(out != g);
  CHECK(hook->step() == 1);
  CHECK(exchange.last_bytes_sent() == 0);
  CHECK(contains(error_message([&] { exchange.average(out.data(), 5000, 1); }), "5764 coordinates"));
  CHECK(contains(error_message([&] { parse_exchange_algorithm("ring"); }), "valid: automatic, fp32, allgather, scatter-reduce"));
  CHECK(contains(error_message([&] { GradientExchange(local, nullptr, layers, {ExchangeAlgorithm::allgather}); }),
                 "needs a quantizer"));
}
