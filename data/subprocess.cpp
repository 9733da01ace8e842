// Programs run without a shell (see data/subprocess.h): posix_spawn with file actions that
// point standard input and output at /dev/null and standard error at a pipe, which is read
// with poll() so that `tick` runs while the program does.
#include "data/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "tensor/check.h"

extern char** environ;

namespace qnn {

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > start ? dirs.substr(start, end - start) : ".";
    const std::string candidate = dir + "/" + name;
    struct stat info;
    if (stat(candidate.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return "";
}

namespace {

// Closes a file descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// Destroys posix_spawn's file actions when they go out of scope.
struct FileActions {
  posix_spawn_file_actions_t actions;
  FileActions() { posix_spawn_file_actions_init(&actions); }
  ~FileActions() { posix_spawn_file_actions_destroy(&actions); }
};

}  // namespace

ProcessResult run_program(const std::vector<std::string>& argv, const std::function<void()>& tick) {
  QNN_CHECK(!argv.empty(), "no program given");
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw Error(str("[run_program] cannot create a pipe: ", std::strerror(errno)));
  Fd read_end{pipe_fds[0]}, write_end{pipe_fds[1]};

  FileActions files;
  posix_spawn_file_actions_addopen(&files.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files.actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&files.actions, write_end.fd, 2);

  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error = posix_spawn(&pid, argv[0].c_str(), &files.actions, nullptr, args.data(), environ);
  if (spawn_error != 0) throw Error(str("[run_program] cannot start ", argv[0], ": ", std::strerror(spawn_error)));
  close(write_end.fd);
  write_end.fd = -1;

  // Read standard error until the program closes it (it exits), ticking between reads.
  ProcessResult result;
  const size_t kKeep = 64 * 1024;
  for (;;) {
    pollfd p{read_end.fd, POLLIN, 0};
    const int ready = poll(&p, 1, 200);
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0) {
      char buffer[4096];
      const ssize_t n = read(read_end.fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // end of file: the program closed standard error
      if (result.errors.size() < kKeep) result.errors.append(buffer, std::min(size_t(n), kKeep - result.errors.size()));
    }
    if (tick) tick();
  }

  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw Error(str("[run_program] waiting for ", argv[0], ": ", std::strerror(errno)));
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace qnn
