// The emulated GPU's memory (emu/device_memory.h): one reserved range of the address space,
// handed out from its start and never reused, closed to host code except while the emulator plays
// the GPU. A fault inside the range while it is closed is host code touching device memory: the
// handler says so, then lets the fault take its course (the previous handler, or the default).
#include "emu/device_memory.h"

#include <execinfo.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu/race_check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define QNN_EMU_POISON(p, n) __asan_poison_memory_region((p), (n))
#define QNN_EMU_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define QNN_EMU_POISON(p, n) ((void)(p), (void)(n))
#define QNN_EMU_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace qnn_emu {

namespace {

constexpr size_t kAlignment = 256;
constexpr size_t kGap = 256;  // between blocks: an overrun lands in no block (poisoned under ASan)
// Opening and closing the range changes the protection of every page in use, so the range is
// backed by huge pages where the system has them, and opened in whole ones (a change of
// protection over part of a huge page would split it).
constexpr size_t kHugePage = size_t(2) << 20;

char* base = nullptr;       // the reserved range
size_t reserved = 0;
size_t next = 0;            // offset of the next block
size_t opened = 0;          // bytes from `base` that are readable and writable now
int open_depth = 0;
size_t page = 4096;
struct sigaction previous_handler;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

void say(const char* text) { (void)!write(STDERR_FILENO, text, std::strlen(text)); }

void on_fault(int, siginfo_t* info, void*) {
  const char* at = static_cast<const char*>(info->si_addr);
  if (base && at >= base && at < base + reserved) {
    char line[320];
    if (open_depth == 0)
      std::snprintf(line, sizeof line,
                    "CUDA emulator: host code read or wrote device memory at %p. On a GPU this faults too: memory "
                    "from cudaMalloc is the GPU's, and the host sees it only through cudaMemcpy. The host code:\n",
                    static_cast<const void*>(at));
    else
      std::snprintf(line, sizeof line, "CUDA emulator: an access to %p, beyond every device allocation made so far\n",
                    static_cast<const void*>(at));
    say(line);
    void* frames[48];
    backtrace_symbols_fd(frames, backtrace(frames, 48), STDERR_FILENO);
  }
  // Back to the handler before ours (a test framework's, a sanitizer's, or the default): the
  // faulting access runs again on return and ends there.
  sigaction(SIGSEGV, &previous_handler, nullptr);
}

// Puts on_fault first in line for SIGSEGV. A test framework may install its own handler for each
// test and restore the one before it afterwards, so this is checked each time host code resumes.
void handle_faults_first() {
  struct sigaction current;
  sigaction(SIGSEGV, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_fault) return;
  struct sigaction action {};
  action.sa_sigaction = on_fault;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  sigaction(SIGSEGV, &action, &previous_handler);
}

bool reserve() {
  page = size_t(sysconf(_SC_PAGESIZE));
  for (size_t bytes = size_t(1) << 40; bytes >= size_t(1) << 32; bytes /= 4) {
    void* p = mmap(nullptr, bytes + kHugePage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) continue;
    base = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(p), kHugePage)), reserved = bytes;
    madvise(base, bytes, MADV_HUGEPAGE);
    handle_faults_first();
    return true;
  }
  return false;
}

void set_access(size_t from, size_t to, int protection) {
  if (to > from && mprotect(base + from, to - from, protection) != 0) {
    std::perror("CUDA emulator: mprotect of device memory");
    std::abort();
  }
}

}  // namespace

void* allocate_device_memory(size_t bytes) {
  if (!base && !reserve()) return nullptr;
  const size_t span = round_up(bytes, kAlignment) + kGap;
  if (span > reserved - next) return nullptr;
  char* p = base + next;
  next += span;
  if (open_depth > 0 && round_up(next, kHugePage) > opened) {
    set_access(opened, round_up(next, kHugePage), PROT_READ | PROT_WRITE);
    opened = round_up(next, kHugePage);
  }
  QNN_EMU_POISON(p, span);
  QNN_EMU_UNPOISON(p, bytes);
  return p;
}

DeviceMemoryRange device_memory_range() { return {base, reserved}; }

void release_device_memory(void* block, size_t bytes) {
  char* p = static_cast<char*>(block);
  race::forget(p, bytes);
  const size_t span = round_up(bytes, kAlignment) + kGap;
  QNN_EMU_POISON(p, span);
  // The whole pages inside the block go back to the system.
  const uintptr_t first = round_up(uintptr_t(p), page), last = (uintptr_t(p) + span) / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

DeviceMemoryOpen::DeviceMemoryOpen() {
  if (open_depth++ == 0 && base) {
    opened = round_up(next, kHugePage);
    set_access(0, opened, PROT_READ | PROT_WRITE);
  }
}

DeviceMemoryOpen::~DeviceMemoryOpen() {
  if (--open_depth == 0 && base) {
    set_access(0, opened, PROT_NONE);
    opened = 0;
    handle_faults_first();
  }
}

}  // namespace qnn_emu
