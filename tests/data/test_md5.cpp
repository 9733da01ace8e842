// MD5 (data/md5.h): the test suite of RFC 1321 (appendix A.5), any split of the message into
// update() calls, and md5_file against the system's md5sum.
#include <doctest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "data/md5.h"
#include "tests/apps/run_command.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

std::string md5_of(const std::string& message) {
  Md5 md5;
  md5.update(message.data(), message.size());
  return md5.hex_digest();
}

}  // namespace

TEST_CASE("md5: RFC 1321's test suite") {
  CHECK(md5_of("") == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(md5_of("a") == "0cc175b9c0f1b6a831c399e269772661");
  CHECK(md5_of("abc") == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(md5_of("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  CHECK(md5_of("abcdefghijklmnopqrstuvwxyz") == "c3fcd3d76192e4007dfb496cca67e13b");
  CHECK(md5_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
        "d174ab98d277d9f5a5611c2c9f419d9f");
  CHECK(md5_of("1234567890123456789012345678901234567890123456789012345678901234567890"
               "1234567890") == "57edf4a22be3c955ac49da2e2107b67a");
}

TEST_CASE("md5: the digest does not depend on how the message is split into updates") {
  // Lengths around the 56- and 64-byte boundaries of the padding, and several blocks.
  for (size_t length : {55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 121u, 1000u}) {
    std::string message(length, '\0');
    for (size_t i = 0; i < length; ++i) message[i] = static_cast<char>(i * 37 + 11);
    const std::string whole = md5_of(message);
    for (size_t piece : {1u, 3u, 63u, 64u, 65u}) {
      Md5 md5;
      for (size_t start = 0; start < length; start += piece)
        md5.update(message.data() + start, std::min(piece, length - start));
      CHECK_MESSAGE(md5.hex_digest() == whole, "length ", length, ", pieces of ", piece);
    }
  }
  CHECK(md5_of("abd") != md5_of("abc"));
}

TEST_CASE("md5: a file's digest matches md5sum, and an unreadable file is a clear error") {
  TempDir dir;
  const std::string path = dir.file("batch.bin");
  write_cifar10_file(path, 0, 700);  // 2,151,100 bytes: several of md5_file's 1 MiB chunks
  const std::string digest = md5_file(path);
  CHECK(digest.size() == 32);
  const CommandResult r = run_command("md5sum " + path);
  if (r.exit_code == 0) {
    CHECK(r.output.substr(0, 32) == digest);
  } else {
    MESSAGE("md5sum not found; the file's digest is checked against the RFC's vectors only");
  }
  CHECK_THROWS_WITH_AS(md5_file(dir.file("absent.bin")),
                       doctest::Contains("absent.bin: cannot open it for reading"), Error);
}
