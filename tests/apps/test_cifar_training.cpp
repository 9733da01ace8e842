// ./apps/cifar end to end: resuming from a checkpoint continues bit-identically (on synthetic
// CIFAR files), and with CIFAR10_DIR set, one epoch on 5,000 real images beats chance clearly.
#include <doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "tensor/random.h"
#include "tests/apps/run_command.h"
#include "tests/gpu.h"

namespace {

// Writes the six CIFAR-10 batch files with seeded random pixels and labels.
std::string write_synthetic_cifar10() {
  char pattern[] = "/tmp/qnn_cifar_XXXXXX";
  std::string dir = mkdtemp(pattern);
  const char* names[] = {"data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"};
  std::vector<char> record(3073);
  for (int f = 0; f < 6; ++f) {
    std::ofstream out(dir + "/" + names[f] + ".bin", std::ios::binary);
    for (int i = 0; i < 10000; ++i) {
      qnn::Philox4 w = qnn::random_words(7, f, i);
      record[0] = static_cast<char>(w.v[0] % 10);
      for (int p = 1; p < 3073; ++p) record[p] = static_cast<char>((w.v[1] >> (p % 24)) + p * record[0]);
      out.write(record.data(), record.size());
    }
  }
  return dir;
}

std::vector<std::string> csv_rows(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> rows;
  for (std::string line; std::getline(in, line);) rows.push_back(line);
  return rows;
}

// Columns 3 and 5 (train_loss, test_loss) of a CSV row.
std::string losses(const std::string& row) {
  std::stringstream s(row);
  std::string cell, out;
  for (int c = 0; std::getline(s, cell, ','); ++c)
    if (c == 2 || c == 4) out += cell + ";";
  return out;
}

// Trains `common` (flags without --epochs) for 3 epochs straight, and for 1 epoch then resumed to
// 3 from its checkpoint with no other flag given again. The two logs must hold the same losses.
struct ResumeRuns {
  std::vector<std::string> straight, resumed;  // CSV rows
  CommandResult rest;                          // the resumed run
};
// `device` holds the flags the resumed run needs again (the device is not a setting of the run).
ResumeRuns straight_and_resumed(const std::string& data, const std::string& common,
                                const std::string& device = "--device cpu") {
  std::system(("rm -rf " + data + "/ck " + data + "/resumed.csv").c_str());
  CommandResult straight = run_command(common + " --epochs 3 --log " + data + "/straight.csv");
  REQUIRE_MESSAGE(straight.exit_code == 0, straight.output);
  CommandResult first = run_command(common + " --epochs 1 --checkpoint " + data + "/ck --log " + data + "/resumed.csv");
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  ResumeRuns runs;
  runs.rest = run_command("./apps/cifar " + device + " --data " + data + " --epochs 3 --resume " + data + "/ck/last.safetensors");
  REQUIRE_MESSAGE(runs.rest.exit_code == 0, runs.rest.output);
  runs.straight = csv_rows(data + "/straight.csv");
  runs.resumed = csv_rows(data + "/resumed.csv");
  REQUIRE(runs.straight.size() == 4);
  REQUIRE(runs.resumed.size() == 4);
  for (int e = 1; e <= 3; ++e)
    CHECK_MESSAGE(losses(runs.straight[e]) == losses(runs.resumed[e]), runs.straight[e] << " vs " << runs.resumed[e]);
  return runs;
}

}  // namespace

TEST_CASE("cifar: resume continues bit-identically") {
  const std::string data = write_synthetic_cifar10();
  // Multistep's learning rate depends on the epoch only, so a 1-epoch run is the first epoch of
  // the 3-epoch run, and resuming it must reproduce epochs 2 and 3 exactly. amq fits its levels
  // at step 0: the checkpoint must carry them (and its multiplier) for the resumed run to match.
  // A bf16 run's resume takes --precision bf16 back from the checkpoint.
  for (const char* quant : {"standard --bucket-size 4096", "amq", "none --precision bf16"}) {
    CAPTURE(quant);
    // On the CPU, whose arithmetic is the same in every process (the GPU's bit-identical resume
    // needs --deterministic: the next test).
    const std::string common = "./apps/cifar --device cpu --data " + data +
                               " --limit-train 384 --limit-test 128 --batch-size 64 --schedule multistep"
                               " --milestones 2 --nesterov --seed 5 --quant " + quant;
    const ResumeRuns runs = straight_and_resumed(data, common);
    CHECK(runs.rest.output.find("resumed") != std::string::npos);
    if (std::string(quant).find("bf16") != std::string::npos)
      CHECK_MESSAGE(runs.rest.output.find("bf16 convolutions") != std::string::npos, runs.rest.output);
  }
  // --evaluate reports the checkpoint's test accuracy.
  CommandResult eval = run_command("./apps/cifar --data " + data + " --limit-test 128 --evaluate --resume " + data +
                                   "/ck/last.safetensors");
  CHECK_MESSAGE(eval.exit_code == 0, eval.output);
  CHECK(eval.output.find("test: loss") != std::string::npos);
  // A checkpoint for another architecture is refused by name.
  CommandResult wrong = run_command("./apps/cifar --data " + data + " --arch resnet32 --evaluate --resume " + data +
                                    "/ck/last.safetensors");
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.output.find("ck/last.safetensors") != std::string::npos);
  std::system(("rm -rf " + data).c_str());
}

GPU_TEST_CASE("cifar: with --deterministic a run on the GPU resumes bit-identically") {
  // Another process must choose the same cuDNN algorithms: --deterministic takes them from the
  // heuristics, not from timing (tensor/conv.cu), and every reduction of ours is in a fixed order.
  const std::string data = write_synthetic_cifar10();
  const std::string device = "--device cuda --deterministic";
  const std::string common = "./apps/cifar " + device + " --data " + data +
                             " --limit-train 16 --limit-test 8 --batch-size 8 --schedule multistep"
                             " --milestones 2 --seed 5 --quant standard --bucket-size 4096";
  const ResumeRuns runs = straight_and_resumed(data, common, device);
  CHECK(runs.rest.output.find("device cuda") != std::string::npos);
  std::system(("rm -rf " + data).c_str());
}

TEST_CASE("cifar: QAT runs resume bit-identically; --init-weights fine-tunes a float checkpoint") {
  const std::string data = write_synthetic_cifar10();
  // The observers' ranges (linear) and the learned steps (lsq) must come back from the checkpoint
  // with their "initialized" flags, or the resumed run would re-initialise them.
  // The linear run also folds its batch norms and freezes them and the observers partway.
  for (const char* qat : {"linear --weight-bits 4 --act-bits 4 --fold-bn --freeze-observers-epoch 2 --freeze-bn-epoch 2",
                          "lsq --weight-bits 3 --act-bits 2 --quant standard --bucket-size 4096"}) {
    CAPTURE(qat);
    const std::string common = "./apps/cifar --device cpu --data " + data +
                               " --limit-train 256 --limit-test 64 --batch-size 64 --schedule multistep"
                               " --milestones 2 --seed 3 --qat " + qat;
    const ResumeRuns runs = straight_and_resumed(data, common);
    CHECK(runs.straight[0].substr(runs.straight[0].size() - 4) == ",qat");
    CHECK(runs.rest.output.find(std::string(" | qat ") + (qat[1] == 'i' ? "linear W4A4" : "lsq W3A2")) != std::string::npos);
    // A QAT checkpoint cannot be resumed as another model.
    CommandResult other = run_command("./apps/cifar --data " + data + " --epochs 4 --act-bits 8 --resume " + data +
                                      "/ck/last.safetensors");
    CHECK(other.exit_code == 1);
    CHECK(other.output.find("--act-bits") != std::string::npos);
  }
  // The last run's checkpoint (lsq W3A2) exports to packed integers, which numpy reads back. The
  // export reads no data: --data names a folder that does not exist.
  CommandResult exported = run_command("./apps/cifar --data " + data + "/absent --export-qat " + data +
                                       "/lsq.safetensors --resume " + data + "/ck/last.safetensors");
  REQUIRE_MESSAGE(exported.exit_code == 0, exported.output);
  CHECK(exported.output.find("exported resnet20 (lsq W3A2)") != std::string::npos);
  CHECK(exported.output.find("data: ") == std::string::npos);
  // --evaluate runs the export with the integer engine (qinfer/), printing the accuracy as for a checkpoint.
  CommandResult integer = run_command("./apps/cifar --data " + data + " --limit-test 64 --evaluate --resume " + data +
                                      "/lsq.safetensors");
  REQUIRE_MESSAGE(integer.exit_code == 0, integer.output);
  CHECK(integer.output.find("model: resnet20 lsq W3A2, integer arithmetic") != std::string::npos);
  CHECK(integer.output.find("test: loss ") != std::string::npos);
  CHECK(integer.output.find("(64 images") != std::string::npos);
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") == 0) {
    CommandResult read = run_command("/usr/bin/python3 scripts/read_qat_export.py " + data + "/lsq.safetensors");
    CHECK_MESSAGE(read.exit_code == 0, read.output);
    CHECK(read.output.find("weight layer3.2.conv2.weight [64, 64, 3, 3] bits 3") != std::string::npos);
  }
  CommandResult no_resume = run_command("./apps/cifar --data " + data + " --export-qat " + data + "/x.safetensors");
  CHECK(no_resume.exit_code == 2);
  // A float checkpoint's weights start a QAT run; the QAT checkpoint's weights start another.
  const std::string base = "./apps/cifar --data " + data + " --limit-train 128 --limit-test 64 --batch-size 64 --epochs 1";
  std::system(("rm -rf " + data + "/fp " + data + "/q").c_str());
  REQUIRE(run_command(base + " --checkpoint " + data + "/fp").exit_code == 0);
  CommandResult tuned = run_command(base + " --qat pact --weight-bits 2 --act-bits 2 --checkpoint " + data +
                                    "/q --init-weights " + data + "/fp/last.safetensors");
  REQUIRE_MESSAGE(tuned.exit_code == 0, tuned.output);
  CHECK(tuned.output.find("initial weights: ") != std::string::npos);
  // Its learned clipping carries over to a run with the same settings, not to one with other bits.
  CommandResult same = run_command(base + " --qat pact --weight-bits 2 --act-bits 2 --init-weights " + data +
                                   "/q/last.safetensors");
  CHECK_MESSAGE(same.exit_code == 0, same.output);
  CHECK(same.output.find("initial weights: ") != std::string::npos);
  CHECK(same.output.find("is not taken") == std::string::npos);
  CommandResult again = run_command(base + " --qat pact --init-weights " + data + "/q/last.safetensors");
  CHECK_MESSAGE(again.exit_code == 0, again.output);
  CHECK(again.output.find("its quantizers' state is for other QAT settings and is not taken") != std::string::npos);
  CommandResult float_export = run_command("./apps/cifar --data " + data + " --export-qat " + data +
                                           "/f.safetensors --resume " + data + "/fp/last.safetensors");
  CHECK(float_export.exit_code == 1);
  CHECK(float_export.output.find("--export-qat needs a QAT checkpoint") != std::string::npos);
  // Wrong combinations are flag errors.
  CommandResult wide = run_command(base + " --qat lsq --wrpn-width 2");
  CHECK(wide.exit_code == 2);
  CHECK(wide.output.find("--wrpn-width 2 widens a --qat wrpn network") != std::string::npos);
  CommandResult fold = run_command(base + " --qat dorefa --fold-bn");
  CHECK(fold.exit_code == 2);
  CHECK(fold.output.find("--fold-bn folds batch norms into --qat linear or lsq convolutions; --qat is dorefa") !=
        std::string::npos);
  CommandResult freeze = run_command(base + " --freeze-bn-epoch 2");
  CHECK(freeze.exit_code == 2);
  CHECK(freeze.output.find("--freeze-bn-epoch 2 is a QAT phase; give --qat too") != std::string::npos);
  CommandResult both = run_command(base + " --init-weights " + data + "/fp/last.safetensors --resume " + data +
                                   "/fp/last.safetensors");
  CHECK(both.exit_code == 2);
  CommandResult bad = run_command(base + " --qat lsq4");
  CHECK(bad.exit_code == 2);
  CHECK(bad.output.find("valid: none, linear, lsq, pact, dorefa, wrpn") != std::string::npos);
  CommandResult widened = run_command(base + " --qat wrpn --wrpn-width 2 --init-weights " + data + "/fp/last.safetensors");
  CHECK(widened.exit_code == 1);
  CHECK(widened.output.find("the model expects") != std::string::npos);
  std::system(("rm -rf " + data).c_str());
}

TEST_CASE("cifar: quantized training, emulated workers and the variance measurement") {
  const std::string data = write_synthetic_cifar10();
  const std::string common = "./apps/cifar --data " + data + " --limit-train 256 --limit-test 64 --batch-size 64 --epochs 1";
  CommandResult quantized = run_command(common + " --quant exponential --bucket-size 51200 --log " + data + "/q.csv");
  REQUIRE_MESSAGE(quantized.exit_code == 0, quantized.output);
  auto rows = csv_rows(data + "/q.csv");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].find("bits_per_coordinate,mean_variance") != std::string::npos);
  // 16 exponential levels: 4-bit indices plus two floats per 51200-coordinate bucket.
  CHECK(rows[1].find(",4.00") != std::string::npos);
  CommandResult workers = run_command(common + " --quant qsgd --quant-bits 4 --workers 2");
  CHECK_MESSAGE(workers.exit_code == 0, workers.output);
  CHECK(workers.output.find("batch 64 x 2 worker(s)") != std::string::npos);
  CommandResult variance = run_command(common + " --variance-steps 3 --variance-schemes standard,smart --variance-out " +
                                       data + "/var");
  REQUIRE_MESSAGE(variance.exit_code == 0, variance.output);
  CHECK(variance.output.find("standard") != std::string::npos);
  auto var_rows = csv_rows(data + "/var.csv");
  CHECK(var_rows.size() == 4);
  CHECK(var_rows[0] == "step,standard,smart");
  std::ifstream png(data + "/var.png", std::ios::binary);
  char magic[4] = {};
  png.read(magic, 4);
  CHECK(std::string(magic + 1, 3) == "PNG");
  std::system(("rm -rf " + data).c_str());
}

TEST_CASE("cifar: one epoch on 5,000 real images beats chance clearly") {
  const char* dir = std::getenv("CIFAR10_DIR");
  if (!dir) {
    MESSAGE("skipped: set CIFAR10_DIR to a CIFAR-10 binary folder to run the end-to-end training test");
    return;
  }
  char pattern[] = "/tmp/qnn_e2e_XXXXXX";
  const std::string out = mkdtemp(pattern);
  CommandResult r = run_command(std::string("./apps/cifar --data ") + dir +
                                " --epochs 1 --limit-train 5000 --limit-test 1000 --batch-size 32 --lr 0.05 --momentum 0.8"
                                " --schedule onecycle --log " + out + "/log.csv");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  auto rows = csv_rows(out + "/log.csv");
  REQUIRE(rows.size() == 2);
  std::stringstream s(rows[1]);
  std::string cell;
  double test_acc = 0;
  for (int c = 0; std::getline(s, cell, ','); ++c)
    if (c == 5) test_acc = std::stod(cell);
  MESSAGE("one epoch on 5000 images: test accuracy " << test_acc);
  CHECK(test_acc >= 0.30);
  std::system(("rm -rf " + out).c_str());
}
