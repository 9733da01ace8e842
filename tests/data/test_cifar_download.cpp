// ensure_cifar10 (data/cifar_download.h) against small archives served from file:// URLs and an
// unreachable loopback port: the success path into either kind of folder, a wrong md5, a failed
// download, an archive downloaded by hand, and data already there (never downloaded over).
// Needs curl and tar (the download tests skip with a message without them).
#include <doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>

#include "data/cifar.h"
#include "data/cifar_download.h"
#include "data/md5.h"
#include "data/subprocess.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;
namespace fs = std::filesystem;

namespace {

// Sets an environment variable for the lifetime of the object, then restores it.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> saved;
  ScopedEnv(std::string n, const std::string& value) : name(std::move(n)) {
    if (const char* old = std::getenv(name.c_str())) saved = old;
    setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (saved) setenv(name.c_str(), saved->c_str(), 1);
    else unsetenv(name.c_str());
  }
};

const char* kBatches[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                          "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

// A CIFAR-10-shaped archive in `dir`: cifar-10-batches-bin/ with the six batch files at their
// real size (sparse zeros: black images of class 0) and a readme, except that the test split's
// first record is synthetic record 3 (label 3), so a reader can tell the bytes came through.
// Returns the archive's path; `md5` receives its digest.
std::string make_archive(const TempDir& dir, std::string& md5) {
  const fs::path src = fs::path(dir.path) / "src" / "cifar-10-batches-bin";
  fs::create_directories(src);
  for (const char* file : kBatches) write_zero_file((src / file).string(), 10000 * 3073);
  overwrite_cifar10_record((src / "test_batch.bin").string(), 0, 3);
  std::ofstream((src / "readme.html").string()) << "synthetic\n";
  const std::string archive = dir.file("fake-cifar-10-binary.tar.gz");
  const CommandResult r =
      run_command("tar -czSf " + archive + " -C " + (fs::path(dir.path) / "src").string() + " cifar-10-batches-bin");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  md5 = md5_file(archive);
  return archive;
}

bool have_tools() {
  if (!find_program("curl").empty() && !find_program("tar").empty()) return true;
  MESSAGE("skipped: curl and tar are needed to serve and unpack a test archive");
  return false;
}

// A URL nothing listens on: the loopback discard port, refused at once.
const std::string kUnreachable = "http://127.0.0.1:9/cifar-10-binary.tar.gz";

}  // namespace

TEST_CASE("cifar download: a missing data folder is filled from the archive, then left alone") {
  if (!have_tools()) return;
  TempDir dir;
  std::string md5;
  const std::string archive = make_archive(dir, md5);
  ScopedEnv url("QNN_CIFAR10_URL", "file://" + archive), sum("QNN_CIFAR10_MD5", md5);

  // dir names the batch folder itself, inside an existing folder (apps/cifar's default layout).
  fs::create_directory(dir.file("data"));
  const std::string batches = dir.file("data/cifar-10-batches-bin");
  // What a run killed while downloading or unpacking leaves behind is overwritten or cleared.
  write_bytes(dir.file("data/cifar-10-binary.tar.gz.part"), {1, 2, 3});
  fs::create_directory(dir.file("data/.cifar-10-unpack"));
  write_bytes(dir.file("data/.cifar-10-unpack/half-written.bin"), {4});
  CHECK(ensure_cifar10(batches, nullptr));
  for (const char* file : kBatches)
    CHECK(read_file(batches + "/" + file) == read_file(dir.file("src/cifar-10-batches-bin/") + file));
  CHECK(fs::exists(fs::path(batches) / "readme.html"));
  // Nothing of the download or the unpacking is left beside it.
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.file("data"))) {
    CHECK(entry.path().filename() == "cifar-10-batches-bin");
    ++entries;
  }
  CHECK(entries == 1);
  const ImageDataset test = load_cifar10(batches, /*train=*/false);
  CHECK(test.count == 10000);
  CHECK(test.labels[0] == 3);
  CHECK(test.image(0)[100] == synthetic_pixel(3, 100));
  CHECK(load_cifar10(batches, /*train=*/true).count == 50000);

  // Present now: nothing to do, even with the source unreachable.
  ScopedEnv offline("QNN_CIFAR10_URL", kUnreachable);
  CHECK_FALSE(ensure_cifar10(batches, nullptr));
  CHECK_FALSE(ensure_cifar10(dir.file("data"), nullptr));

  // dir names a folder to hold cifar-10-batches-bin/: created when only its parent exists.
  // Off a terminal, the log tells each step in a line of its own, the download's size included.
  ScopedEnv online("QNN_CIFAR10_URL", "file://" + archive);
  std::FILE* log = std::tmpfile();
  REQUIRE(log != nullptr);
  CHECK(ensure_cifar10(dir.file("mydata"), log));
  std::rewind(log);
  std::string said;
  for (int c; (c = std::fgetc(log)) != EOF;) said += char(c);
  std::fclose(log);
  INFO(said);
  const std::string mydata = dir.file("mydata");
  CHECK(std::regex_match(said, std::regex("cifar10: no CIFAR-10 in " + mydata + "; downloading file://" + archive +
                                          " into " + mydata + "/\n"
                                          "cifar10: downloaded [0-9.]+ MB in [0-9]+ s\n"
                                          "cifar10: md5 ok, unpacking into " + mydata + "/cifar-10-batches-bin\n"
                                          "cifar10: CIFAR-10 ready in " + mydata + "/cifar-10-batches-bin\n")));
  CHECK(read_file(dir.file("mydata/cifar-10-batches-bin/test_batch.bin")) == read_file(batches + "/test_batch.bin"));
  CHECK(load_cifar10(dir.file("mydata"), /*train=*/false).labels[0] == 3);
}

TEST_CASE("cifar download: a wrong md5 names the URL and both digests and leaves nothing behind") {
  if (!have_tools()) return;
  TempDir dir;
  std::string md5;
  const std::string archive = make_archive(dir, md5);
  const std::string wrong = "0123456789abcdef0123456789abcdef";
  ScopedEnv url("QNN_CIFAR10_URL", "file://" + archive), sum("QNN_CIFAR10_MD5", wrong);
  const std::string target = dir.file("fresh");  // does not exist yet
  const std::string message = error_message([&] { ensure_cifar10(target, nullptr); });
  CHECK(contains(message, "[ensure_cifar10]"));
  CHECK(contains(message, "file://" + archive));
  CHECK(contains(message, "md5 expected " + wrong + ", found " + md5));
  CHECK(contains(message, "the download was deleted"));
  CHECK_FALSE(fs::exists(target));  // the folder it created is gone again, with the download

  // An md5 that is not one is refused before anything happens.
  ScopedEnv bad("QNN_CIFAR10_MD5", "c32a1d4a");
  CHECK(contains(error_message([&] { ensure_cifar10(target, nullptr); }),
                 "QNN_CIFAR10_MD5 must be an md5 of 32 hex digits, found 'c32a1d4a'"));
}

TEST_CASE("cifar download: an unreachable source says what failed and what to do instead") {
  if (!have_tools()) return;
  TempDir dir;
  ScopedEnv url("QNN_CIFAR10_URL", kUnreachable);
  const std::string target = dir.file("data/cifar-10-batches-bin");
  fs::create_directory(dir.file("data"));
  const std::string message = error_message([&] { ensure_cifar10(target, nullptr); });
  CHECK(contains(message, "downloading " + kUnreachable + " failed"));
  CHECK(contains(message, "curl: "));                                  // curl's own reason
  CHECK(contains(message, "by hand into " + dir.file("data") + "/"));  // the alternatives
  CHECK(contains(message, "--data DIR"));
  CHECK(contains(message, "CIFAR10_DIR"));
  CHECK(fs::is_empty(dir.file("data")));

  // Neither curl nor wget: the message says what to install.
  ScopedEnv no_path("PATH", dir.file("data"));
  CHECK(contains(error_message([&] { ensure_cifar10(target, nullptr); }),
                 "neither curl nor wget was found to download it: install one (sudo apt-get install -y curl)"));
}

TEST_CASE("cifar download: an archive downloaded by hand is checked, unpacked and kept") {
  if (!have_tools()) return;
  TempDir dir;
  std::string md5;
  const std::string archive = make_archive(dir, md5);
  ScopedEnv url("QNN_CIFAR10_URL", kUnreachable), sum("QNN_CIFAR10_MD5", md5);
  fs::create_directory(dir.file("data"));
  const std::string placed = dir.file("data/cifar-10-binary.tar.gz");
  fs::copy_file(archive, placed);
  CHECK(ensure_cifar10(dir.file("data"), nullptr));
  CHECK(fs::exists(placed));
  CHECK(load_cifar10(dir.file("data"), /*train=*/false).labels[0] == 3);

  // A corrupt one is reported by name and left for the user to delete.
  TempDir other;
  const std::string corrupt = other.file("cifar-10-binary.tar.gz");
  write_bytes(corrupt, {1, 2, 3});
  const std::string message = error_message([&] { ensure_cifar10(other.path, nullptr); });
  CHECK(contains(message, corrupt + ": md5 expected " + md5 + ", found 5289df737df57326fcdd22597afb1fac"));
  CHECK(contains(message, "delete it and run again"));
  CHECK(fs::exists(corrupt));
}

TEST_CASE("cifar download: data already there, even incomplete, is never downloaded over") {
  TempDir dir;
  ScopedEnv url("QNN_CIFAR10_URL", kUnreachable);
  const std::string batches = dir.file("cifar-10-batches-bin");
  fs::create_directory(batches);
  write_cifar10_file(batches + "/test_batch.bin", 0, 5);  // truncated
  CHECK_FALSE(ensure_cifar10(batches, nullptr));
  CHECK_FALSE(ensure_cifar10(dir.path, nullptr));
  CHECK(contains(error_message([&] { load_cifar10(dir.path, false); }), "the file is truncated"));
  CHECK(contains(error_message([&] { load_cifar10(dir.path, true); }), "data_batch_1.bin: file not found"));

  // A file where the folder should be is load_cifar10's to report.
  write_bytes(dir.file("not-a-folder"), {0});
  CHECK_FALSE(ensure_cifar10(dir.file("not-a-folder"), nullptr));

  // A mistyped path: no download into a new tree of folders; the message names the folder.
  const std::string message = error_message([&] { ensure_cifar10(dir.file("no/such/cifar"), nullptr); });
  CHECK(contains(message, "data folder '" + dir.file("no/such/cifar") + "' not found"));
  CHECK(contains(message, "make cifar10"));
  CHECK_FALSE(fs::exists(dir.file("no")));
}
