// Fibers for the CUDA emulator (see emu/fiber.h): the switch in assembly, the stacks and their pool.
#include "emu/fiber.h"

#include <sys/mman.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if !defined(__x86_64__)
#error "the CUDA emulator's fibers are written for x86-64"
#endif

// qnn_emu_switch(save_sp, load_sp): pushes the six callee-saved registers, stores rsp in *save_sp,
// loads load_sp and pops the other stack's six registers; its `ret` then continues where that
// stack left off. qnn_emu_fiber_entry is where a new stack "left off": it calls r13(r12).
extern "C" void qnn_emu_switch(void** save_sp, void* load_sp);
extern "C" void qnn_emu_fiber_entry();
asm(R"(
  .pushsection .text
  .p2align 4
  .globl qnn_emu_switch
  .type qnn_emu_switch, @function
qnn_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size qnn_emu_switch, .-qnn_emu_switch

  .p2align 4
  .globl qnn_emu_fiber_entry
  .type qnn_emu_fiber_entry, @function
qnn_emu_fiber_entry:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size qnn_emu_fiber_entry, .-qnn_emu_fiber_entry
  .popsection
)");

namespace qnn_emu::fiber {

namespace {
constexpr size_t kGuardBytes = size_t(4) << 10;
thread_local std::vector<char*> free_stacks;
}  // namespace

char* take_stack() {
  if (!free_stacks.empty()) {
    char* s = free_stacks.back();
    free_stacks.pop_back();
#if defined(__SANITIZE_ADDRESS__)
    ASAN_UNPOISON_MEMORY_REGION(s, kStackBytes);  // frames an abandoned fiber never left
#endif
    return s;
  }
  void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) throw std::runtime_error("CUDA emulator: no memory for a thread's stack");
  mprotect(p, kGuardBytes, PROT_NONE);
  return static_cast<char*>(p) + kGuardBytes;
}

void give_back(char* stack) { free_stacks.push_back(stack); }

void* initial_stack(char* stack, void (*entry)(void*), void* arg) {
  // Six registers and the return address are popped: qnn_emu_fiber_entry then calls entry with
  // rsp = frame + 56, which the ABI wants 16-byte aligned.
  auto* frame = reinterpret_cast<uint64_t*>(stack + kStackBytes - 136);
  frame[2] = reinterpret_cast<uint64_t>(entry);  // r13
  frame[3] = reinterpret_cast<uint64_t>(arg);    // r12
  frame[6] = reinterpret_cast<uint64_t>(&qnn_emu_fiber_entry);
  return frame;
}

void switch_stack(void** save_sp, void* load_sp, const void* bottom, size_t bytes, bool for_good) {
#if defined(__SANITIZE_ADDRESS__)
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(for_good ? nullptr : &fake_stack, bottom, bytes);
  qnn_emu_switch(save_sp, load_sp);
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
  (void)bottom, (void)bytes, (void)for_good;
  qnn_emu_switch(save_sp, load_sp);
#endif
}

}  // namespace qnn_emu::fiber
