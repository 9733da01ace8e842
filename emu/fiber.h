// Fibers for the CUDA emulator: stacks of their own on which its CUDA threads run, and the switch
// between them (emu/scheduler.cpp decides what runs when). A fiber switch saves the callee-saved
// registers on the running stack, stores the stack pointer, loads the other one and restores the
// registers from there: a dozen instructions (x86-64 System V; the floating-point control words
// are left alone, since nothing here changes them). A new fiber's stack is laid out as if it had
// been switched away from at the first instruction of an entry routine, which calls entry(arg).
#pragma once
#include <cstddef>

namespace qnn_emu::fiber {

constexpr size_t kStackBytes = size_t(256) << 10;  // per CUDA thread that waits at a barrier

// A stack of kStackBytes (its lowest address), from this host thread's pool of given-back stacks
// or newly mapped below a guard page, so that an overflow faults instead of corrupting memory.
char* take_stack();
// Back to the pool, for the next take_stack; whatever frames it still holds are abandoned.
void give_back(char* stack);

// The stack pointer of `stack` laid out so that switching to it calls entry(arg), which must not
// return (it switches away for good instead).
void* initial_stack(char* stack, void (*entry)(void*), void* arg);

// Saves the running stack's pointer in *save_sp and continues on the stack [bottom, bottom +
// bytes) at load_sp, until something switches back. Under AddressSanitizer the switch is
// announced (its fiber interface), and `for_good` says the stack left will not be resumed.
void switch_stack(void** save_sp, void* load_sp, const void* bottom, size_t bytes, bool for_good);

}  // namespace qnn_emu::fiber
