// Races between the threads of an emulated kernel: the checker, and the instrumentation hooks it
// implements (see emu/race_check.h). This file itself is not instrumented.
#include "emu/race_check.h"

#include <cxxabi.h>
#include <dlfcn.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "emu/device_memory.h"
#include "emu/scheduler.h"

// Variables in device memory (__device__ at namespace scope), which emu/launch.sed puts here.
extern "C" char __start_qnn_emu_device[] __attribute__((weak));
extern "C" char __stop_qnn_emu_device[] __attribute__((weak));

namespace qnn_emu::race {

namespace {

// A record: the clock when the access happened and 1 + the thread's index in the launch (0: no
// access). Reads by two threads or more since the write keep the later clock and kSeveral. A write
// record with kAtomic is an atomic's: other atomics do not race with it.
constexpr int kThreadBits = 28;
constexpr uint64_t kThreadMask = (uint64_t(1) << kThreadBits) - 1;
constexpr uint64_t kSeveral = kThreadMask;
constexpr uint64_t kAtomic = uint64_t(1) << 63;
uint64_t record(uint64_t clock, uint64_t thread) { return clock << kThreadBits | thread; }
uint64_t clock_of(uint64_t r) { return (r & ~kAtomic) >> kThreadBits; }
uint64_t thread_of(uint64_t r) { return r & kThreadMask; }

struct Shadow {
  uint64_t write = 0, reads = 0;
};

// Device memory's shadow covers the first kCovered bytes of the device range (far more than the
// emulator's tests allocate in a process; addresses past it go unwatched).
constexpr size_t kCovered = size_t(1) << 38;

bool instrumented = false;           // set by __tsan_init, which instrumented code calls first
thread_local bool in_kernel = false;  // this host thread runs a kernel's blocks
bool launch_too_large = false;        // over 2^28 - 2 threads: not watched

uint64_t clock = 1;
uint64_t launch_start = 0, block_start = 0, barrier_clock = 0;
uint64_t block_atomic = 0;  // clock of the running block's first atomic, 0 if none yet
size_t threads_per_block = 0, block_index = 0;
std::vector<uint64_t> block_fence;      // per block of the launch: the clock of its last fence
std::vector<uint8_t> thread_atomic;     // per thread of the running block: made an atomic
Shadow* device_shadow = nullptr;
const char* device_base = nullptr;
size_t device_covered = 0;
std::vector<Shadow> static_shadow, dynamic_shadow, variables_shadow;
char* dynamic_base = nullptr;
size_t dynamic_bytes = 0;
const char* arguments_base = nullptr;  // the running launch's copy of its arguments
size_t arguments_bytes = 0;

void map_device_shadow() {
  const DeviceMemoryRange range = device_memory_range();
  if (!range.base || device_shadow) return;
  for (size_t covered = std::min(range.bytes, kCovered); covered >= (size_t(1) << 30); covered /= 2) {
    void* p = mmap(nullptr, covered * sizeof(Shadow), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) continue;
    device_shadow = static_cast<Shadow*>(p), device_base = range.base, device_covered = covered;
    return;
  }
  std::fprintf(stderr, "CUDA emulator: no address space for the race checker's shadow of device memory\n");
  std::abort();
}

// The shadow of [p, p + bytes) and the clock before which its records are stale (shared memory
// is the block's own; device memory lives across blocks), or null where nothing is watched.
const char* static_arena = nullptr;  // emu/scheduler.h's arena of static shared memory
inline __attribute__((always_inline)) Shadow* shadow_of(const char* p, size_t bytes, uint64_t& stale_before) {
  if (p >= device_base && p + bytes <= device_base + device_covered) {
    stale_before = launch_start;
    return device_shadow + (p - device_base);
  }
  stale_before = block_start;
  if (p >= static_arena && p + bytes <= static_arena + kStaticSharedArenaBytes)
    return static_shadow.data() + (p - static_arena);
  if (p >= dynamic_base && p + bytes <= dynamic_base + dynamic_bytes) return dynamic_shadow.data() + (p - dynamic_base);
  if (__start_qnn_emu_device && p >= __start_qnn_emu_device && p + bytes <= __stop_qnn_emu_device) {
    stale_before = launch_start;
    return variables_shadow.data() + (p - __start_qnn_emu_device);
  }
  return nullptr;
}

// How the access recorded as `r` and the running thread's access now (one of them a write) are
// ordered: not at all, or through another block's fence and an atomic on this side, which makes a
// read see the write only if it bypasses the multiprocessor's cache (a volatile load), or fully.
enum class Order { ordered, unordered, cached_read };
inline __attribute__((always_inline)) Order order(uint64_t r, uint64_t thread, uint64_t stale_before,
                                                 bool volatile_read) {
  const uint64_t at = clock_of(r), by = thread_of(r);
  if (by == 0 || at < stale_before || by == thread) return Order::ordered;
  if (at >= block_start) return at >= barrier_clock ? Order::unordered : Order::ordered;  // this block's
  // An earlier block's: ordered only by its fence and an atomic on this side. (Reads by several
  // threads keep no blocks to look up: taken as unordered.)
  if (by == kSeveral) return Order::unordered;
  const bool fenced = block_fence[(by - 1) / threads_per_block] > at;
  const bool acquired = thread_atomic[(thread - 1) % threads_per_block] ||
                        (block_atomic != 0 && block_atomic < barrier_clock);
  if (!fenced || !acquired) return Order::unordered;
  return volatile_read ? Order::ordered : Order::cached_read;
}

std::string coordinates(uint64_t thread) {
  if (thread == kSeveral) return "other threads";
  const uint64_t t = thread - 1, b = t / threads_per_block, i = t % threads_per_block;
  const dim3 grid = current_block->grid_dim, block = current_block->block_dim;
  return "thread (" + std::to_string(i % block.x) + "," + std::to_string(i / block.x % block.y) + "," +
         std::to_string(i / block.x / block.y) + ") of block (" + std::to_string(b % grid.x) + "," +
         std::to_string(b / grid.x % grid.y) + "," + std::to_string(b / grid.x / grid.y) + ")";
}

// Where in the binary the access was made, for addr2line.
std::string code_at(const void* pc) {
  Dl_info info{};
  if (!dladdr(pc, &info) || !info.dli_fname) return "";
  char offset[32];
  std::snprintf(offset, sizeof offset, "0x%lx", static_cast<unsigned long>(
                                                    static_cast<const char*>(pc) - static_cast<const char*>(info.dli_fbase) - 1));
  std::string where = std::string(" (addr2line -Cfie ") + info.dli_fname + " " + offset + ")";
  if (info.dli_sname) {
    int status = 0;
    char* name = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    where = std::string(" in ") + (status == 0 ? name : info.dli_sname) + where;
    std::free(name);
  }
  return where;
}

std::string pointer(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

// What an access does, in a report.
enum class Access { read, write, atomic };
const char* doing(Access a) {
  return a == Access::read ? " reads " : a == Access::write ? " writes " : " makes an atomic on ";
}

// Fails the launch: the running thread's access to `p` is not ordered (`how`) after the access
// recorded as `r` (a read, or a write or an atomic as its kAtomic bit says).
[[noreturn]] void report(Order how, const char* p, Access access, uint64_t r, bool r_wrote, uint64_t thread,
                         uint64_t stale_before, const void* pc) {
  const bool shared = stale_before == block_start, same_block = clock_of(r) >= block_start;
  const std::string other = coordinates(thread_of(r));
  const std::string what = coordinates(thread) + doing(access) + (shared ? "shared" : "device") + " memory at " +
                           pointer(p) +
                           (!r_wrote ? " read by " + other
                                     : " that " + other + (r & kAtomic ? " updated atomically" : " wrote"));
  fail(how == Order::cached_read
           ? what + ", with a plain load: after the fence and the atomic, a load that may hit the multiprocessor's "
                    "cache can still see an older value (read it through a volatile pointer); the load" + code_at(pc)
           : "race: " + what +
                 (same_block ? ", with no __syncthreads() between them" : ", with no fence and atomic between them") +
                 "; the second access" + code_at(pc));
}

// The running thread's number in the launch, as records hold it.
uint64_t running_thread() { return block_index * threads_per_block + thread_linear() + 1; }

// The shadow of an access to [p, p + bytes), or null where it is to memory the thread may use
// unwatched (its stack, the launch's arguments); an access to host memory fails the launch.
inline __attribute__((always_inline)) Shadow* watched(const char* p, size_t bytes, Access access, uint64_t thread,
                                                      const void* pc, uint64_t& stale_before) {
  if (Shadow* s = shadow_of(p, bytes, stale_before)) return s;
  if ((p >= arguments_base && p + bytes <= arguments_base + arguments_bytes) || owned_by_running_thread(p, bytes))
    return nullptr;
  fail(coordinates(thread) + doing(access) + "host memory at " + pointer(p) +
       ", where a GPU thread faults (a host pointer in a structure argument or in device memory?); the access" +
       code_at(pc));
}

// A GPU thread loads or stores 2, 4, 8 or 16 bytes at once only at an address that is a multiple
// of the size; elsewhere it faults (cudaErrorMisalignedAddress) where a CPU just reads. The atomics
// and the hooks of accesses whose type g++ takes to be aligned call this: a float4, a uint2, a
// double, but also a structure of two doubles (alignment 8), which g++ copies as one 16-byte
// access and nvcc as two of 8; the emulator places shared declarations on 16-byte boundaries and
// device allocations on 256-byte ones, so that an array of such structures is not taken for
// misaligned vectors. Device and shared memory only: the thread's stack is laid out by g++.
__attribute__((noinline)) void check_alignment(const void* at, size_t bytes, Access access, const void* pc) {
  if (reinterpret_cast<uintptr_t>(at) % bytes == 0) return;
  const char* p = static_cast<const char*>(at);
  uint64_t stale_before = 0;
  if (!shadow_of(p, bytes, stale_before)) return;
  fail(coordinates(running_thread()) + doing(access) + std::to_string(bytes) + " bytes of " +
       (stale_before == block_start ? "shared" : "device") + " memory at " + pointer(p) + ", not a multiple of " +
       std::to_string(bytes) + ": a GPU thread faults there (misaligned address: an access through a view "
       "that does not start on its boundary?); the access" + code_at(pc));
}

// Called only while a kernel runs (the hooks below check in_kernel first: instrumented host code
// outside kernels then costs a thread-local load, not this function's frame).
__attribute__((noinline)) void watch_access(const void* at, size_t bytes, bool write, bool is_volatile,
                                            const void* pc) {
  const char* p = static_cast<const char*>(at);
  const uint64_t thread = running_thread();
  const Access access = write ? Access::write : Access::read;
  uint64_t stale_before = 0;
  Shadow* s = watched(p, bytes, access, thread, pc, stale_before);
  if (!s) return;
  // Bytes with the same records (those of one earlier access of the same size, the usual case) are
  // checked once, as a run.
  for (size_t i = 0, end; i < bytes; i = end) {
    const Shadow b = s[i];
    for (end = i + 1; end < bytes && s[end].write == b.write && s[end].reads == b.reads;) ++end;
    const Order after_write = order(b.write, thread, stale_before, write || is_volatile);
    if (after_write != Order::ordered) report(after_write, p + i, access, b.write, true, thread, stale_before, pc);
    Shadow now = b;
    if (write) {
      const Order after_reads = order(b.reads, thread, stale_before, true);
      if (after_reads != Order::ordered) report(after_reads, p + i, access, b.reads, false, thread, stale_before, pc);
      now.write = record(clock, thread);
    } else {
      // The reads since the write, or since this block's last barrier: one thread's, or several's.
      const uint64_t before = thread_of(b.reads), when = clock_of(b.reads);
      const bool unordered = before != 0 && when >= stale_before && (when < block_start || when >= barrier_clock);
      now.reads = record(clock, unordered && before != thread ? kSeveral : thread);
    }
    if (now.write != b.write || now.reads != b.reads) std::fill(s + i, s + end, now);
  }
}

}  // namespace

bool watching() { return instrumented; }

void launch_begins(size_t blocks, size_t block_threads) {
  launch_too_large = blocks * block_threads >= kSeveral;  // its threads' numbers would not fit a record
  if (!instrumented || launch_too_large) return;
  launch_start = ++clock;
  threads_per_block = block_threads;
  block_fence.assign(blocks, 0);
  thread_atomic.assign(block_threads, 0);
  if (!device_shadow) map_device_shadow();
  if (static_shadow.empty()) {
    static_arena = static_shared_arena();
    static_shadow.resize(kStaticSharedArenaBytes);
    variables_shadow.resize(__start_qnn_emu_device ? size_t(__stop_qnn_emu_device - __start_qnn_emu_device) : 0);
  }
}

void block_begins(size_t block, void* dynamic_shared, size_t dynamic_size) {
  if (!instrumented || launch_too_large) return;
  block_start = barrier_clock = ++clock;
  block_atomic = 0;
  block_index = block;
  std::fill(thread_atomic.begin(), thread_atomic.end(), 0);
  dynamic_base = static_cast<char*>(dynamic_shared), dynamic_bytes = dynamic_size;
  if (dynamic_shadow.size() < dynamic_size) dynamic_shadow.resize(dynamic_size);
  in_kernel = true;
}

void barrier_opens() {
  if (instrumented) barrier_clock = ++clock;
}

void launch_ends() { in_kernel = false; }

void arguments(const void* p, size_t bytes) {
  arguments_base = static_cast<const char*>(p), arguments_bytes = bytes;
}

void fence() {
  if (in_kernel) block_fence[block_index] = ++clock;
}

void atomic(const void* at, size_t bytes, const void* pc) {
  if (!in_kernel) return;
  check_alignment(at, bytes, Access::atomic, pc);
  const char* p = static_cast<const char*>(at);
  const uint64_t thread = running_thread();
  uint64_t stale_before = 0;
  if (Shadow* s = watched(p, bytes, Access::atomic, thread, pc, stale_before)) {
    for (size_t i = 0; i < bytes; ++i) {
      Shadow& b = s[i];
      // Other atomics on the byte are no race; a plain write or read is, unless ordered before.
      if (!(b.write & kAtomic)) {
        const Order after_write = order(b.write, thread, stale_before, true);
        if (after_write != Order::ordered)
          report(after_write, p + i, Access::atomic, b.write, true, thread, stale_before, pc);
      }
      const Order after_reads = order(b.reads, thread, stale_before, true);
      if (after_reads != Order::ordered)
        report(after_reads, p + i, Access::atomic, b.reads, false, thread, stale_before, pc);
      // This thread's own plain write since the block's last barrier stays the record: the other
      // threads' atomics race with it. Otherwise the atomic is: the thread's later plain accesses
      // come after every atomic its own read-modify-write saw, as the last block's do.
      const bool own_unpublished_write = !(b.write & kAtomic) && thread_of(b.write) == thread &&
                                         clock_of(b.write) >= barrier_clock;
      if (!own_unpublished_write) b.write = record(clock, thread) | kAtomic;
    }
  }
  thread_atomic[thread_linear()] = 1;
  if (block_atomic == 0) block_atomic = clock;
}

void forget(const void* block, size_t bytes) {
  const char* p = static_cast<const char*>(block);
  if (!device_shadow || p < device_base || p >= device_base + device_covered) return;
  const size_t page = 4096;
  const uintptr_t from = (uintptr_t(device_shadow + (p - device_base)) + page - 1) / page * page;
  const uintptr_t to = uintptr_t(device_shadow + std::min<size_t>(p + bytes - device_base, device_covered)) / page * page;
  if (to > from) madvise(reinterpret_cast<void*>(from), to - from, MADV_DONTNEED);
}

}  // namespace qnn_emu::race

// The hooks g++'s -fsanitize=thread calls (volatile accesses apart, as the build asks). Accesses
// are reported as (address, size); the caller's return address says where in the kernel it is.
namespace {
inline __attribute__((always_inline)) void on_access(void* p, size_t bytes, bool write, bool is_volatile,
                                                     const void* pc) {
  if (qnn_emu::race::in_kernel) qnn_emu::race::watch_access(p, bytes, write, is_volatile, pc);
}
// An access the compiler takes to be aligned to its size.
inline __attribute__((always_inline)) void on_aligned_access(void* p, size_t bytes, bool write, bool is_volatile,
                                                             const void* pc) {
  using namespace qnn_emu::race;
  if (in_kernel) check_alignment(p, bytes, write ? Access::write : Access::read, pc);
  on_access(p, bytes, write, is_volatile, pc);
}
}  // namespace
extern "C" {
void __tsan_init() { qnn_emu::race::instrumented = true; }
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
#define QNN_EMU_HOOKS(n)                                                                                 \
  void __tsan_read##n(void* p) { on_aligned_access(p, n, false, false, __builtin_return_address(0)); }   \
  void __tsan_write##n(void* p) { on_aligned_access(p, n, true, false, __builtin_return_address(0)); }   \
  void __tsan_unaligned_read##n(void* p) { on_access(p, n, false, false, __builtin_return_address(0)); } \
  void __tsan_unaligned_write##n(void* p) { on_access(p, n, true, false, __builtin_return_address(0)); } \
  void __tsan_volatile_read##n(void* p) { on_aligned_access(p, n, false, true, __builtin_return_address(0)); } \
  void __tsan_volatile_write##n(void* p) { on_aligned_access(p, n, true, true, __builtin_return_address(0)); }
QNN_EMU_HOOKS(1)
QNN_EMU_HOOKS(2)
QNN_EMU_HOOKS(4)
QNN_EMU_HOOKS(8)
QNN_EMU_HOOKS(16)
#undef QNN_EMU_HOOKS
void __tsan_read_range(void* p, unsigned long n) { on_access(p, n, false, false, __builtin_return_address(0)); }
void __tsan_write_range(void* p, unsigned long n) { on_access(p, n, true, false, __builtin_return_address(0)); }
void __tsan_vptr_read(void**) {}
void __tsan_vptr_update(void**, void*) {}
}

// Atomics of host code in the instrumented files (flags, counters) are done as asked; the memory
// order given is strengthened to sequential consistency.
extern "C" {
#define QNN_EMU_ATOMICS(bits, T)                                                                               \
  T __tsan_atomic##bits##_load(const volatile T* a, int) { return __atomic_load_n(a, __ATOMIC_SEQ_CST); }      \
  void __tsan_atomic##bits##_store(volatile T* a, T v, int) { __atomic_store_n(a, v, __ATOMIC_SEQ_CST); }      \
  T __tsan_atomic##bits##_exchange(volatile T* a, T v, int) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); } \
  T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); } \
  T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); } \
  T __tsan_atomic##bits##_fetch_and(volatile T* a, T v, int) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); } \
  T __tsan_atomic##bits##_fetch_or(volatile T* a, T v, int) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }   \
  T __tsan_atomic##bits##_fetch_xor(volatile T* a, T v, int) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); } \
  int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int, int) {                     \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                   \
  }                                                                                                            \
  int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* c, T v, int, int) {                       \
    return __atomic_compare_exchange_n(a, c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                   \
  }                                                                                                            \
  T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T c, T v, int, int) {                           \
    __atomic_compare_exchange_n(a, &c, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                         \
    return c;                                                                                                  \
  }
QNN_EMU_ATOMICS(8, char)
QNN_EMU_ATOMICS(16, short)
QNN_EMU_ATOMICS(32, int)
QNN_EMU_ATOMICS(64, long)
#undef QNN_EMU_ATOMICS
void __tsan_atomic_thread_fence(int) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
void __tsan_atomic_signal_fence(int) { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
}
