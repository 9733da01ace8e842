// ./apps/imagenet end to end: with HYMENOPTERA_DIR (the ants/bees folder in the ImageNet layout)
// a ResNet-18 trains from start to end, reports top-1 and top-5, writes its CSV and checkpoints,
// resumes bit-identically and evaluates; and bad command lines and folders are refused with
// the path and the reason, whether or not the folder is there.
#include <doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/apps/run_command.h"

namespace {

std::string temp_folder(const std::string& name) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("qnn_imagenet_" + std::to_string(::getpid()) + "_" + name)).string();
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
  return path;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("imagenet app: bad flags and folders are refused with the path and the reason") {
  CommandResult none = run_command("./apps/imagenet --epochs 1");
  CHECK(none.exit_code == 2);
  CHECK(none.output.find("--data DIR is required") != std::string::npos);
  const std::string root = temp_folder("bad");
  CommandResult missing = run_command("./apps/imagenet --data " + root + " --device cpu");
  CHECK(missing.exit_code == 1);
  CHECK(missing.output.find(root + "/train") != std::string::npos);
  std::filesystem::create_directories(root + "/train/cats");
  std::filesystem::create_directories(root + "/val/cats");
  CommandResult empty = run_command("./apps/imagenet --data " + root + " --device cpu");
  CHECK(empty.exit_code == 1);
  CHECK(empty.output.find("cats") != std::string::npos);
  CommandResult arch = run_command("./apps/imagenet --data " + root + " --arch resnet19");
  CHECK(arch.exit_code == 2);
  CHECK(arch.output.find("valid: resnet18, resnet34, resnet50") != std::string::npos);
  // The shared QAT flags are withheld: not offered by --help, refused with the reason.
  CommandResult qat = run_command("./apps/imagenet --data " + root + " --qat lsq");
  CHECK(qat.exit_code == 2);
  CHECK(qat.output.find("--qat: quantization-aware training is for the CIFAR ResNets (./apps/cifar); ./apps/imagenet "
                        "has no QAT models") != std::string::npos);
  CommandResult export_qat = run_command("./apps/imagenet --data " + root + " --export-qat q.safetensors");
  CHECK(export_qat.exit_code == 2);
  CHECK(export_qat.output.find("--export-qat: quantization-aware training") != std::string::npos);
  CommandResult help = run_command("./apps/imagenet --help");
  CHECK(help.exit_code == 0);
  CHECK(help.output.find("--init-weights") != std::string::npos);
  for (const char* withheld : {"--qat", "--weight-bits", "--fold-bn", "--export-qat"})
    CHECK_MESSAGE(help.output.find(std::string(withheld) + " ") == std::string::npos, withheld);
  std::filesystem::remove_all(root);
}

TEST_CASE("imagenet app: ResNet-18 trains on the ants/bees folder, resumes bit-identically and evaluates") {
  const char* data = std::getenv("HYMENOPTERA_DIR");
  if (!data) {
    MESSAGE("skipped: HYMENOPTERA_DIR is not set (point it at an ImageNet-layout folder such as the ants/bees set)");
    return;
  }
  const std::string out = temp_folder("run");
  // Small crops keep it to seconds on two cores; the transforms and the model are the real ones.
  const std::string common = "./apps/imagenet --device cpu --data " + std::string(data) +
                             " --arch resnet18 --image-size 64 --batch-size 8 --lr 0.01 --seed 2 --loader-threads 2";
  CommandResult straight = run_command(common + " --epochs 2 --log " + out + "/straight.csv");
  REQUIRE_MESSAGE(straight.exit_code == 0, straight.output);
  CHECK(straight.output.find("22 training and 12 validation images, 2 classes") != std::string::npos);
  CHECK(straight.output.find("note: lr 0.01") == std::string::npos);  // given, so not scaled
  CHECK(straight.output.find("top-5 100.00%") != std::string::npos);  // two classes: always in the top 5
  const std::vector<std::string> rows = lines_of(out + "/straight.csv");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].find("test_acc,test_top5,") != std::string::npos);

  CommandResult first = run_command(common + " --epochs 1 --checkpoint " + out + "/ck --log " + out + "/resumed.csv");
  REQUIRE_MESSAGE(first.exit_code == 0, first.output);
  CommandResult rest = run_command("./apps/imagenet --device cpu --data " + std::string(data) + " --epochs 2 --resume " +
                                   out + "/ck/last.safetensors");
  REQUIRE_MESSAGE(rest.exit_code == 0, rest.output);
  const std::vector<std::string> resumed = lines_of(out + "/resumed.csv");
  REQUIRE(resumed.size() == 3);
  // Loss and accuracy columns (everything before the epoch's seconds) agree to the bit.
  auto figures = [](const std::string& row) {
    size_t at = 0;
    for (int comma = 0; comma < 7; ++comma) at = row.find(',', at) + 1;
    return row.substr(0, at);
  };
  CHECK(figures(resumed[2]) == figures(rows[2]));

  CommandResult eval = run_command("./apps/imagenet --device cpu --data " + std::string(data) +
                                   " --evaluate --resume " + out + "/ck/last.safetensors");
  CHECK_MESSAGE(eval.exit_code == 0, eval.output);
  CHECK(eval.output.find("top-5") != std::string::npos);
  CHECK(eval.output.find("(12 images") != std::string::npos);
  // The default learning rate follows the batch: 0.1 per 256 images.
  CommandResult scaled = run_command("./apps/imagenet --device cpu --data " + std::string(data) +
                                     " --arch resnet18 --image-size 32 --batch-size 16 --epochs 1 --limit-train 16 --limit-test 8");
  CHECK_MESSAGE(scaled.exit_code == 0, scaled.output);
  CHECK(scaled.output.find("note: lr 0.00625 (0.1 per 256 images, batch 16)") != std::string::npos);
  std::filesystem::remove_all(out);
}

TEST_CASE("imagenet app: an undecodable file stops the run with its name, or is skipped and listed with its error") {
  const std::string root = temp_folder("undecodable");
  for (const char* split : {"train", "val"})
    for (const char* cls : {"a", "b"}) {
      const std::string dir = root + "/" + split + "/" + cls;
      std::filesystem::create_directories(dir);
      for (const char* image : {"baseline.jpg", "progressive.jpg", "gray.png", "rgba.png"})
        std::filesystem::copy_file(std::string("tests/fixtures/images/") + image, dir + "/" + image);
    }
  std::filesystem::copy_file("tests/fixtures/images/not_an_image.jpg", root + "/train/b/broken.jpg");
  const std::string common = "./apps/imagenet --device cpu --data " + root +
                             " --image-size 32 --batch-size 4 --epochs 1 --loader-threads 1";
  CommandResult stopped = run_command(common);
  CHECK(stopped.exit_code == 1);
  CHECK(stopped.output.find(root + "/train/b/broken.jpg") != std::string::npos);
  CommandResult skipped = run_command(common + " --skip-bad-images");
  CHECK_MESSAGE(skipped.exit_code == 0, skipped.output);
  CHECK(skipped.output.find("9 training and 8 validation images, 2 classes") != std::string::npos);
  CHECK(skipped.output.find("skipped 1 undecodable file(s) in " + root + "/train:\n  [decode_image_bytes] cannot decode " +
                            root + "/train/b/broken.jpg: the JPEG data ends before its end-of-image marker") !=
        std::string::npos);
  std::filesystem::remove_all(root);
}
