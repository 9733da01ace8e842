// Low-bit QAT export (nn/qat_export.h): the byte packing, every method's export loading back
// into a fresh model that computes what the trained one did, and the numpy reader
// (scripts/read_qat_export.py) agreeing with qnn's dequantized weights.
#include <doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "nn/init.h"
#include "nn/qat_export.h"
#include "nn/state_dict.h"
#include "optim/sgd.h"
#include "tests/apps/run_command.h"

using namespace qnn;

namespace {

std::vector<int32_t> labels_for(int64_t n) {
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(int32_t(i % 10));
  return labels;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("qnn_qat_export_" + std::to_string(::getpid()) + "_" + name)).string();
}

// A QAT ResNet-8 after a few SGD steps on one batch.
void train_briefly(QatCifarResNet& net, const Variable& x) {
  SGD sgd(net.flatten(), {0.05f, 0.9f, 0.0f, 0.0f, false});
  for (int step = 0; step < 3; ++step) {
    net.flatten().zero_grad();
    cross_entropy(net(x), labels_for(x.size(0))).backward();
    sgd.step();
  }
}

}  // namespace

TEST_CASE("qat export: codes pack little-end first, 4 / 2 / 1 per byte") {
  CHECK(pack_codes({1, 2, 3, 0, 3}, 2).to_vector() == std::vector<float>{1 + (2 << 2) + (3 << 4), 3});
  CHECK(pack_codes({5, 10, 7}, 4).to_vector() == std::vector<float>{5 + (10 << 4), 7});
  CHECK(pack_codes({5, 7}, 3).to_vector() == std::vector<float>{5 + (7 << 4)});  // 3-bit codes: 4-bit containers
  CHECK(pack_codes({200, 31}, 8).to_vector() == std::vector<float>{200, 31});
  for (int bits = 2; bits <= 8; ++bits) {
    std::vector<int> codes;
    for (int i = 0; i < 37; ++i) codes.push_back((i * 7 + 3) % (1 << bits));
    CHECK(unpack_codes(pack_codes(codes, bits), 37, bits) == codes);
  }
  CHECK_THROWS_WITH_AS(pack_codes({16}, 4), doctest::Contains("does not fit in 4 bits"), Error);
  CHECK_THROWS_WITH_AS(unpack_codes(Tensor::zeros({3}), 37, 4), doctest::Contains("need 19 bytes, found 3"), Error);
}

TEST_CASE("qat export: every method's export evaluates as the trained model did") {
  Variable x(Tensor::normal({8, 3, 8, 8}, 0, 1, 12));
  for (QatMethod m : {QatMethod::Linear, QatMethod::Lsq, QatMethod::Pact, QatMethod::Dorefa, QatMethod::Wrpn})
    for (int bits : {2, 4}) {
      const std::string method = qat_method_name(m);
      CAPTURE(method);
      CAPTURE(bits);
      QatSpec spec;
      spec.method = m;
      spec.weight_bits = spec.act_bits = bits;
      manual_seed(3);
      QatCifarResNet net(8, spec, 10, Shortcut::B);
      train_briefly(net, x);
      net.eval();
      const std::vector<float> before = net(x).value().to_vector();
      const std::string path = temp_path(method + std::to_string(bits) + ".safetensors");
      export_qat_model(net, path, {{"arch", "resnet8"}});
      const SafetensorsFile file = load_safetensors(path);
      // layer1.0.conv1.weight: 16 x 16 x 3 x 3 = 2304 codes of `bits` bits.
      CHECK(file.get("qweight.layer1.0.conv1.weight.packed").numel() == 2304 * bits / 8);
      CHECK(file.get("qweight.conv1.weight.packed").numel() == 16 * 27);  // the first layer keeps 8 bits
      CHECK(!file.has("layer1.0.conv1.weight"));
      manual_seed(50);
      QatCifarResNet loaded(8, spec, 10, Shortcut::B);
      load_qat_export(loaded, file);
      loaded.eval();
      const std::vector<float> after = loaded(x).value().to_vector();
      CHECK(after == before);  // bit for bit: the weights are the trained model's quantized weights
      QatSpec other = spec;
      other.act_bits = 8;
      QatCifarResNet mismatched(8, other, 10, Shortcut::B);
      CHECK_THROWS_WITH_AS(load_qat_export(mismatched, file), doctest::Contains("this model is"), Error);
      // Bit widths are read as untrusted: 2^32 + bits is not taken for bits, and a width that
      // parses but is not the model's is refused rather than decoded with the wrong one.
      SafetensorsFile damaged = file;
      damaged.metadata["qweight.layer1.0.conv1.weight.bits"] = std::to_string((int64_t(1) << 32) + bits);
      CHECK_THROWS_WITH_AS(load_qat_export(loaded, damaged),
                           doctest::Contains("qweight.layer1.0.conv1.weight.bits is 4294967"), Error);
      damaged.metadata["qweight.layer1.0.conv1.weight.bits"] = "99999999999999999999";  // beyond int64
      CHECK_THROWS_WITH_AS(load_qat_export(loaded, damaged), doctest::Contains("found '99999999999999999999'"), Error);
      damaged.metadata["qweight.layer1.0.conv1.weight.bits"] = std::to_string(bits + 1);
      const std::string model_bits = "the model quantizes layer1.0.conv1.weight to " + std::to_string(bits) + " bits";
      CHECK_THROWS_WITH_AS(load_qat_export(loaded, damaged), doctest::Contains(model_bits.c_str()), Error);
      std::remove(path.c_str());
    }
}

TEST_CASE("qat export: the numpy reader dequantizes the weights as qnn does") {
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0) {
    MESSAGE("skipped: /usr/bin/python3 with numpy is not available");
    return;
  }
  QatSpec spec;
  spec.method = QatMethod::Linear;
  spec.weight_bits = 3;
  spec.act_bits = 2;
  manual_seed(9);
  QatCifarResNet net(8, spec);
  Variable x(Tensor::normal({4, 3, 8, 8}, 0, 1, 2));
  train_briefly(net, x);
  const std::string path = temp_path("py.safetensors");
  export_qat_model(net, path, {});
  CommandResult r = run_command("/usr/bin/python3 scripts/read_qat_export.py " + path);
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  QatCifarResNet loaded(8, spec);
  load_qat_export(loaded, load_safetensors(path));
  int weights = 0;
  for (auto& [name, v] : loaded.named_parameters()) {
    if (v.dim() < 2 || is_qat_state_name(name)) continue;
    ++weights;
    double sum = 0;
    for (float e : v.value().to_vector()) sum += e;
    const std::string key = "weight " + name + " ";
    const size_t at = r.output.find(key);
    REQUIRE_MESSAGE(at != std::string::npos, key << " missing from\n" << r.output);
    std::istringstream line(r.output.substr(r.output.find(" sum ", at) + 5));
    double theirs = 0;
    line >> theirs;
    CAPTURE(name);
    CHECK(theirs == doctest::Approx(sum).epsilon(1e-5).scale(1.0));
  }
  CHECK(weights == 8);  // the stem, two convolutions in each of 3 blocks, the classifier
  CHECK(r.output.find("act layer1.0.act1_fake_quant bits 2") != std::string::npos);
  CHECK(r.output.find("qat linear W3A2") != std::string::npos);
  std::remove(path.c_str());
}
