// The integer ResNet (qinfer/int_resnet.h) against the fake-quant simulation of the same export
// (load_qat_export into a QAT ResNet, nn/qat_export.h): tiny ResNets with random weights,
// calibrated by forward passes, exported to a temporary file and run both ways on images made of
// random bytes. The engine's integers differ from the simulation's only where a value lands
// within float rounding of a rounding boundary (the simulation sums float products in another
// order and multiplies by 1/s where the engine multiplies by one folded float multiplier), so
// the stem's codes equal the simulation's except for a small fraction, by at most 1; the
// classifier's logits agree to a tolerance and the top-1 class agrees on nearly every image.
// The engine's AVX-512 VNNI and scalar paths give the same logits to the bit.
#include <doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "data/augment.h"
#include "nn/init.h"
#include "nn/qat_export.h"
#include "qinfer/int_resnet.h"

using namespace qnn;

namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qnn_int_resnet_" + std::to_string(::getpid()) + "_" + name)).string();
}

struct Images {
  std::vector<uint8_t> nhwc;
  Tensor normalized;  // [n, 3, h, w] as the data loader makes them
};

Images random_images(int64_t n, int64_t hw, uint64_t seed) {
  std::mt19937 rng{uint32_t(seed)};
  const Normalization norm = cifar10_normalization();
  Images im;
  std::vector<uint8_t> chw(n * 3 * hw * hw);
  for (uint8_t& b : chw) b = uint8_t(rng() % 256);
  std::vector<float> x(chw.size());
  for (int64_t i = 0; i < n; ++i) normalize_image(chw.data() + i * 3 * hw * hw, 3, int(hw), int(hw), norm, x.data() + i * 3 * hw * hw);
  im.normalized = Tensor::from_vector(x, {n, 3, hw, hw});
  im.nhwc.resize(chw.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < hw * hw; ++p) im.nhwc[(i * hw * hw + p) * 3 + c] = chw[(i * 3 + c) * hw * hw + p];
  return im;
}

qinfer::InputNormalization cifar_input() {
  const Normalization n = cifar10_normalization();
  return {n.mean, n.stddev};
}

struct Comparison {
  double stem_mismatch = 0;  // fraction of stem codes that differ
  int stem_max_diff = 0;
  double top1_agreement = 0, max_logit_diff = 0, logit_range = 0;
};

Comparison compare(const QatSpec& spec, int depth, uint64_t seed) {
  manual_seed(seed);
  QatCifarResNet net(depth, spec, 10, Shortcut::A);
  // Calibration: training-mode passes set the observers' ranges, LSQ's steps and the batch
  // norms' running statistics.
  for (int i = 0; i < 3; ++i) {
    NoGradGuard no_grad;
    net(Variable(random_images(16, 16, seed + 100 + i).normalized));
  }
  net.eval();
  const std::string path = temp_path(spec.describe() + ".safetensors");
  export_qat_model(net, path, {{"arch", "resnet" + std::to_string(depth)}, {"shortcut", "A"}});
  const SafetensorsFile file = load_safetensors(path);
  std::remove(path.c_str());
  QatCifarResNet sim(depth, spec, 10, Shortcut::A);
  load_qat_export(sim, file);
  sim.eval();
  const qinfer::IntResNet engine(file, cifar_input());

  const int64_t n = 64, hw = 16;
  const Images im = random_images(n, hw, seed + 7);
  NoGradGuard no_grad;
  const std::vector<float> sim_logits = sim(Variable(im.normalized)).value().to_vector();
  const std::vector<float> int_logits = engine.forward_pixels(im.nhwc.data(), n, hw, hw);
  REQUIRE(engine.forward(im.normalized).to_vector() == int_logits);  // the float path maps back to the same pixels
  std::vector<float> one_by_one;  // a batch (split into chunks over threads) and single images agree
  for (int64_t i = 0; i < n; ++i) {
    const std::vector<float> l = engine.forward_pixels(im.nhwc.data() + i * hw * hw * 3, 1, hw, hw);
    one_by_one.insert(one_by_one.end(), l.begin(), l.end());
  }
  CHECK(one_by_one == int_logits);
  if (qinfer::vnni_supported()) {  // the scalar path gives the same logits to the bit
    qinfer::set_gemm_path(qinfer::GemmPath::Scalar);
    const std::vector<float> scalar_logits = engine.forward_pixels(im.nhwc.data(), n, hw, hw);
    qinfer::set_gemm_path(qinfer::GemmPath::Auto);
    CHECK(scalar_logits == int_logits);
  }

  // The stem, through the simulation's own modules.
  std::map<std::string, std::shared_ptr<Module>> parts;
  for (auto& [name, m] : sim.named_children()) parts[name] = m;
  Variable stem = parts.at("conv1")->forward(Variable(im.normalized));
  if (!spec.fold_bn) stem = parts.at("bn1")->forward(stem);
  stem = parts.at("act1_fake_quant")->forward(relu(stem));
  const std::vector<float> sim_stem = stem.value().to_vector();  // [n, 16, h, w], values (q - z) s
  const std::vector<uint8_t> int_stem = engine.stem_pixels(im.nhwc.data(), n, hw, hw);
  const float s = file.get("qact.act1_fake_quant.scale").item(), z = file.get("qact.act1_fake_quant.zero_point").item();
  Comparison r;
  int64_t mismatches = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 16; ++c)
      for (int64_t p = 0; p < hw * hw; ++p) {
        const int q_sim = int(std::lround(sim_stem[(i * 16 + c) * hw * hw + p] / s + z));
        const int q_int = int_stem[(i * hw * hw + p) * 16 + c];
        mismatches += q_sim != q_int;
        r.stem_max_diff = std::max(r.stem_max_diff, std::abs(q_sim - q_int));
      }
  r.stem_mismatch = double(mismatches) / double(int_stem.size());
  int agree = 0;
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    int a = 0, b = 0;
    for (int j = 0; j < 10; ++j) {
      if (sim_logits[i * 10 + j] > sim_logits[i * 10 + a]) a = j;
      if (int_logits[i * 10 + j] > int_logits[i * 10 + b]) b = j;
      r.max_logit_diff = std::max(r.max_logit_diff, double(std::fabs(sim_logits[i * 10 + j] - int_logits[i * 10 + j])));
      lo = std::min(lo, sim_logits[i * 10 + j]);
      hi = std::max(hi, sim_logits[i * 10 + j]);
    }
    agree += a == b;
  }
  r.top1_agreement = double(agree) / double(n);
  r.logit_range = hi - lo;
  return r;
}

}  // namespace

TEST_CASE("qinfer resnet: the integer engine computes what the fake-quant simulation of its export does") {
  struct Case {
    QatMethod method;
    int weight_bits, act_bits;
    bool fold_bn;
  };
  for (const Case& c : {Case{QatMethod::Linear, 8, 8, false}, Case{QatMethod::Lsq, 4, 4, false},
                        Case{QatMethod::Lsq, 4, 4, true}, Case{QatMethod::Pact, 4, 4, false}}) {
    QatSpec spec;
    spec.method = c.method;
    spec.weight_bits = c.weight_bits;
    spec.act_bits = c.act_bits;
    spec.fold_bn = c.fold_bn;
    const std::string name = spec.describe();
    CAPTURE(name);
    const Comparison r = compare(spec, 8, 40);
    MESSAGE(name << ": stem codes differing " << r.stem_mismatch << " (max " << r.stem_max_diff << "), top-1 agreement "
                 << r.top1_agreement << ", max logit difference " << r.max_logit_diff << " over a range of "
                 << r.logit_range);
    CHECK(r.stem_mismatch <= 0.002);
    CHECK(r.stem_max_diff <= 1);
    CHECK(r.top1_agreement >= 0.9);
    CHECK(r.max_logit_diff <= 0.1 * r.logit_range);
  }
}

TEST_CASE("qinfer resnet: 2-, 4- and 8-bit weights unpack to s8 integers that give the exported weights") {
  struct Case {
    QatMethod method;
    int bits;
    int64_t lo, hi;  // the s8 range w_int must stay in (DoReFa: 2q - n, n = 2^b - 1)
  };
  for (const Case& c : {Case{QatMethod::Lsq, 4, -8, 7}, Case{QatMethod::Lsq, 2, -2, 1}, Case{QatMethod::Linear, 8, -128, 127},
                        Case{QatMethod::Dorefa, 4, -15, 15}}) {
    QatSpec spec;
    spec.method = c.method;
    spec.weight_bits = spec.act_bits = c.bits;
    const std::string name = spec.describe();
    CAPTURE(name);
    manual_seed(8);
    QatCifarResNet net(8, spec, 10, Shortcut::A);
    {
      NoGradGuard no_grad;
      net(Variable(random_images(8, 8, 5).normalized));
    }
    const std::string path = temp_path("w" + std::to_string(c.bits) + ".safetensors");
    export_qat_model(net, path, {});
    const SafetensorsFile file = load_safetensors(path);
    std::remove(path.c_str());
    // 16 x 16 x 3 x 3 codes of `bits` bits: 8 / bits codes per byte (3-bit codes would take 4).
    CHECK(file.get("qweight.layer1.0.conv1.weight.packed").numel() == 2304 * c.bits / 8);
    const qinfer::IntWeight w = qinfer::read_export_weight(file, "layer1.0.conv1.weight");
    REQUIRE(w.shape == Shape({16, 16, 3, 3}));
    QatCifarResNet loaded(8, spec, 10, Shortcut::A);
    load_qat_export(loaded, file);
    std::vector<float> reference;
    for (auto& [param, v] : loaded.named_parameters())
      if (param == "layer1.0.conv1.weight") reference = v.value().to_vector();
    REQUIRE(reference.size() == w.values.size());
    int64_t out_of_range = 0, levels_used = 0;
    double worst = 0;
    std::vector<bool> seen(256, false);
    for (size_t i = 0; i < w.values.size(); ++i) {
      const int64_t v = w.values[i];
      out_of_range += v < c.lo || v > c.hi;
      if (!seen[v + 128]) ++levels_used;
      seen[v + 128] = true;
      const double real = double(v) * w.scale[i / 144];
      worst = std::max(worst, std::fabs(real - double(reference[i])) / (std::fabs(double(reference[i])) + 1e-6));
    }
    CHECK(out_of_range == 0);
    CHECK(levels_used >= 3);  // the weights are spread over the grid, not all one value
    CHECK(worst < 1e-6);      // w_int * scale is the loader's (q - z) s (DoReFa's 2 (q / n) - 1) to float rounding
  }
}

TEST_CASE("qinfer resnet: files it cannot run are reported by name") {
  SafetensorsFile plain;
  plain.path = "float.safetensors";
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(plain, cifar_input()), doctest::Contains("float.safetensors: not a qnn QAT export"),
                       Error);
  QatSpec spec;
  spec.method = QatMethod::Linear;
  manual_seed(1);
  QatCifarResNet net(8, spec, 10, Shortcut::B);
  {
    NoGradGuard no_grad;
    net(Variable(random_images(4, 8, 3).normalized));
  }
  const std::string path = temp_path("b.safetensors");
  export_qat_model(net, path, {{"shortcut", "B"}});
  const SafetensorsFile file = load_safetensors(path);
  std::remove(path.c_str());
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(file, cifar_input()), doctest::Contains("option-A shortcuts"), Error);

  // An option-A export with damaged values: each refused with the tensor or layer named.
  QatCifarResNet a_net(8, spec, 10, Shortcut::A);
  {
    NoGradGuard no_grad;
    a_net(Variable(random_images(4, 8, 3).normalized));
  }
  export_qat_model(a_net, path, {{"shortcut", "A"}});
  const SafetensorsFile good = load_safetensors(path);
  std::remove(path.c_str());
  CHECK_NOTHROW(qinfer::IntResNet(good, cifar_input()));
  auto damaged = [&](const std::string& name, float value) {
    SafetensorsFile bad = good;
    for (NamedTensor& t : bad.tensors)
      if (t.name == name) {
        Tensor copy = t.tensor.clone();
        copy.data()[0] = value;
        t.tensor = copy;
      }
    return bad;
  };
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(damaged("qact.layer1.0.act1_fake_quant.scale", 0.0f), cifar_input()),
                       doctest::Contains("qact.layer1.0.act1_fake_quant.scale is 0, expected > 0"), Error);
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(damaged("qact.act1_fake_quant.zero_point", 2.5f), cifar_input()),
                       doctest::Contains("expected a whole number"), Error);
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(damaged("layer1.0.bn1.running_var", -2.0f), cifar_input()),
                       doctest::Contains("layer1.0.conv1 output channel 0 has the requantization multiplier"), Error);
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(good, {{0.5f, 0.5f}, {0.2f, 0.2f}}), doctest::Contains("the input has 3 channels"),
                       Error);
  // Values beyond any export's, which the engine would otherwise convert or multiply out of range.
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(damaged("qweight.layer1.0.conv1.weight.zero_point", -8e34f), cifar_input()),
                       doctest::Contains("expected a multiple of 1/2 from -512 to 512"), Error);
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(damaged("qweight.layer1.0.conv1.weight.shape", 1e30f), cifar_input()),
                       doctest::Contains("qweight.layer1.0.conv1.weight.shape holds 1e+30"), Error);
  SafetensorsFile wide_bits = good;
  wide_bits.metadata["qweight.fc.weight.bits"] = "4294967298";  // 2 once cut to 32 bits
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(wide_bits, cifar_input()),
                       doctest::Contains("qweight.fc.weight.bits is 4294967298, expected 2 to 8"), Error);
  SafetensorsFile two_scales = good;
  for (NamedTensor& t : two_scales.tensors)
    if (t.name == "qact.act1_fake_quant.scale") t.tensor = Tensor::full({2}, 0.1f);
  CHECK_THROWS_WITH_AS(qinfer::IntResNet(two_scales, cifar_input()),
                       doctest::Contains("should hold one value each, found 2 and 1"), Error);
}

TEST_CASE("qinfer resnet: 4- and 2-bit weights kept two per byte give the s8 engine's logits in half the bytes") {
  for (auto [method, bits] : {std::pair{QatMethod::Lsq, 4}, std::pair{QatMethod::Dorefa, 4}, std::pair{QatMethod::Lsq, 2}}) {
    QatSpec spec;
    spec.method = method;
    spec.weight_bits = spec.act_bits = bits;
    const std::string name = spec.describe();
    CAPTURE(name);
    manual_seed(12);
    QatCifarResNet net(8, spec, 10, Shortcut::A);
    for (int i = 0; i < 2; ++i) {
      NoGradGuard no_grad;
      net(Variable(random_images(16, 16, 40 + i).normalized));
    }
    net.eval();
    const std::string path = temp_path("packed" + std::to_string(bits) + ".safetensors");
    export_qat_model(net, path, {{"arch", "resnet8"}, {"shortcut", "A"}});
    const SafetensorsFile file = load_safetensors(path);
    std::remove(path.c_str());
    const qinfer::IntResNet packed(file, cifar_input(), true), wide(file, cifar_input(), false);
    // ResNet-8's convolutions hold 73728 weights: half the bytes, plus 4 bytes of beta per channel
    // (16 + 16 + 32 + 32 + 64 + 64 channels).
    CHECK(wide.weight_bytes() - packed.weight_bytes() == 73728 / 2 - 4 * 224);
    const int64_t n = 24, hw = 16;
    const Images im = random_images(n, hw, 77);
    const std::vector<float> logits = wide.forward_pixels(im.nhwc.data(), n, hw, hw);
    CHECK(packed.forward_pixels(im.nhwc.data(), n, hw, hw) == logits);
    CHECK(packed.forward_pixels(im.nhwc.data() + 5 * hw * hw * 3, 1, hw, hw) ==
          std::vector<float>(logits.begin() + 50, logits.begin() + 60));
    if (qinfer::vnni_supported()) {
      qinfer::set_gemm_path(qinfer::GemmPath::Scalar);
      const std::vector<float> scalar = packed.forward_pixels(im.nhwc.data(), n, hw, hw);
      qinfer::set_gemm_path(qinfer::GemmPath::Auto);
      CHECK(scalar == logits);
    }
  }
}
