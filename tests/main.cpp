// The test runner: doctest's main. Tests mirror the source tree (tests/tensor, tests/autograd...).
// Tests that need data print why they skip and pass; tests that need a GPU (tests/gpu.h) are
// counted as skipped when none is usable, and the line printed first here says why.
//
// With QNN_TEST_QUEUE=DIR (what scripts/run_tests.sh sets), the process takes its cases from a
// queue that several processes share: DIR/cases holds one test-case filter per line, and DIR/next
// the number of the next line to take, read and advanced under a file lock. The process runs one
// case at a time until none is left, so processes that share the cores finish together however
// long each case is, and each case runs in a process that has already made what earlier cases
// cached (fixtures, CUDA's start-up).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/device.h"

namespace {

// The queue's next line number, taken: read and advanced under an exclusive lock of DIR/next;
// -1 if the file cannot be locked or written.
int64_t take_next(int fd) {
  if (flock(fd, LOCK_EX) != 0) return -1;
  int64_t next = 0;
  if (pread(fd, &next, sizeof next, 0) != sizeof next) next = 0;  // empty: nothing taken yet
  const int64_t advanced = next + 1;
  const bool written = pwrite(fd, &advanced, sizeof advanced, 0) == sizeof advanced;
  flock(fd, LOCK_UN);
  return written ? next : -1;
}

int run_queue(doctest::Context& context, const std::string& dir) {
  std::vector<std::string> cases;
  std::ifstream file(dir + "/cases");
  for (std::string line; std::getline(file, line);) cases.push_back(line);
  const int fd = open((dir + "/next").c_str(), O_RDWR | O_CREAT, 0644);
  if (!file.eof() || fd < 0) {
    std::fprintf(stderr, "qnn tests: QNN_TEST_QUEUE=%s: cannot read %s/cases or open %s/next\n", dir.c_str(),
                 dir.c_str(), dir.c_str());
    return 2;
  }
  int status = 0;
  for (;;) {
    const int64_t k = take_next(fd);
    if (k < 0) {  // the cases left would go unrun: a failure, not a pass
      std::fprintf(stderr, "qnn tests: QNN_TEST_QUEUE=%s: cannot lock or advance %s/next\n", dir.c_str(), dir.c_str());
      status = 2;
      break;
    }
    if (k >= int64_t(cases.size())) break;
    context.clearFilters();  // the list's own filters chose the cases
    context.setOption("test-case", cases[size_t(k)].c_str());
    status |= context.run();
  }
  close(fd);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  const qnn::CudaStatus& cuda = qnn::cuda_status();
  std::printf("qnn tests: GPU %s\n", cuda.usable ? qnn::describe_cuda(cuda).c_str()
                                                 : ("tests skipped, " + qnn::describe_cuda(cuda)).c_str());
  std::fflush(stdout);
  doctest::Context context(argc, argv);
  if (const char* queue = std::getenv("QNN_TEST_QUEUE")) {
    const std::string dir = queue;
    unsetenv("QNN_TEST_QUEUE");  // the processes the tests start (mpirun's ranks) run what they are told
    return run_queue(context, dir);
  }
  return context.run();
}
