// The registry and the training hook (quant/hook.h): a backward through a FlatParameters leaves
// the quantized gradient, steps advance the randomness, per-layer buckets restart at every
// parameter (randomness still keyed by flat index), emulated workers average independent draws.
#include <doctest.h>

#include "autograd/flat_parameters.h"
#include "autograd/functions.h"
#include "quant/hook.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

QuantizerOptions options(int levels, int64_t bucket_size) {
  QuantizerOptions o;
  o.levels = levels, o.bucket_size = bucket_size;
  return o;
}

// Two parameters w1 (size a), w2 (size b) and loss = sum(w1*c1) + sum(w2*c2): the raw flat
// gradient is [c1, c2].
struct Model {
  Variable w1, w2, c1, c2;
  std::unique_ptr<FlatParameters> params;
  std::vector<float> raw;
  Model(int64_t a, int64_t b) {
    raw = random_vector(a + b, 77);
    w1 = Variable(Tensor::zeros({a}), true);
    w2 = Variable(Tensor::zeros({b}), true);
    c1 = Variable(Tensor::from_vector(std::vector<float>(raw.begin(), raw.begin() + a), {a}));
    c2 = Variable(Tensor::from_vector(std::vector<float>(raw.begin() + a, raw.end()), {b}));
    params = std::make_unique<FlatParameters>(std::vector<Variable>{w1, w2});
  }
  std::vector<float> backward() {
    params->zero_grad();
    add(sum(mul(w1, c1)), sum(mul(w2, c2))).backward();
    const Tensor& g = params->grads();
    return std::vector<float>(g.data(), g.data() + g.numel());
  }
};

}  // namespace

TEST_CASE("registry: names, none, validation") {
  const std::vector<std::string>& names = quantizer_names();
  REQUIRE(names.size() >= 4);
  CHECK(names[0] == "none");
  CHECK(make_quantizer("none", QuantizerOptions()) == nullptr);
  for (const char* name : {"standard", "exponential", "hadamard"}) {
    CHECK(std::find(names.begin(), names.end(), name) != names.end());
    auto q = make_quantizer(name, options(16, 64));
    REQUIRE(q != nullptr);
    CHECK(q->name() == name);
  }
  CHECK_THROWS_WITH_AS(make_quantizer("zipml", QuantizerOptions()),
                       doctest::Contains("unknown quantizer 'zipml'; valid: none, standard, exponential, hadamard"),
                       Error);
  CHECK_THROWS_WITH_AS(make_quantizer("standard", options(1, 64)), doctest::Contains("levels must be >= 2"), Error);
  CHECK_THROWS_WITH_AS(make_quantizer("none", options(16, 0)), doctest::Contains("bucket_size must be >= 1"), Error);
}

TEST_CASE("hook: network-wide, a backward leaves the quantized gradient and the step advances") {
  Model m(6, 10);
  auto reference = make_quantizer("standard", options(3, 4));
  GradientQuantizationHook hook(make_quantizer("standard", options(3, 4)), HookOptions{5, Flattening::network_wide, true});
  hook.install(*m.params);
  const std::vector<float> g0 = m.backward();
  CHECK(hook.step() == 1);
  CHECK(g0 == quantized(*reference, m.raw, 5, 0));
  CHECK(g0 != m.raw);
  // on the levels of buckets spanning the two parameters (bucket 1 holds w1[4..5], w2[0..1])
  const auto levels = reference->bucket_levels(m.raw.data(), 16, 5, 0);
  for (int64_t i = 0; i < 16; ++i) {
    const auto& l = levels[i / 4];
    CHECK(std::find(l.begin(), l.end(), g0[i]) != l.end());
  }
  CHECK(hook.last_variance() == doctest::Approx(reference->variance(m.raw.data(), 16, 5, 0)));
  CHECK(hook.last_bits_per_coordinate() == (4 * 2 * 32 + 16 * 2) / 16.0);
  const std::vector<float> g1 = m.backward();
  CHECK(hook.step() == 2);
  CHECK(g1 == quantized(*reference, m.raw, 5, 1));
  CHECK(g1 != g0);
}

TEST_CASE("hook: per-layer buckets restart at each parameter; randomness keyed by flat index") {
  SUBCASE("parameters of 6 and 10: different buckets than network-wide") {
    Model m(6, 10);
    auto reference = make_quantizer("standard", options(3, 4));
    GradientQuantizationHook hook(make_quantizer("standard", options(3, 4)), HookOptions{5, Flattening::per_layer});
    hook.install(*m.params);
    const std::vector<float> g = m.backward();
    std::vector<float> expected = m.raw;
    for (auto [first, n] : {std::pair<int64_t, int64_t>{0, 6}, {6, 10}}) {
      const Payload p = reference->encode_slice(m.raw.data() + first, n, first, 5, 0);
      reference->decode(p, expected.data() + first);
      const auto levels = reference->bucket_levels(m.raw.data() + first, n, 5, 0);
      for (int64_t i = 0; i < n; ++i) {
        const auto& l = levels[i / 4];
        CHECK(std::find(l.begin(), l.end(), g[first + i]) != l.end());
      }
    }
    CHECK(g == expected);
    CHECK(g != quantized(*reference, m.raw, 5, 0));
    CHECK(hook.last_bits_per_coordinate() == (5 * 2 * 32 + 16 * 2) / 16.0);  // 2 + 3 buckets
  }
  SUBCASE("parameters of 8 and 8 with buckets of 4: the same buckets, so the same draw as network-wide") {
    for (const char* scheme : {"standard", "exponential", "hadamard"}) {
      Model a(8, 8), b(8, 8);
      GradientQuantizationHook per_layer(make_quantizer(scheme, options(4, 4)), HookOptions{9, Flattening::per_layer});
      GradientQuantizationHook network(make_quantizer(scheme, options(4, 4)), HookOptions{9});
      per_layer.install(*a.params);
      network.install(*b.params);
      CHECK_MESSAGE(a.backward() == b.backward(), scheme);
    }
  }
}

TEST_CASE("hook: emulated workers quantize independently and average") {
  auto reference = make_quantizer("hadamard", options(4, 8));
  const std::vector<float> g = random_vector(40, 3);
  GradientQuantizationHook one(make_quantizer("hadamard", options(4, 8)), HookOptions{2});
  std::vector<float> out(40);
  one.quantize_and_average({g.data()}, 40, out.data());
  CHECK(out == quantized(*reference, g, 2, 0));  // one worker is apply()
  CHECK(one.step() == 1);

  GradientQuantizationHook four(make_quantizer("hadamard", options(4, 8)), HookOptions{2, Flattening::network_wide, true});
  const std::vector<const float*> workers(4, g.data());
  four.quantize_and_average(workers, 40, out.data());
  std::vector<float> expected(40, 0.0f);
  for (int w = 0; w < 4; ++w) {
    const std::vector<float> q = quantized(*reference, g, GradientQuantizationHook::worker_seed(2, w), 0);
    CHECK((w == 0 || q != quantized(*reference, g, 2, 0)));  // different randomness per worker
    for (int i = 0; i < 40; ++i) expected[i] += q[i];
  }
  for (float& e : expected) e *= 0.25f;
  CHECK(out == expected);
  double variance = 0;
  for (int w = 0; w < 4; ++w) variance += reference->variance(g.data(), 40, GradientQuantizationHook::worker_seed(2, w), 0);
  CHECK(four.last_variance() == doctest::Approx(variance / 16));
  CHECK(four.step() == 1);
}
