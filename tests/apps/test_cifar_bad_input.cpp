// ./apps/cifar on bad input, as a new user meets it: every bad flag value, output path and
// checkpoint ends with a message naming it and a non-zero exit before any training (never an
// abort, never silent garbage); a diverging run stops, naming the step, and keeps the last
// checkpoint; --resume takes the run's settings from the checkpoint and announces or refuses
// the ones given again with another value. Runs on a few synthetic CIFAR-10 records.
#include <doctest.h>

#include <fstream>

#include "train/checkpoint.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using qnn::testing::read_file;
using qnn::testing::TempDir;

namespace {

// A copy of checkpoint `from` with `edit` applied, written to `to`.
template <class Edit>
void edited_copy(const std::string& from, const std::string& to, Edit edit) {
  SafetensorsFile f = load_safetensors(from);
  edit(f);
  save_safetensors(to, f.tensors, f.metadata);
}

void drop_quantization_state(SafetensorsFile& f) {
  std::vector<NamedTensor> kept;
  for (NamedTensor& t : f.tensors)
    if (t.name.rfind("quantization.", 0) != 0) kept.push_back(t);
  f.tensors = kept;
}

}  // namespace

TEST_CASE("cifar bad input: flag values are refused whole, with the flag named, exit 2") {
  struct Case {
    const char* args;
    const char* message;
  };
  for (Case c : {Case{"--lr inf", "bad value 'inf' for --lr (expected a finite number)"},
                 Case{"--lr nan", "bad value 'nan' for --lr"},
                 Case{"--wd 1e400", "bad value '1e400' for --wd"},
                 Case{"--momentum -1", "--momentum must be >= 0, got -1"},
                 Case{"--nesterov=maybe", "bad value 'maybe' for --nesterov"},
                 Case{"--evaluate=perhaps", "bad value 'perhaps' for --evaluate"},
                 Case{"--quant-levels 4294967312", "--quant-levels must be between 2 and 65536"},
                 Case{"--epochs 99999999999999999999", "bad value '99999999999999999999' for --epochs"},
                 Case{"--quant smart --quant-sample 0", "sample_fraction must be in (0, 1], got 0"},
                 Case{"--quant smart --quant-sample nan", "bad value 'nan' for --quant-sample"},
                 Case{"--quant-bits 64", "--quant-bits must be between 0 and 32"},
                 Case{"--seed -1", "--seed must be >= 0"},
                 Case{"--precision fp16", "bad --precision 'fp16'; valid: fp32, bf16"},
                 Case{"--device cpu --channels-last", "--channels-last is a layout of GPU activations"},
                 Case{"--evaluate", "--evaluate evaluates a trained model: give it with --resume"}}) {
    CommandResult r = run_command(std::string("./apps/cifar --data /nonexistent ") + c.args);
    CHECK_MESSAGE(r.exit_code == 2, c.args << " -> " << r.output);
    CHECK_MESSAGE(r.output.find(c.message) != std::string::npos, c.args << " -> " << r.output);
  }
}

TEST_CASE("cifar bad input: output paths are checked before training") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  std::ofstream(dir.file("a_file")) << "x";
  struct Case {
    std::string args, message;
  };
  for (const Case& c : {Case{"--checkpoint " + dir.file("a_file"), "a_file: exists and is not a folder"},
                        Case{"--checkpoint " + dir.file("a_file/sub"), "cannot create the folder"},
                        Case{"--log " + dir.file("missing/run.csv"), "the folder '" + dir.file("missing") + "' does not exist"},
                        Case{"--log " + dir.path, "is a folder, expected a file name"}}) {
    CommandResult r = run_command("./apps/cifar --data " + data + " --limit-train 64 --epochs 1 " + c.args);
    CHECK_MESSAGE(r.exit_code == 1, c.args << " -> " << r.output);
    CHECK_MESSAGE(r.output.find(c.message) != std::string::npos, c.args << " -> " << r.output);
    CHECK_MESSAGE(r.output.find("data:") == std::string::npos, "checked before loading data: " << r.output);
  }
}

TEST_CASE("cifar bad input: a diverging run stops at the step, and the last checkpoint is kept") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  const std::string common = "./apps/cifar --data " + data + " --limit-train 128 --limit-test 50 --batch-size 32";
  CommandResult good = run_command(common + " --epochs 1 --checkpoint " + dir.file("ck"));
  REQUIRE_MESSAGE(good.exit_code == 0, good.output);
  const std::string before = read_file(dir.file("ck/last.safetensors"));
  CommandResult bad = run_command(common + " --epochs 3 --lr 1e30 --resume " + dir.file("ck/last.safetensors"));
  CHECK(bad.exit_code == 1);
  CHECK_MESSAGE(bad.output.find("training stopped: the loss is") != std::string::npos, bad.output);
  CHECK(bad.output.find("at epoch 2, step ") != std::string::npos);
  CHECK(bad.output.find("ck/last.safetensors (epoch 1), is kept") != std::string::npos);
  CHECK(bad.output.find("epoch 2/3") == std::string::npos);  // no epoch was reported or saved
  CHECK(read_file(dir.file("ck/last.safetensors")) == before);
}

TEST_CASE("cifar bad input: damaged checkpoints are refused by name") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  const std::string common = "./apps/cifar --data " + data + " --limit-train 64 --limit-test 50 --batch-size 32";
  CommandResult good = run_command(common + " --epochs 1 --quant standard --checkpoint " + dir.file("ck"));
  REQUIRE_MESSAGE(good.exit_code == 0, good.output);
  const std::string ck = dir.file("ck/last.safetensors");
  struct Case {
    std::string name;
    std::function<void(SafetensorsFile&)> edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {"no_epoch", [](SafetensorsFile& f) { f.metadata.erase("epoch"); }, "metadata 'epoch' is missing"},
      {"text_epoch", [](SafetensorsFile& f) { f.metadata["epoch"] = "one"; }, "metadata 'epoch' should be a whole number >= 0, found 'one'"},
      {"bad_best", [](SafetensorsFile& f) { f.metadata["best_accuracy"] = "high"; }, "metadata 'best_accuracy' should be a finite number"},
      {"no_steps", [](SafetensorsFile& f) { f.metadata.erase("optimizer_steps"); }, "metadata 'optimizer_steps' is missing"},
      {"no_quant_state", [](SafetensorsFile& f) { drop_quantization_state(f); }, "holds no quantizer state (quantization.step)"},
      {"old_quant_step", [](SafetensorsFile& f) { drop_quantization_state(f), f.metadata["quant_step"] = "1e3"; },
       "metadata 'quant_step' should be a whole number"},
      {"bad_quant_state", [](SafetensorsFile& f) { f.tensors.back().tensor = Tensor::zeros({3}); }, "quantization."},
      {"bad_setting", [](SafetensorsFile& f) { f.metadata["setting.lr"] = "inf"; }, "recorded setting --lr: bad value 'inf'"},
      {"nan_weight", [](SafetensorsFile& f) { f.tensors[0].tensor.data()[3] = std::nanf(""); }, "holds a non-finite value (nan) at index 3"},
      {"extra", [](SafetensorsFile& f) { f.tensors.push_back({"layer9.conv.weight", Tensor::zeros({2})}); },
       "tensor 'layer9.conv.weight' is not part of this model"},
      {"missing", [](SafetensorsFile& f) { f.tensors.erase(f.tensors.begin()); }, "conv1.weight"}};
  for (const Case& c : cases) {
    const std::string path = dir.file(c.name + ".safetensors");
    edited_copy(ck, path, c.edit);
    CommandResult r = run_command(common + " --epochs 2 --resume " + path);
    CHECK_MESSAGE(r.exit_code == 1, c.name << " -> " << r.output);
    CHECK_MESSAGE(r.output.find(c.message) != std::string::npos, c.name << " -> " << r.output);
    CHECK_MESSAGE(r.output.find(path) != std::string::npos, c.name << " -> " << r.output);
    CHECK_MESSAGE(r.output.find("epoch 2/2") == std::string::npos, c.name);
  }
  // A bad recorded setting is refused also where the command line gives the flag again.
  const std::string path = dir.file("bad_setting_given.safetensors");
  edited_copy(ck, path, [](SafetensorsFile& f) { f.metadata["setting.lr"] = "inf"; });
  CommandResult r = run_command(common + " --epochs 2 --lr 0.1 --resume " + path);
  CHECK_MESSAGE(r.exit_code == 1, r.output);
  CHECK_MESSAGE(r.output.find(path + ": recorded setting --lr: bad value 'inf'") != std::string::npos, r.output);
}

TEST_CASE("cifar resume: settings come from the checkpoint; changes are announced or refused") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  const std::string common = "./apps/cifar --data " + data + " --limit-test 50";
  CommandResult first = run_command(common + " --limit-train 96 --batch-size 32 --epochs 1 --schedule cosine --lr 0.05"
                                             " --shortcut B --quant exponential --bucket-size 4096 --log " +
                                    dir.file("run.csv") + " --checkpoint " + dir.file("ck"));
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  const std::string ck = dir.file("ck/last.safetensors");

  // Nothing given again: the run is complete.
  CommandResult done = run_command(common + " --resume " + ck);
  CHECK(done.exit_code == 0);
  CHECK_MESSAGE(done.output.find("the run is complete (1 of 1 epochs") != std::string::npos, done.output);

  // More epochs: every other setting (shortcut B, cosine, lr, quantizer, log, checkpoint folder)
  // comes from the checkpoint, and the schedule change is announced.
  CommandResult more = run_command(common + " --resume " + ck + " --epochs 2");
  REQUIRE_MESSAGE(more.exit_code == 0, more.output);
  CHECK(more.output.find("note: --epochs 2 given, the checkpoint's run had 1: the learning-rate schedule changes") !=
        std::string::npos);
  CHECK(more.output.find("training: cosine, batch 32") != std::string::npos);
  CHECK(more.output.find("quantizer exponential (bucket 4096") != std::string::npos);
  CHECK(more.output.find("(shortcut B)") != std::string::npos);
  std::ifstream log(dir.file("run.csv"));
  int rows = 0;
  for (std::string line; std::getline(log, line);) ++rows;
  CHECK(rows == 3);  // header and both epochs, in the log the first run named
  SafetensorsFile after = load_safetensors(ck);
  CHECK(after.metadata.at("epoch") == "2");
  CHECK(after.metadata.at("setting.lr") == "0.05");
  CHECK(after.metadata.at("setting.schedule") == "cosine");

  // A model setting given with another value is refused; a quantizer change is announced.
  CommandResult other_model = run_command(common + " --resume " + ck + " --epochs 3 --shortcut A");
  CHECK(other_model.exit_code == 1);
  CHECK(other_model.output.find("the checkpoint holds a model built with --shortcut B; --shortcut A builds another one") !=
        std::string::npos);
  CommandResult other_quant = run_command(common + " --resume " + ck + " --epochs 3 --quant standard --seed 4");
  CHECK_MESSAGE(other_quant.exit_code == 0, other_quant.output);
  CHECK(other_quant.output.find("note: --quant standard given, the checkpoint's run had exponential: the gradient "
                                "quantizer starts afresh") != std::string::npos);
  CHECK(other_quant.output.find("note: --seed 4 given, the checkpoint's run had 0") != std::string::npos);
  CommandResult fewer = run_command(common + " --resume " + ck + " --epochs 1");
  CHECK(fewer.exit_code == 2);
  CHECK(fewer.output.find("has already completed 3 epochs") != std::string::npos);
}

TEST_CASE("cifar: a bucket larger than the gradient is padded by what it holds, not by its size") {
  TempDir dir;
  const std::string data = testing::write_cifar10_folder(dir.file("cifar-10-batches-bin"));
  CommandResult r = run_command("./apps/cifar --data " + data +
                                " --limit-train 32 --limit-test 20 --batch-size 32 --epochs 1 --quant hadamard"
                                " --bucket-size 99999999999");
  CHECK_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("bits/coord") != std::string::npos);
}
