// Checks, before any training, that the places a run writes to can be written: a run should not
// train for an hour and then fail to save. Each error names the flag, the path and the reason.
//   prepare_output_folder("--checkpoint", "ck")   creates ck/ (and its parents) and writes a probe
//                                                  file in it; a file in the way is an error
//   check_output_file("--log", "runs/a.csv")       runs/ must exist and be writable, and a.csv must
//                                                  not be a folder
#pragma once
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "tensor/check.h"

namespace qnn {

namespace detail {
// Creates and removes a file in `folder`: the one test of writability that no permission bit,
// read-only mount or full quota can fool.
inline void probe_writable(const std::string& flag, const std::string& folder, const std::string& what) {
  std::string pattern = (folder.empty() ? std::string(".") : folder) + "/.qnn-write-test-XXXXXX";
  const int fd = mkstemp(pattern.data());
  if (fd < 0) throw Error(str(flag, " ", what, ": cannot write in '", folder.empty() ? "." : folder, "': ", std::strerror(errno)));
  close(fd);
  unlink(pattern.c_str());
}
}  // namespace detail

inline void prepare_output_folder(const std::string& flag, const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(folder, ec) && !fs::is_directory(folder, ec))
    throw Error(str(flag, " ", folder, ": exists and is not a folder"));
  fs::create_directories(folder, ec);
  if (ec) throw Error(str(flag, " ", folder, ": cannot create the folder: ", ec.message()));
  detail::probe_writable(flag, folder, folder);
}

inline void check_output_file(const std::string& flag, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(str(flag, " ", path, ": is a folder, expected a file name"));
  const std::string parent = fs::path(path).parent_path().string();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw Error(str(flag, " ", path, ": the folder '", parent, "' does not exist"));
  detail::probe_writable(flag, parent, path);
}

}  // namespace qnn
