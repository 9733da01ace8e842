// Checkpoint state of the quantizers and the hook (GradientQuantizer::state/load_state,
// GradientQuantizationHook::state/load_state, quant/quantizer_state.h): for every scheme, a run
// interrupted after some steps, saved to a safetensors file, loaded into a fresh quantizer and
// hook and continued, quantizes every later step bit for bit as the uninterrupted run, across
// several refits of the adaptive schemes; without the state it would not. Bad state is a clear
// error that changes nothing.
#include <doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "quant/adaptive_quantizer.h"
#include "quant/hook.h"
#include "quant/quantizer_state.h"
#include "tensor/float_bits.h"
#include "tests/data/synthetic_cifar.h"
#include "tests/quant/quantizer_properties.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

constexpr int64_t kBucket = 64;
constexpr int64_t kSize = kBucket * 12 + 13;  // a partial tail bucket too
constexpr int kSteps = 25;
constexpr int kResumeAt = 12;

// Refits at 0, 3, 7 and every 10 steps: four before the interruption, two after it.
QuantizerOptions small_refits() {
  QuantizerOptions o;
  o.bucket_size = kBucket;
  o.levels = 16;
  o.refit_at = {0, 3, 7};
  o.refit_every = 10;
  return o;
}

HookOptions hook_options() { return HookOptions{11, Flattening::network_wide, true}; }

// Gradients whose normalized distribution moves from step to step, so that refits differ.
std::vector<float> gradient(int step) {
  std::vector<float> g = random_vector(kSize, 1000 + uint64_t(step));
  const float shift = 0.3f * float((step * 7) % 5 - 2), scale = 1.0f + 0.5f * float(step % 3);
  for (float& v : g) v = v * scale + shift;
  return g;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (float_bits(a[i]) != float_bits(b[i])) return false;
  return true;
}

std::vector<float> applied(GradientQuantizationHook& hook, int step) {
  std::vector<float> g = gradient(step);
  hook.apply(g.data(), kSize);
  return g;
}

// A quantizer's state entries as name -> values (for equality checks).
std::vector<std::pair<std::string, std::vector<float>>> contents(const std::vector<NamedTensor>& state) {
  std::vector<std::pair<std::string, std::vector<float>>> out;
  for (const NamedTensor& t : state) out.emplace_back(t.name, t.tensor.to_vector());
  return out;
}

bool is_adaptive(const std::string& name) {
  return name == "alq" || name == "alq_nb" || name == "amq" || name == "amq_nb";
}

}  // namespace

TEST_CASE("quantizer state: every scheme resumes from a checkpoint file bit for bit") {
  for (const std::string& name : quantizer_names()) {
    if (name == "none") continue;
    INFO(name);
    // The uninterrupted run.
    GradientQuantizationHook whole(make_quantizer(name, small_refits()), hook_options());
    std::vector<std::vector<float>> expected;
    std::vector<double> variances;
    for (int step = 0; step < kSteps; ++step) {
      expected.push_back(applied(whole, step));
      variances.push_back(whole.last_variance());
    }
    // The same run interrupted at kResumeAt: its state goes into a checkpoint beside a model tensor.
    GradientQuantizationHook first(make_quantizer(name, small_refits()), hook_options());
    for (int step = 0; step < kResumeAt; ++step) REQUIRE(same_bits(applied(first, step), expected[size_t(step)]));
    std::vector<NamedTensor> checkpoint = {{"fc.weight", Tensor::full({2, 3}, 0.5f)}};
    for (const NamedTensor& t : first.state()) checkpoint.push_back(t);
    const TempDir dir;
    const std::string path = dir.file(name + ".safetensors");
    save_safetensors(path, checkpoint, {{"quant", name}});
    const SafetensorsFile file = load_safetensors(path);

    GradientQuantizationHook resumed(make_quantizer(name, small_refits()), hook_options());
    REQUIRE_NOTHROW(resumed.load_state(file));
    CHECK(resumed.step() == kResumeAt);
    CHECK(contents(resumed.quantizer().state()) == contents(first.quantizer().state()));
    for (int step = kResumeAt; step < kSteps; ++step) {
      INFO("step ", step);
      CHECK(same_bits(applied(resumed, step), expected[size_t(step)]));
      CHECK(resumed.last_variance() == variances[size_t(step)]);
    }
    CHECK(resumed.step() == whole.step());
    CHECK(contents(resumed.state()) == contents(whole.state()));

    if (is_adaptive(name)) {
      // Without the quantizer's state (the step alone) the resumed run quantizes differently:
      // its levels are the initial ones until the next refit.
      GradientQuantizationHook step_only(make_quantizer(name, small_refits()), hook_options());
      step_only.set_step(kResumeAt);
      CHECK_FALSE(same_bits(applied(step_only, kResumeAt), expected[kResumeAt]));
    }
  }
}

TEST_CASE("quantizer state: AMQ's next fit starts from the saved multiplier and refit count") {
  for (const char* name : {"amq", "amq_nb"}) {
    INFO(name);
    GradientQuantizationHook whole(make_quantizer(name, small_refits()), hook_options());
    std::vector<std::vector<float>> expected;
    for (int step = 0; step < kSteps; ++step) expected.push_back(applied(whole, step));
    GradientQuantizationHook first(make_quantizer(name, small_refits()), hook_options());
    for (int step = 0; step < kResumeAt; ++step) applied(first, step);
    std::vector<NamedTensor> state = first.state();
    // The levels and step alone, with the multiplier and refit count of a fresh quantizer: the
    // steps up to the next refit (20) agree, the refit itself starts elsewhere.
    const std::vector<NamedTensor> fresh = GradientQuantizationHook(make_quantizer(name, small_refits())).state();
    for (NamedTensor& t : state)
      for (const NamedTensor& f : fresh)
        if (t.name == f.name && t.name.find(".levels") == std::string::npos && t.name != "quantization.step") t = f;
    GradientQuantizationHook partial(make_quantizer(name, small_refits()), hook_options());
    partial.load_state(state);
    bool differs_after_refit = false;
    for (int step = kResumeAt; step < kSteps; ++step) {
      const bool same = same_bits(applied(partial, step), expected[size_t(step)]);
      if (step < 20) CHECK(same);
      else differs_after_refit |= !same;
    }
    CHECK(differs_after_refit);
  }
}

TEST_CASE("quantizer state: bad state is a clear error and leaves the quantizer as it was") {
  AdaptiveQuantizer q("amq", small_refits());
  const std::vector<float> g = gradient(0);
  q.observe(g.data(), kSize, 0);
  const std::vector<NamedTensor> good = q.state();
  REQUIRE(good.size() == 4);
  auto replaced = [&](const std::string& entry, const NamedTensor& with) {
    std::vector<NamedTensor> s = good;
    for (NamedTensor& t : s)
      if (t.name == entry) t = with;
    return s;
  };
  auto without = [&](const std::string& entry) {
    std::vector<NamedTensor> s;
    for (const NamedTensor& t : good)
      if (t.name != entry) s.push_back(t);
    return s;
  };
  std::vector<float> unsorted = q.levels(), outside = q.levels(), with_nan = q.levels();
  std::swap(unsorted[3], unsorted[4]);
  outside.back() = 1.5f;
  with_nan[2] = std::numeric_limits<float>::quiet_NaN();
  std::vector<NamedTensor> extra = good;
  extra.push_back(state_count("epoch", 3));
  std::vector<NamedTensor> twice = good;
  twice.push_back(good[0]);
  NamedTensor bad_piece = state_count("refits", 1);
  bad_piece.tensor.data()[0] = 70000.0f;
  NamedTensor half_piece = state_count("refits", 1);
  half_piece.tensor.data()[3] = 0.5f;
  struct Case {
    std::vector<NamedTensor> state;
    const char* message;
  };
  const std::vector<Case> cases = {
      {without("levels"), "quantizer 'amq' state: entry 'levels' is missing"},
      {extra, "quantizer 'amq' state: unknown entry 'epoch'"},
      {twice, "two entries are named 'levels'"},
      {replaced("levels", state_floats("levels", {-1.0f, 1.0f})), "entry 'levels' has shape [2], expected [16]"},
      {replaced("levels", state_floats("levels", with_nan)), "expected finite values"},
      {replaced("levels", state_floats("levels", unsorted)), "strictly increasing"},
      {replaced("levels", state_floats("levels", outside)), "in [-1, 1]"},
      {replaced("multiplier", state_real("multiplier", 0.0)), "the multiplier must be in (0, 1), got 0"},
      {replaced("multiplier", state_real("multiplier", std::nan(""))), "expected a finite number"},
      {replaced("nb_variance", state_real("nb_variance", -1.0)), "nb_variance must be finite and >= 0"},
      {replaced("refits", state_count("refits", int64_t(1) << 40)), "holds the count 1099511627776"},
      {replaced("refits", bad_piece), "expected a whole number in 0..65535"},
      {replaced("refits", half_piece), "expected a whole number in 0..65535"},
      {replaced("refits", state_floats("refits", {1.0f})), "entry 'refits' has shape [1], expected [4]"},
  };
  for (const Case& c : cases) {
    INFO(c.message);
    CHECK_THROWS_WITH_AS(q.load_state(c.state), doctest::Contains(c.message), Error);
    CHECK(contents(q.state()) == contents(good));  // unchanged
  }
  // Schemes without state take only an empty one.
  auto standard = make_quantizer("standard", small_refits());
  CHECK(standard->state().empty());
  CHECK_NOTHROW(standard->load_state({}));
  CHECK_THROWS_WITH_AS(standard->load_state(good), doctest::Contains("quantizer 'standard' state: unknown entry"), Error);
}

TEST_CASE("quantizer state: the hook checks its entries and ignores other tensors") {
  GradientQuantizationHook amq(make_quantizer("amq", small_refits()), hook_options());
  GradientQuantizationHook alq(make_quantizer("alq", small_refits()), hook_options());
  for (int step = 0; step < 5; ++step) applied(amq, step), applied(alq, step);
  const std::vector<NamedTensor> amq_state = amq.state(), alq_state = alq.state();
  CHECK(amq_state.front().name == "quantization.step");
  CHECK(amq_state[1].name == "quantization.amq.levels");

  GradientQuantizationHook fresh(make_quantizer("amq", small_refits()), hook_options());
  fresh.set_step(2);
  const std::vector<NamedTensor> before = fresh.state();
  // Another scheme's state, a missing step, no quantizer state: errors, nothing changed.
  CHECK_THROWS_WITH_AS(fresh.load_state(alq_state), doctest::Contains("unknown entry 'quantization.alq.levels'"), Error);
  CHECK_THROWS_WITH_AS(fresh.load_state(std::vector<NamedTensor>(amq_state.begin() + 1, amq_state.end())),
                       doctest::Contains("entry 'quantization.step' is missing"), Error);
  CHECK_THROWS_WITH_AS(fresh.load_state(std::vector<NamedTensor>(amq_state.begin(), amq_state.begin() + 1)),
                       doctest::Contains("quantizer 'amq' state: entry 'levels' is missing"), Error);
  CHECK(fresh.step() == 2);
  CHECK(contents(fresh.state()) == contents(before));
  // Tensors outside the prefix are not the hook's; another prefix selects other names.
  std::vector<NamedTensor> checkpoint = {{"conv1.weight", Tensor::zeros({3})}, {"quantization", Tensor::zeros({1})}};
  for (const NamedTensor& t : amq.state("quant/")) checkpoint.push_back(t);
  CHECK_THROWS_WITH_AS(fresh.load_state(checkpoint), doctest::Contains("entry 'quantization.step' is missing"), Error);
  fresh.load_state(checkpoint, "quant/");
  CHECK(fresh.step() == 5);
  CHECK(contents(fresh.state()) == contents(amq.state()));
  // From a file, errors name the file.
  const TempDir dir;
  const std::string path = dir.file("errors.safetensors");
  save_safetensors(path, alq_state);
  const SafetensorsFile file = load_safetensors(path);
  CHECK_THROWS_WITH_AS(fresh.load_state(file), doctest::Contains(path.c_str()), Error);
  // A stateless scheme's hook keeps the step alone.
  GradientQuantizationHook standard(make_quantizer("standard", small_refits()), hook_options());
  standard.set_step(123456789012LL);
  const std::vector<NamedTensor> s = standard.state();
  REQUIRE(s.size() == 1);
  GradientQuantizationHook standard2(make_quantizer("standard", small_refits()), hook_options());
  standard2.load_state(s);
  CHECK(standard2.step() == 123456789012LL);
}

TEST_CASE("quantizer state: counts and doubles survive a safetensors file bit for bit") {
  const std::vector<double> reals = {0.0, -0.0, 0.1, 1.0 / 3.0, 0.70710678118654752, 1e-300,
                                     std::numeric_limits<double>::denorm_min(), -123456.789, 1e300};
  const std::vector<int64_t> counts = {0, 1, 65535, 65536, (int64_t(1) << 48) + 12345, std::numeric_limits<int64_t>::max()};
  std::vector<NamedTensor> tensors;
  for (size_t i = 0; i < reals.size(); ++i) tensors.push_back(state_real("r" + std::to_string(i), reals[i]));
  for (size_t i = 0; i < counts.size(); ++i) tensors.push_back(state_count("c" + std::to_string(i), counts[i]));
  const TempDir dir;
  const std::string path = dir.file("words.safetensors");
  save_safetensors(path, tensors);
  const SafetensorsFile file = load_safetensors(path);
  StateReader reader(file.tensors, "test");
  for (size_t i = 0; i < reals.size(); ++i) {
    const double r = reader.real("r" + std::to_string(i));
    CHECK(std::memcmp(&r, &reals[i], sizeof r) == 0);
  }
  for (size_t i = 0; i < counts.size(); ++i)
    CHECK(reader.count("c" + std::to_string(i), std::numeric_limits<int64_t>::max()) == counts[i]);
  CHECK_NOTHROW(reader.finish());
  CHECK_THROWS_WITH_AS(state_count("n", -1), doctest::Contains("must be a count >= 0"), Error);
  std::vector<NamedTensor> infinite = {state_real("x", std::numeric_limits<double>::infinity())};
  StateReader bad(infinite, "test");
  CHECK_THROWS_WITH_AS(bad.real("x"), doctest::Contains("expected a finite number"), Error);
}
