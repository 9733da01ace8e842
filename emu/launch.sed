# Rewrites a .cu file's CUDA-only syntax into C++ for the emulated build (emu/cuda_emu.h):
# kernel launches (the kernel becomes a generic lambda, so a template kernel deduces its
# arguments as a launch does), and dynamic shared memory.
s/([A-Za-z_][A-Za-z0-9_:]*(<[^<>]*>)?)<<<(.*)>>>\(/::qnn_emu::launch([](auto... qnn_emu_args) { \1(qnn_emu_args...); }, "\1", \3)(/
s/extern __shared__ ([A-Za-z_0-9]+) ([A-Za-z_0-9]+)\[\];/\1* const \2 = static_cast<\1*>(::qnn_emu::current_block->dynamic_shared);/
