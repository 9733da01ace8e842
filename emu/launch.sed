# Rewrites a .cu file's CUDA-only syntax into C++ for the emulated build (emu/cuda_emu.h):
# kernel launches (the kernel becomes a generic lambda, so a template kernel deduces its
# arguments as a launch does), dynamic shared memory, static shared memory (each declaration a
# reference to its place in the block's static shared memory, which the scheduler owns; a list of
# declarators is split first) and variables in device memory (kept in a section of their own).
s/([A-Za-z_][A-Za-z0-9_:]*(<[^<>]*>)?)<<<(.*)>>>\(/::qnn_emu::launch([](auto... qnn_emu_args) { \1(qnn_emu_args...); }, "\1", \3)(/
s/extern __shared__ ([A-Za-z_0-9]+) ([A-Za-z_0-9]+)\[\];/\1* const \2 = static_cast<\1*>(::qnn_emu::current_block->dynamic_shared);/
:split
s/__shared__ ([A-Za-z_]([A-Za-z0-9_:<> ]*[A-Za-z0-9_>])?) ([A-Za-z_][A-Za-z0-9_]*(\[[^];,]*\])*), /__shared__ \1 \3; __shared__ \1 /
t split
s/__shared__ ([A-Za-z_]([A-Za-z0-9_:<> ]*[A-Za-z0-9_>])?) ([A-Za-z_][A-Za-z0-9_]*)((\[[^];]*\])*);/auto\& \3 = ::qnn_emu::static_shared<\1\4>([] {});/g
s/^__device__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)( = [^;(]*)?;/__attribute__((section("qnn_emu_device"))) \1 \2\3;/
