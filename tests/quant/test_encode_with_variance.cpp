// GradientQuantizer::encode_slice_with_variance (quant/quantizer.h): one call that returns
// encode_slice's payload and variance_slice's value, which the training hook uses when it records
// the variance (smart then fits its levels once per step instead of twice, hadamard rotates each
// bucket once). For every scheme the
// payload and the variance must equal those of the two separate calls, bit for bit, for slices
// that start at 0 and elsewhere; and the hook must record the same variance as before.
#include <doctest.h>

#include <cstring>
#include <vector>

#include "autograd/flat_parameters.h"
#include "autograd/functions.h"
#include "quant/hook.h"
#include "quant/quantizer.h"
#include "tensor/random.h"

using namespace qnn;

namespace {

std::vector<float> gradient(int64_t n, uint64_t seed) {
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) g[size_t(i)] = 0.01f * random_normal(seed, 3, uint64_t(i));
  return g;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void check_same_payload(const Payload& a, const Payload& b) {
  CHECK(a.scheme == b.scheme);
  CHECK(a.size == b.size);
  CHECK(a.bucket_size == b.bucket_size);
  CHECK(a.index_bits == b.index_bits);
  CHECK(a.scales == b.scales);
  CHECK(a.levels == b.levels);
  CHECK(a.indices == b.indices);
  CHECK(a.passthrough == b.passthrough);
  CHECK(a.first_index == b.first_index);
  CHECK(a.extra_indices == b.extra_indices);
}

}  // namespace

TEST_CASE("encode_slice_with_variance: every scheme's payload and variance equal the separate calls") {
  const int64_t n = 6000;
  const std::vector<float> g = gradient(n, 17);
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    for (int64_t bucket : {int64_t(512), int64_t(2048)}) {
      QuantizerOptions o;
      o.bucket_size = bucket;
      auto q = make_quantizer(name, o);
      for (int64_t first : {int64_t(0), int64_t(1000)}) {
        CAPTURE(name);
        CAPTURE(bucket);
        CAPTURE(first);
        const int64_t len = n - first;
        double v = -1.0;
        const Payload both = q->encode_slice_with_variance(g.data() + first, len, first, 7, 3, &v);
        check_same_payload(both, q->encode_slice(g.data() + first, len, first, 7, 3));
        CHECK(same_bits(v, q->variance_slice(g.data() + first, len, first, 7, 3)));
        // A null variance asks for the payload alone.
        check_same_payload(q->encode_slice_with_variance(g.data() + first, len, first, 7, 3, nullptr), both);
      }
    }
  }
}

TEST_CASE("encode_slice_with_variance: smart and hadamard at buckets 512 and 51200, one and two threads' worth") {
  // (hadamard at 51200: full buckets padded to 65,536 and a tail of 17,600 padded to 32,768)
  for (const char* name : {"smart", "hadamard"})
  for (int64_t bucket : {int64_t(512), int64_t(51200)}) {
    const int64_t n = 120000;
    const std::vector<float> g = gradient(n, 23);
    QuantizerOptions o;
    o.bucket_size = bucket;
    auto q = make_quantizer(name, o);
    CAPTURE(name);
    CAPTURE(bucket);
    double v = 0.0;
    const Payload both = q->encode_slice_with_variance(g.data(), n, 0, 5, 11, &v);
    check_same_payload(both, q->encode(g.data(), n, 5, 11));
    CHECK(same_bits(v, q->variance(g.data(), n, 5, 11)));
  }
}

TEST_CASE("hook: recording the variance leaves the quantized gradient and the variance as before") {
  // The hook quantizes per layer with the variance recorded; the same slices done by hand with
  // the separate calls give the same gradient bits and the same summed variance.
  const int64_t a = 700, b = 1500;
  const std::vector<float> raw = gradient(a + b, 31);
  Variable w1(Tensor::zeros({a}), true), w2(Tensor::zeros({b}), true);
  Variable c1(Tensor::from_vector(std::vector<float>(raw.begin(), raw.begin() + a), {a}));
  Variable c2(Tensor::from_vector(std::vector<float>(raw.begin() + a, raw.end()), {b}));
  FlatParameters params({w1, w2});
  QuantizerOptions o;
  o.bucket_size = 512;
  GradientQuantizationHook hook(make_quantizer("smart", o), HookOptions{9, Flattening::per_layer, true});
  hook.install(params);
  params.zero_grad();
  add(sum(mul(w1, c1)), sum(mul(w2, c2))).backward();
  const Tensor& grad = params.grads();
  const std::vector<float> got(grad.data(), grad.data() + grad.numel());

  auto q = make_quantizer("smart", o);
  std::vector<float> want = raw;
  double variance = 0.0;
  int64_t first = 0;
  for (int64_t s : {a, b}) {
    variance += q->variance_slice(want.data() + first, s, first, 9, 0);
    q->decode(q->encode_slice(want.data() + first, s, first, 9, 0), want.data() + first);
    first += s;
  }
  CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
  CHECK(same_bits(hook.last_variance(), variance));
}
