// Running a command-line program (curl, wget, tar) from the library, without a shell: the
// program is looked up on PATH, started with posix_spawn, its standard error is collected for
// error messages and its standard input and output go to /dev/null.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace qnn {

// The full path of `name` on PATH (the first executable file found), or "" when there is none.
std::string find_program(const std::string& name);

struct ProcessResult {
  int exit_code = -1;  // the program's exit status; -1 when a signal ended it
  int signal = 0;      // the signal that ended it, else 0
  std::string errors;  // what it wrote to standard error (its first 64 KiB)
};

// Runs argv[0] (a full path, as find_program returns) with the arguments argv[1..] and waits
// for it, calling `tick` about five times a second meanwhile (e.g. to draw progress). A program
// that cannot be started is a qnn::Error naming it.
ProcessResult run_program(const std::vector<std::string>& argv,
                          const std::function<void()>& tick = {});

}  // namespace qnn
