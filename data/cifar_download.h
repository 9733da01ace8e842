// Fetching CIFAR-10 on first use, as torchvision's download=True does: when the folder a
// program would read CIFAR-10 from holds none of its files, the official binary archive is
// downloaded, its md5 checked against the published one, and it is unpacked into place.
//
// `dir` is interpreted as load_cifar10 does (data/cifar.h): the folder holding the .bin files,
// or a folder holding cifar-10-batches-bin/. The archive unpacks to cifar-10-batches-bin/ in
// the folder that load_cifar10 then finds it in:
//   dir = data/cifar-10-batches-bin  ->  data/cifar-10-binary.tar.gz, data/cifar-10-batches-bin/
//   dir = mydata                      ->  mydata/cifar-10-binary.tar.gz, mydata/cifar-10-batches-bin/
// That folder is created when missing, but only when its own parent exists: a mistyped path
// is an error, not a download into a new tree of folders.
//
// What it does, in order:
//  - any of the six batch files present (complete or not): nothing. load_cifar10 checks them
//    and reports exactly what is wrong; user files are never downloaded over.
//  - cifar-10-binary.tar.gz already in that folder (downloaded by hand, or by `make cifar10`):
//    its md5 is checked and it is unpacked; it is kept.
//  - else the archive is downloaded with curl (or wget) to cifar-10-binary.tar.gz.part there,
//    with a progress line when `log` is a terminal, checked, unpacked with tar, and deleted.
// Unpacking goes to .cifar-10-unpack/ in that folder and the files are renamed into place, so
// an interrupted run leaves no half-written batch file (the next run clears what it left). Every failure (offline, wrong md5,
// no curl, wget or tar) is a qnn::Error naming the URL or file, what went wrong and the ways
// around it: download the archive by hand into the folder, or point --data / CIFAR10_DIR at
// an unpacked copy.
//
// For tests and mirrors, the environment may override the source:
//   QNN_CIFAR10_URL   the archive's URL (any URL curl accepts, file:// included)
//   QNN_CIFAR10_MD5   its md5, 32 hex digits
#pragma once
#include <cstdio>
#include <string>

namespace qnn {

// The official archive and its published md5 (https://www.cs.toronto.edu/~kriz/cifar.html).
extern const char* const kCifar10Url;
extern const char* const kCifar10Md5;

// Makes sure `dir` holds CIFAR-10 (see above). Progress and what it did go to `log` (nullptr:
// silent). Returns true when it fetched or unpacked the data, false when there was nothing to
// do. Throws qnn::Error("[ensure_cifar10] ...") on failure.
bool ensure_cifar10(const std::string& dir, std::FILE* log = stdout);

}  // namespace qnn
