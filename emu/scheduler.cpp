// The block scheduler (see emu/scheduler.h): which CUDA thread runs when, on the fibers of
// emu/fiber.h. A fiber goes on to the next thread when its thread finishes (fiber_main), so a
// kernel without barriers runs every thread of a block on one stack, without a switch between
// them.
#include "emu/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "emu/fiber.h"
#include "emu/race_check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace qnn_emu {

namespace {

constexpr unsigned kWarp = 32;

enum class Wait { running, block, warp, done };

}  // namespace

struct ThreadState {
  uint3 index{};
  unsigned linear = 0;
  char* stack = nullptr;  // null until started and after it finished
  void* sp = nullptr;     // saved stack pointer while suspended
  Wait wait = Wait::running;
  // The collective it waits at: its kind, mask, argument and contribution; then its result.
  int op = 0;
  unsigned mask = 0;
  int arg = 0, width = kWarp;
  uint64_t value = 0, result = 0;
};

thread_local ThreadState* current_thread = nullptr;
thread_local BlockState* current_block = nullptr;

namespace {

struct Scheduler {
  void* sp = nullptr;  // the scheduler's own stack pointer while a fiber runs
  const void* stack_bottom = nullptr;  // the scheduler's stack, for AddressSanitizer
  size_t stack_bytes = 0;
  const std::function<void()>* body = nullptr;
  std::vector<ThreadState>* threads = nullptr;  // the running block's
  const std::vector<size_t>* order = nullptr;    // the order they start and resume in
  std::vector<size_t> rank;                      // each one's place in that order
  size_t started = 0;                            // how many of them have started
  std::string failure;
  bool failed = false;
};
thread_local Scheduler scheduler;

// Back to the scheduler from the running fiber.
void switch_to_scheduler(ThreadState* t, bool for_good) {
  fiber::switch_stack(&t->sp, scheduler.sp, scheduler.stack_bottom, scheduler.stack_bytes, for_good);
}

// A fiber runs its first thread and, each time the running thread finishes, the next thread not
// yet started, on the same stack; it returns to the scheduler when a thread waits (keeping the
// stack) or when no thread is left to start. Each thread runs until it waits or finishes, and a
// kernel without barriers costs no switches between its threads.
void fiber_main(void* first) {
  auto* t = static_cast<ThreadState*>(first);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, &scheduler.stack_bottom, &scheduler.stack_bytes);
#endif
  for (;;) {
    (*scheduler.body)();
    t->wait = Wait::done;
    std::vector<ThreadState>& threads = *scheduler.threads;
    if (scheduler.started == threads.size()) break;
    ThreadState* next = &threads[(*scheduler.order)[scheduler.started++]];
    next->stack = t->stack;
    t->stack = nullptr;
    next->wait = Wait::running;
    current_thread = t = next;
  }
  switch_to_scheduler(t, true);
  __builtin_unreachable();
}

// Runs t until a thread of its fiber waits or the fiber has nothing left to run; a finished
// thread gives its stack back.
void resume(ThreadState* t) {
  current_thread = t;
  t->wait = Wait::running;
  fiber::switch_stack(&scheduler.sp, t->sp, t->stack, fiber::kStackBytes, false);
  ThreadState* last = current_thread;  // the thread the fiber ran last
  current_thread = nullptr;
  if (last->wait == Wait::done) {
    fiber::give_back(last->stack);
    last->stack = nullptr;
  }
}

void start(ThreadState* t) {
  t->stack = fiber::take_stack();
  t->sp = fiber::initial_stack(t->stack, fiber_main, t);
  resume(t);
}

// Releases the lanes of a warp waiting at the same collective when all of its mask has arrived,
// resuming them in the block's order; returns whether it did. Lanes of the mask past the block's
// last thread do not exist and are ignored.
bool try_release_warp(std::vector<ThreadState>& threads, unsigned first) {
  const unsigned end = std::min<unsigned>(first + kWarp, unsigned(threads.size()));
  ThreadState* leader = nullptr;
  for (unsigned i = first; i < end && !leader; ++i)
    if (threads[i].wait == Wait::warp) leader = &threads[i];
  if (!leader) return false;
  const unsigned mask = leader->mask;
  const auto refuse = [&](const std::string& why) {
    scheduler.failed = true;
    scheduler.failure = "warp collective: " + why;
    return false;
  };
  for (unsigned i = first; i < end; ++i) {
    if (!(mask >> (i - first) & 1u)) continue;
    const ThreadState& t = threads[i];
    const auto lane = [&] { return "its mask names lane " + std::to_string(i - first); };
    if (t.wait == Wait::running) return false;  // not there yet
    if (t.wait == Wait::done) return refuse(lane() + ", which has exited");
    if (t.wait == Wait::block) return refuse(lane() + ", which waits at __syncthreads()");
    if (t.mask != mask || t.op != leader->op) return refuse("lanes of one mask wait at different collectives");
  }
  // Every lane of the mask waits here: compute each lane's result.
  const auto op = static_cast<WarpOp>(leader->op);
  uint64_t ballot = 0;
  for (unsigned i = first; i < end; ++i)
    if (mask >> (i - first) & 1u) ballot |= uint64_t(threads[i].value != 0) << (i - first);
  for (unsigned i = first; i < end; ++i) {
    if (!(mask >> (i - first) & 1u)) continue;
    ThreadState& t = threads[i];
    if (op == WarpOp::ballot) {
      t.result = ballot;
      continue;
    }
    // A shuffle reads lane `source` of the lane's segment of `width` lanes, or its own value when
    // that lies outside the segment.
    const unsigned lane = i - first, width = unsigned(t.width), segment = lane / width * width;
    const unsigned other = op == WarpOp::shfl_down ? lane + unsigned(t.arg) : lane ^ unsigned(t.arg);
    const unsigned source = other / width * width == segment ? other : lane;
    if (first + source >= end || !(mask >> source & 1u)) {
      scheduler.failed = true;
      scheduler.failure = "warp shuffle: lane " + std::to_string(lane) + " reads lane " + std::to_string(source) +
                          ", which is not in the mask";
      return false;
    }
    t.result = threads[first + source].value;
  }
  unsigned lanes[kWarp], count = 0;
  for (unsigned i = first; i < end; ++i)
    if (mask >> (i - first) & 1u) lanes[count++] = i;
  std::sort(lanes, lanes + count, [](unsigned a, unsigned b) { return scheduler.rank[a] < scheduler.rank[b]; });
  for (unsigned k = 0; k < count && !scheduler.failed; ++k) resume(&threads[lanes[k]]);
  return true;
}

std::string describe(const std::vector<ThreadState>& threads) {
  unsigned at_block = 0, at_warp = 0, done = 0;
  for (const ThreadState& t : threads)
    at_block += t.wait == Wait::block, at_warp += t.wait == Wait::warp, done += t.wait == Wait::done;
  return std::to_string(at_block) + " threads at __syncthreads(), " + std::to_string(at_warp) +
         " at a warp collective, " + std::to_string(done) + " exited, of " + std::to_string(threads.size());
}

// Runs one block to its end, its threads started, and resumed after each barrier, in `order`;
// false (and scheduler.failure) if it could not finish.
bool run_block(std::vector<ThreadState>& threads, const std::vector<size_t>& order) {
  for (ThreadState& t : threads) t.wait = Wait::running;
  scheduler.threads = &threads;
  scheduler.order = &order;
  scheduler.started = 0;
  while (scheduler.started < threads.size()) {
    start(&threads[order[scheduler.started++]]);
    if (scheduler.failed) return false;
  }
  std::vector<bool> tried((threads.size() + kWarp - 1) / kWarp);
  for (;;) {
    bool progress = false, live = false;
    std::fill(tried.begin(), tried.end(), false);
    for (size_t i : order) {  // each warp tried once, where its first waiting lane stands
      if (threads[i].wait != Wait::warp || tried[i / kWarp]) continue;
      tried[i / kWarp] = true;
      progress |= try_release_warp(threads, unsigned(i) / kWarp * kWarp);
      if (scheduler.failed) return false;
    }
    if (progress) continue;
    unsigned waiting = 0, exited = 0;
    for (const ThreadState& t : threads) {
      waiting += t.wait == Wait::block;
      exited += t.wait == Wait::done;
      live |= t.wait != Wait::done;
    }
    if (!live) return true;
    if (waiting + exited == threads.size() && exited > 0) {
      scheduler.failure = "__syncthreads() that some threads of the block never reach (" + describe(threads) + ")";
      return false;
    }
    if (waiting != threads.size()) {
      scheduler.failure = "the block cannot go on (" + describe(threads) + ")";
      return false;
    }
    // The barrier opens: every thread gets the reduction of the predicates.
    bool any = false;
    for (const ThreadState& t : threads) any |= t.value != 0;
    const int result = static_cast<BlockOp>(threads.front().op) == BlockOp::any ? any : 0;
    for (ThreadState& t : threads) {
      if (t.op != threads.front().op) {
        scheduler.failure = "threads of one block wait at different kinds of __syncthreads";
        return false;
      }
      t.result = uint64_t(result);
    }
    race::barrier_opens();
    for (size_t i : order) {
      resume(&threads[i]);
      if (scheduler.failed) return false;
    }
  }
}

// Suspends the running thread until the scheduler releases it.
uint64_t wait_for(Wait kind, int op, unsigned mask, uint64_t value, int arg, int width) {
  ThreadState* t = current_thread;
  t->wait = kind;
  t->op = op;
  t->mask = mask;
  t->value = value;
  t->arg = arg;
  t->width = width;
  switch_to_scheduler(t, false);
  return t->result;
}

}  // namespace

const uint3& thread_index() { return current_thread->index; }
unsigned thread_linear() { return current_thread->linear; }

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width) {
  if (width <= 0 || width > int(kWarp) || (width & (width - 1)) != 0)
    fail("warp shuffle width " + std::to_string(width) + " is not a power of two up to 32");
  if (!(mask >> (current_thread->linear % kWarp) & 1u))
    fail("warp collective called by lane " + std::to_string(current_thread->linear % kWarp) + ", which is not in its mask");
  return wait_for(Wait::warp, int(op), mask, value, arg, width);
}

int block_barrier(BlockOp op, int predicate) {
  return int(wait_for(Wait::block, int(op), 0, predicate != 0, 0, int(kWarp)));
}

bool owned_by_running_thread(const void* p, size_t bytes) {
  const auto within = [p, bytes](const void* first, size_t size) {
    return p >= first && static_cast<const char*>(p) + bytes <= static_cast<const char*>(first) + size;
  };
  const ThreadState* t = current_thread;
  return (t && within(t->stack, fiber::kStackBytes)) || within(current_block, sizeof(BlockState)) ||
         within(&current_block, sizeof current_block) || within(&current_thread, sizeof current_thread) ||
         (scheduler.body && within(scheduler.body, sizeof *scheduler.body)) ||
         (scheduler.threads && within(scheduler.threads->data(), scheduler.threads->size() * sizeof(ThreadState)));
}

void fail(const std::string& what) {
  scheduler.failed = true;
  scheduler.failure = what;
  ThreadState* t = current_thread;
  switch_to_scheduler(t, true);  // never resumed: the launch is abandoned
  __builtin_unreachable();
}

std::string refused_configuration(dim3 grid, dim3 block, size_t dynamic_shared_bytes) {
  const uint64_t threads_per_block = uint64_t(block.x) * block.y * block.z;
  if (threads_per_block == 0 || threads_per_block > 1024 || block.z > 64)
    return "a block of " + std::to_string(threads_per_block) + " threads (a GPU takes 1 to 1024)";
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535)
    return "a grid of (" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) +
           ") blocks (a GPU takes x >= 1, and y and z from 1 to 65535)";
  if (dynamic_shared_bytes > size_t(48) << 10)
    return std::to_string(dynamic_shared_bytes) + " bytes of dynamic shared memory (over 48 KiB needs an opt-in)";
  return "";
}

// The static shared memory of every kernel: declarations take their places as they first run
// (kernels run under the runtime's device lock, one at a time), and every place is filled with NaN
// bytes before each block, so that a read of an element the block has not written gives NaN (on a
// GPU: whatever the last block on that multiprocessor left), not a value an earlier block or
// launch left there.
namespace {
alignas(64) char static_shared[kStaticSharedArenaBytes];
size_t static_shared_used = 0;
void poison_static_shared() { std::memset(static_shared, 0xff, static_shared_used); }
}  // namespace

size_t allocate_static_shared(size_t bytes, size_t alignment) {
  const size_t offset = (static_shared_used + alignment - 1) / alignment * alignment;
  if (offset + bytes > kStaticSharedArenaBytes) {
    std::fprintf(stderr, "CUDA emulator: the kernels' __shared__ declarations need more than %zu bytes in all\n",
                 kStaticSharedArenaBytes);
    std::abort();
  }
  static_shared_used = offset + bytes;
  std::memset(static_shared + offset, 0xff, bytes);
  return offset;
}

char* static_shared_arena() { return static_shared; }

// The orders a launch's blocks run in and its threads start in (and resume in after a barrier or
// a warp collective). A GPU promises neither, so code whose result depends on them (a float sum
// by atomics, slots handed out by an atomic counter, "the last block" taken to be the one of the
// highest index, a thread taken to run before the others) would pass in index order and fail
// there. So both are permutations fixed by the kernel's name and the launch's size (a case run
// again, alone or after others, sees the same orders): the blocks shuffled, and the threads by
// warps, the warps in a shuffled order and the lanes of each in another (a warp's threads, which
// mostly touch neighbouring addresses, stay together, which keeps the emulator's memory accesses
// close: shuffling all of a block's threads made the GPU tests 15% slower). QNN_EMU_ORDER=index
// runs blocks and threads in index order instead, to see whether a failure depends on the order.
namespace {
std::vector<size_t> shuffled(const char* kernel, size_t count, size_t salt) {
  std::vector<size_t> order(count);
  std::iota(order.begin(), order.end(), size_t(0));
  static const bool index_order = [] {
    const char* v = std::getenv("QNN_EMU_ORDER");
    if (!v || !*v) return false;
    if (std::strcmp(v, "index") == 0) return true;
    std::fprintf(stderr, "CUDA emulator: QNN_EMU_ORDER must be 'index' or unset, got '%s'\n", v);
    std::exit(2);
  }();
  if (index_order) return order;
  std::mt19937_64 generator(std::hash<std::string_view>{}(kernel) ^ count ^ salt);
  std::shuffle(order.begin(), order.end(), generator);
  return order;
}

// A block's `threads` by warps: warp w's lanes at w * kWarp + lane, warps and lanes shuffled.
std::vector<size_t> thread_order(const char* kernel, size_t threads) {
  const std::vector<size_t> warps = shuffled(kernel, (threads + kWarp - 1) / kWarp, 0x9e3779b97f4a7c15u),
                            lanes = shuffled(kernel, kWarp, threads);
  std::vector<size_t> order;
  order.reserve(threads);
  for (size_t w : warps)
    for (size_t lane : lanes)
      if (w * kWarp + lane < threads) order.push_back(w * kWarp + lane);
  return order;
}
}  // namespace

std::string run_grid(const char* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes,
                     const std::function<void()>& body) {
  const uint64_t threads_per_block = uint64_t(block.x) * block.y * block.z;
  const auto where = [&](const std::string& what) {
    return std::string("kernel ") + kernel + " <<<(" + std::to_string(grid.x) + "," + std::to_string(grid.y) + "," +
           std::to_string(grid.z) + "), (" + std::to_string(block.x) + "," + std::to_string(block.y) + "," +
           std::to_string(block.z) + ")>>>: " + what;
  };
  std::vector<ThreadState> threads(threads_per_block);
  for (unsigned z = 0, i = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x, ++i) {
        threads[i].index = uint3{x, y, z};
        threads[i].linear = i;
      }
  std::vector<unsigned char> shared(dynamic_shared_bytes + 16);
  BlockState state;
  state.block_dim = block;
  state.grid_dim = grid;
  state.dynamic_shared = shared.data();
  BlockState* const saved = current_block;
  current_block = &state;
  scheduler.body = &body;
  scheduler.failed = false;
  std::string failure;
  const size_t blocks = size_t(grid.x) * grid.y * grid.z;
  race::launch_begins(blocks, threads_per_block);
  const std::vector<size_t> block_order = shuffled(kernel, blocks, 0);
  const std::vector<size_t> threads_order = thread_order(kernel, threads.size());
  scheduler.rank.assign(threads.size(), 0);
  for (size_t k = 0; k < threads_order.size(); ++k) scheduler.rank[threads_order[k]] = k;
  for (size_t k = 0; k < blocks && failure.empty(); ++k) {
    const size_t b = block_order[k];
    const unsigned bx = unsigned(b % grid.x), by = unsigned(b / grid.x % grid.y), bz = unsigned(b / grid.x / grid.y);
    state.block_idx = uint3{bx, by, bz};
    std::memset(shared.data(), 0xff, shared.size());  // NaN in every float: unwritten reads show
    poison_static_shared();
    race::block_begins(b, shared.data(), dynamic_shared_bytes);
    if (!run_block(threads, threads_order)) {
      failure = where("block (" + std::to_string(bx) + "," + std::to_string(by) + "," + std::to_string(bz) +
                      "): " + scheduler.failure);
      for (ThreadState& t : threads)  // abandoned fibers: their stacks are reused as they are
        if (t.stack) fiber::give_back(t.stack), t.stack = nullptr;
    }
  }
  race::launch_ends();
  current_block = saved;
  scheduler.body = nullptr;
  return failure;
}

}  // namespace qnn_emu
