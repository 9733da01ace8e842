// CIFAR-10 fetched on first use (see data/cifar_download.h): find where the files belong,
// download the archive with curl or wget, check its md5, unpack it with tar into a temporary
// folder and rename the files into place.
#include "data/cifar_download.h"

#include <stdlib.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "data/md5.h"
#include "data/subprocess.h"
#include "tensor/check.h"

namespace qnn {

const char* const kCifar10Url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
const char* const kCifar10Md5 = "c32a1d4ab5d03f1284b67883e8d87530";

namespace fs = std::filesystem;

namespace {

constexpr const char* kFolder = "cifar-10-batches-bin";  // what the archive unpacks to
constexpr const char* kArchive = "cifar-10-binary.tar.gz";
constexpr const char* kBatchFiles[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                       "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};

[[noreturn]] void fail(const std::string& message) { throw Error("[ensure_cifar10] " + message); }

// Where the archive comes from: the official one, or what the environment says.
struct Source {
  std::string url = kCifar10Url;
  std::string md5 = kCifar10Md5;
};

Source source() {
  Source s;
  if (const char* url = std::getenv("QNN_CIFAR10_URL"); url && *url) s.url = url;
  if (const char* md5 = std::getenv("QNN_CIFAR10_MD5"); md5 && *md5) {
    std::string lower = md5;
    bool hex = lower.size() == 32;
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      hex = hex && std::isxdigit(static_cast<unsigned char>(c));
    }
    if (!hex) fail(str("QNN_CIFAR10_MD5 must be an md5 of 32 hex digits, found '", md5, "'"));
    s.md5 = lower;
  }
  return s;
}

// True when any batch file is where load_cifar10 would look for it (data/cifar.cpp: the
// archive's folder inside `d` when there is one, else `d` itself).
bool any_batch_file(const fs::path& d) {
  std::error_code ec;
  const fs::path folder = fs::is_directory(d / kFolder, ec) ? d / kFolder : d;
  for (const char* file : kBatchFiles)
    if (fs::exists(folder / file, ec)) return true;
  return false;
}

// Removes a file or folder (with what it holds, or only when empty) on leaving scope, unless kept.
struct RemoveOnExit {
  fs::path path;
  bool only_if_empty = false;
  bool keep = false;
  ~RemoveOnExit() {
    std::error_code ec;
    if (keep || path.empty()) return;
    if (only_if_empty) fs::remove(path, ec);  // fails, harmlessly, when not empty
    else fs::remove_all(path, ec);
  }
};

std::string megabytes(uint64_t bytes) { return str(static_cast<double>(bytes / 100000) / 10, " MB"); }

// One line of what a failed program wrote to standard error, for a message: the first (tar's
// cause; its last says only that it failed) or the last (curl repeats its message on each retry).
std::string error_line(const std::string& text, bool last) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    start = end + 1;
  }
  if (lines.empty()) return "no message";
  std::string line = last ? lines.back() : lines.front();
  return line.size() > 400 ? line.substr(0, 400) + "..." : line;
}

// The last Content-Length in a file of HTTP headers (after redirects, the final response's), or
// -1 when there is none.
int64_t content_length(const std::string& headers_path) {
  std::ifstream in(headers_path);
  std::string line;
  int64_t length = -1;
  const std::string key = "content-length:";
  while (std::getline(in, line)) {
    if (line.size() <= key.size()) continue;
    bool match = true;
    for (size_t i = 0; i < key.size() && match; ++i)
      match = std::tolower(static_cast<unsigned char>(line[i])) == key[i];
    if (match) length = std::strtoll(line.c_str() + key.size(), nullptr, 10);
  }
  return length;
}

// The progress of a download into `part`: on a terminal, one line redrawn in place (bytes,
// percent when the size is known, rate); elsewhere, a summary at the end.
class Progress {
 public:
  Progress(std::FILE* log, fs::path part, std::string headers)
      : log_(log), terminal_(log && isatty(fileno(log))), part_(std::move(part)), headers_(std::move(headers)) {}

  void tick() {
    if (!terminal_) return;
    const std::string text = line();
    std::fprintf(log_, "\r%s%*s", text.c_str(), int(width_ > text.size() ? width_ - text.size() : 0), "");
    std::fflush(log_);
    width_ = text.size();
  }

  void finish() {
    if (!log_) return;
    if (terminal_) std::fprintf(log_, "\r%s%*s\n", line().c_str(), int(width_), "");
    else std::fprintf(log_, "cifar10: downloaded %s in %.0f s\n", megabytes(bytes()).c_str(), seconds());
    std::fflush(log_);
  }

 private:
  uint64_t bytes() const {
    std::error_code ec;
    const auto size = fs::file_size(part_, ec);
    return ec ? 0 : static_cast<uint64_t>(size);
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  std::string line() const {
    const uint64_t have = bytes();
    const int64_t total = headers_.empty() ? -1 : content_length(headers_);
    std::string text = "  " + megabytes(have);
    if (total > 0) text += str(" of ", megabytes(uint64_t(total)), " (", int(100.0 * double(have) / double(total)), "%)");
    const double s = seconds();
    if (s > 0.5) text += str(", ", megabytes(uint64_t(double(have) / s)), "/s");
    return text;
  }

  std::FILE* log_;
  bool terminal_;
  fs::path part_;
  std::string headers_;  // curl's header dump, for the total size; "" with wget
  size_t width_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// A unique empty file or folder name from a mkstemp/mkdtemp pattern ending in XXXXXX.
std::string temp_file(const fs::path& pattern) {
  std::string name = pattern.string();
  const int fd = mkstemp(name.data());
  if (fd < 0) fail(str("cannot create a temporary file ", pattern.string()));
  close(fd);
  return name;
}

// What the user can do instead, for every failure message.
std::string alternatives(const Source& src, const fs::path& root) {
  return str("download ", src.url, " by hand into ", root.string(), "/ (it is checked and unpacked on the next run), or ",
             "unpack it anywhere and pass --data DIR or set CIFAR10_DIR to its ", kFolder, " folder");
}

// Downloads src.url to `part` with curl (or wget), drawing progress on `log`.
void download(const Source& src, const std::string& dir, const fs::path& part, const fs::path& root,
              std::FILE* log) {
  const std::string curl = find_program("curl"), wget = curl.empty() ? find_program("wget") : "";
  if (curl.empty() && wget.empty()) {
    fail(str("CIFAR-10 is missing and neither curl nor wget was found to download it: install one ",
             "(sudo apt-get install -y curl), or ", alternatives(src, root)));
  }
  // Checked now, not after 170 MB were downloaded for nothing.
  if (find_program("tar").empty()) {
    fail(str("tar not found, needed to unpack CIFAR-10: install it (sudo apt-get install -y tar), or ",
             alternatives(src, root)));
  }
  RemoveOnExit headers;
  std::vector<std::string> argv;
  if (!curl.empty()) {
    headers.path = temp_file(fs::temp_directory_path() / "qnn-cifar10-headers-XXXXXX");
    argv = {curl, "--fail", "--location", "--silent", "--show-error", "--connect-timeout", "20", "--retry", "2",
            "--speed-limit", "1024", "--speed-time", "60", "--dump-header", headers.path.string(), "--output",
            part.string(), src.url};
  } else {
    argv = {wget, "--no-verbose", "--timeout=20", "--tries=3", "--output-document=" + part.string(), src.url};
  }
  if (log) {
    std::fprintf(log, "cifar10: no CIFAR-10 in %s; downloading %s%s into %s/\n", dir.c_str(), src.url.c_str(),
                 src.url == kCifar10Url ? " (170 MB)" : "", root.string().c_str());
    std::fflush(log);
  }
  Progress progress(log, part, headers.path.string());
  const ProcessResult r = run_program(argv, [&] { progress.tick(); });
  if (r.exit_code != 0) {
    if (log && isatty(fileno(log))) std::fprintf(log, "\n");
    const std::string how = r.signal ? str("killed by signal ", r.signal) : str("exit status ", r.exit_code);
    const std::string program = fs::path(argv[0]).filename().string();
    std::string reason = error_line(r.errors, /*last=*/true);
    if (reason.compare(0, program.size() + 1, program + ":") != 0) reason = program + ": " + reason;
    // curl: 6 host not resolved, 7 no connection, 28 timeout; wget: 4 network failure.
    const bool offline = curl.empty() ? r.exit_code == 4 : (r.exit_code == 6 || r.exit_code == 7 || r.exit_code == 28);
    fail(str("downloading ", src.url, " failed (", reason, "; ", how, offline ? "; no internet connection?" : "",
             "). Instead: ", alternatives(src, root)));
  }
  progress.finish();
}

// Unpacks the archive with tar into a temporary folder in `root` and renames its files into
// `final`, never over an existing file. `what` names the archive in messages.
void unpack(const fs::path& archive, const std::string& what, const fs::path& root, const fs::path& final,
            std::FILE* log) {
  const std::string tar = find_program("tar");
  if (tar.empty()) fail(str("tar not found to unpack ", what, ": install it (sudo apt-get install -y tar)"));
  if (log) {
    std::fprintf(log, "cifar10: md5 ok, unpacking into %s\n", final.string().c_str());
    std::fflush(log);
  }
  // A fixed name, so a run that was killed while unpacking leaves one folder that the next
  // run clears, not one more each time.
  RemoveOnExit staging{root / ".cifar-10-unpack"};
  std::error_code ec;
  fs::remove_all(staging.path, ec);
  if (!fs::create_directory(staging.path, ec) || ec) {
    fail(str("cannot create the temporary folder ", staging.path.string(), ": ", ec.message()));
  }

  const ProcessResult r = run_program({tar, "-xzf", archive.string(), "-C", staging.path.string()});
  if (r.exit_code != 0) fail(str("could not unpack ", what, " with tar: ", error_line(r.errors, /*last=*/false)));
  const fs::path unpacked = staging.path / kFolder;
  for (const char* file : kBatchFiles) {
    if (!fs::is_regular_file(unpacked / file, ec)) {
      fail(str(what, " has the expected md5 but holds no ", kFolder, "/", file,
               ": it is not CIFAR-10's binary archive (the python or matlab version?)"));
    }
  }
  fs::create_directory(final, ec);
  if (ec) fail(str("cannot create ", final.string(), ": ", ec.message()));
  for (const fs::directory_entry& entry : fs::directory_iterator(unpacked)) {
    const fs::path target = final / entry.path().filename();
    if (fs::exists(target, ec)) continue;  // the user's file stays
    fs::rename(entry.path(), target, ec);
    if (ec) fail(str("cannot move ", entry.path().string(), " to ", target.string(), ": ", ec.message()));
  }
}

}  // namespace

bool ensure_cifar10(const std::string& dir, std::FILE* log) {
  fs::path d = fs::path(dir).lexically_normal();
  if (!d.has_filename() && d.has_parent_path()) d = d.parent_path();  // "x/" -> "x"
  std::error_code ec;
  if (fs::exists(d, ec) && (!fs::is_directory(d, ec) || any_batch_file(d))) return false;  // load_cifar10 checks

  // The folder the archive and cifar-10-batches-bin/ go in.
  const bool names_folder = d.filename() == kFolder;
  fs::path root = names_folder ? d.parent_path() : d;
  if (root.empty()) root = ".";
  const fs::path final = names_folder ? d : d / kFolder;
  const Source src = source();

  RemoveOnExit created_root{{}, /*only_if_empty=*/true};  // a folder we made goes again on failure
  if (!fs::exists(root, ec)) {
    const fs::path parent = root.parent_path().empty() ? fs::path(".") : root.parent_path();
    if (!fs::is_directory(parent, ec)) {
      fail(str("data folder '", dir, "' not found, and neither is '", parent.string(),
               "', so CIFAR-10 was not downloaded there. Pass --data DIR or set CIFAR10_DIR to the folder holding ",
               "data_batch_1.bin .. test_batch.bin (`make cifar10` downloads it into data/), or create '",
               root.string(), "' to have it downloaded into it"));
    }
    if (!fs::create_directory(root, ec) || ec) fail(str("cannot create ", root.string(), ": ", ec.message()));
    created_root.path = root;
  }

  const fs::path archive = root / kArchive;
  if (fs::exists(archive, ec)) {
    // Downloaded by hand or by `make cifar10`: the user's file, checked and kept.
    if (log) {
      std::fprintf(log, "cifar10: no CIFAR-10 in %s; checking the md5 of %s\n", dir.c_str(), archive.string().c_str());
      std::fflush(log);
    }
    const std::string found = md5_file(archive.string());
    if (found != src.md5) {
      fail(str(archive.string(), ": md5 expected ", src.md5, ", found ", found,
               ": not CIFAR-10's binary archive, or an incomplete download; delete it and run again to download it"));
    }
    unpack(archive, archive.string(), root, final, log);
  } else {
    RemoveOnExit part{root / (std::string(kArchive) + ".part")};
    download(src, dir, part.path, root, log);
    const std::string found = md5_file(part.path.string());
    if (found != src.md5) {
      const auto bytes = fs::file_size(part.path, ec);
      fail(str("downloaded ", src.url, ": md5 expected ", src.md5, ", found ", found, " (", ec ? 0 : bytes,
               " bytes: a truncated or corrupted transfer, or not the archive); the download was deleted. Run again, or ",
               alternatives(src, root)));
    }
    unpack(part.path, src.url, root, final, log);
  }
  created_root.keep = true;
  if (log) {
    std::fprintf(log, "cifar10: CIFAR-10 ready in %s\n", final.string().c_str());
    std::fflush(log);
  }
  return true;
}

}  // namespace qnn
