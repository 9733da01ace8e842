// ./apps/ptq end to end on synthetic CIFAR-10 files: a float checkpoint trained briefly by
// ./apps/cifar is quantized (W4A4, KL, per channel, bias correction, folded batch norms), the
// table row and the export appear; --help lists the flags; bad flags and inputs exit 2 or 1 with
// a message naming the problem. Run from the repository root (make test).
#include <doctest.h>

#include <cmath>

#include <filesystem>
#include <string>

#include "tensor/safetensors.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using qnn::testing::TempDir;

TEST_CASE("ptq cli: --help lists every flag") {
  CommandResult r = run_command("./apps/ptq --help");
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--resume", "--data", "--weight-bits", "--act-bits", "--method", "--percentile",
                           "--per-channel", "--symmetric", "--fold-bn", "--bias-correction", "--bit-alloc",
                           "--clip-last", "--first-last-bits", "--calibration-images", "--out", "--table", "--limit-test"})
    CHECK_MESSAGE(r.output.find(flag) != std::string::npos, flag);
  CHECK(r.output.find("aciq-laplace") != std::string::npos);
}

TEST_CASE("ptq cli: a brief float run quantizes to W4A4 with a table row and an export") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  CommandResult train = run_command("./apps/cifar --device cpu --data " + data + " --epochs 1 --limit-train 128 "
                                    "--limit-test 50 --batch-size 64 --log " + dir.file("log.csv") +
                                    " --checkpoint " + dir.file("ck"));
  REQUIRE_MESSAGE(train.exit_code == 0, train.output);
  const std::string ck = dir.file("ck/last.safetensors");
  const std::string common = "./apps/ptq --resume " + ck + " --data " + data + " --calibration-images 32 --limit-test 50";
  CommandResult r = run_command(common + " --weight-bits 4 --act-bits 4 --method kl --per-channel --bias-correction "
                                "--fold-bn --out " + dir.file("q.safetensors"));
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("| fp32 | 32/32 |") != std::string::npos);
  CHECK(r.output.find("| kl | 4/4 | per-channel +bias-corr +fold-bn |") != std::string::npos);
  const SafetensorsFile q = load_safetensors(dir.file("q.safetensors"));
  CHECK(q.metadata.at("format") == "qnn-qat-export-1");
  CHECK(q.metadata.at("qat") == "linear W4A4 folded-bn");
  CHECK(q.metadata.at("ptq") == "kl W4A4 per-channel +bias-corr +fold-bn");
  CHECK(q.has("qweight.layer1.0.conv1.weight.packed"));
  CHECK(q.has("qact.layer1.0.act1_fake_quant.scale"));
  CHECK(q.metadata.at("input_mean").find(',') != std::string::npos);
  // The export runs on the integer engine (qinfer/), whose accuracy is the table's up to the
  // rare image whose codes round the other way (docs/integer-inference.md).
  CommandResult integer = run_command("./apps/cifar --device cpu --data " + data +
                                      " --limit-test 50 --evaluate --resume " + dir.file("q.safetensors"));
  REQUIRE_MESSAGE(integer.exit_code == 0, integer.output);
  CHECK(integer.output.find("integer arithmetic") != std::string::npos);
  const auto accuracy = [](const std::string& text, const std::string& before) {
    const size_t at = text.find(before);
    REQUIRE(at != std::string::npos);
    return std::stod(text.substr(text.find_first_of("0123456789", at + before.size())));
  };
  const double table = accuracy(r.output, "| kl | 4/4 | per-channel +bias-corr +fold-bn |");
  CHECK(std::fabs(accuracy(integer.output, " accuracy ") - table) <= 4.0);  // 2 of 50 images

  CommandResult alloc = run_command(common + " --weight-bits 3 --act-bits 8 --bit-alloc --method aciq-gauss --out " +
                                    dir.file("a.safetensors"));
  REQUIRE_MESSAGE(alloc.exit_code == 0, alloc.output);
  CHECK(alloc.output.find("| aciq-gauss | 3/8 (avg ") != std::string::npos);
  CHECK(load_safetensors(dir.file("a.safetensors")).metadata.count("qweight.layer3.2.conv2.weight.channel_bits"));

  struct Case {
    std::string args, message;
    int exit_code;
  };
  for (const Case& c : {Case{"--method entropy", "bad --method 'entropy'; valid: minmax, percentile", 2},
                        Case{"--bit-alloc --weight-bits 8", "--bit-alloc allocates an average of --weight-bits 2 to 4", 2},
                        Case{"--table --out x.safetensors", "give one or the other", 2},
                        Case{"--table --method kl", "--table runs its own methods", 2},
                        Case{"--calibration-images 0", "--calibration-images must be between 1 and 50000", 2},
                        Case{"--weight-bits 1", "--weight-bits must be between 2 and 8", 2}}) {
    CommandResult bad = run_command(common + " " + c.args);
    CHECK_MESSAGE(bad.exit_code == c.exit_code, c.args);
    CHECK_MESSAGE(bad.output.find(c.message) != std::string::npos, c.args << " -> " << bad.output);
  }
  CommandResult missing = run_command("./apps/ptq --data " + data);
  CHECK(missing.exit_code == 2);
  CHECK(missing.output.find("--resume is required") != std::string::npos);
  CommandResult absent = run_command("./apps/ptq --resume " + dir.file("nope.safetensors") + " --data " + data);
  CHECK(absent.exit_code == 1);
  CHECK(absent.output.find("nope.safetensors") != std::string::npos);
}
