# qnn build. `make` builds the library, the apps (./apps/cifar, ./apps/quant) and the
# benchmarks; `make test` builds the test runner too and runs every test; `make sanitize` runs the
# tests of a CPU-only build under AddressSanitizer and UndefinedBehaviorSanitizer. The CUDA
# backend is built when nvcc and cuDNN are found. Jobs run on every core unless -j is given.
# Missing Debian packages (libstb-dev; doctest-dev for the tests) are installed before compiling
# when we are root or sudo needs no password, else make stops with the command to run
# (scripts/ensure_packages.sh).
# Variables:
#   CUDA=0            CPU-only build even where CUDA is installed
#   CUDA_ARCH=90      GPU architecture (default: the visible GPU's, else 90); code for it plus PTX
#   CUDA_HOME         toolkit folder (/usr/local/cuda); nvcc, cudart and cuBLAS come from there
#   CUDNN_INCLUDE, CUDNN_LIB   cuDNN's headers and libraries (default: found in CUDA_HOME or /usr)
#   STB_INCLUDE, DOCTEST_INCLUDE   header folders (Debian's libstb-dev and doctest-dev)
#   TURBOJPEG         libjpeg-turbo's turbojpeg.h (default: /usr/include/turbojpeg.h when Debian's
#                     libturbojpeg0-dev is installed); JPEGs are then decoded with it and linked
#                     with -lturbojpeg. `make TURBOJPEG=` builds with stb_image alone.
#   MPI=0             leave MPI out where mpicxx is found (with it: data-parallel training under
#                     mpirun, docs/distributed.md)
#   PORTABLE=1        no -march=native;   BUILD=dir   where objects go
#   OPENMP=0          no OpenMP: one thread, no libgomp (capi/serial_openmp/omp.h stands in)
#   SANITIZE=1        -O1 -g1 with ASan and UBSan (what `make sanitize` sets, with CUDA=0)
#   EMU=1             the CUDA backend compiled by g++ and run on the CPU by the CUDA emulator
#                     (emu/, docs/cuda-emulator.md; what `make emulate` sets): needs the CUDA and
#                     cuDNN headers, no GPU, no nvcc
#   COVERAGE=1        gcov's counters, to list the lines no test runs (scripts/coverage.sh): with
#                     EMU=1 in the .cu files, instead of the race checker; otherwise in the CPU
#                     build, at -O1
# Binaries find cudart, cuBLAS and cuDNN through an rpath, so they start without
# LD_LIBRARY_PATH; on a machine with no GPU or no driver they run on the CPU.

SHELL := /bin/bash
# Every core, unless the command line or the environment's MAKEFLAGS asked for a number of jobs.
ifeq ($(filter -j% --jobs%,$(MAKEFLAGS) $(shell printenv MAKEFLAGS)),)
  MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif
CXX ?= g++
BUILD ?= build
PORTABLE ?= 0
STB_INCLUDE ?= /usr/include/stb
DOCTEST_INCLUDE ?= /usr/include/doctest

ARCHFLAGS := $(if $(filter 1,$(PORTABLE)),,-march=native)
OPENMP ?= 1
OPENMP_FLAG := $(if $(filter 0,$(OPENMP)),,$(shell echo 'int main(){}' | $(CXX) -fopenmp -x c++ - -o /dev/null 2>/dev/null && echo -fopenmp))
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls $(CUDA_HOME)/bin/nvcc 2>/dev/null)
CUDNN_INCLUDE ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h))))
CUDNN_LIB ?= $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libcudnn.so.9 /usr/lib/x86_64-linux-gnu/libcudnn.so.9))))
CUDA_FOUND := $(and $(NVCC),$(wildcard $(CUDNN_INCLUDE)/cudnn.h),$(wildcard $(CUDNN_LIB)/libcudnn.so.9))
CUDA ?= $(if $(CUDA_FOUND),1,0)

SANITIZE ?= 0

OPT := -O3
ifeq ($(SANITIZE),1)
  # Every finding stops the program (no recovery); float-cast-overflow is not in -fsanitize=undefined.
  # Five of UBSan's checks are left out; together they doubled the compile time of the
  # instrumented library and tests (train/run.cpp: 16.8 s with them, 9.4 s without):
  #  - null and object-size: ASan stops at the same faults (a null dereference, an access outside
  #    its object);
  #  - pointer-overflow (pointer arithmetic that wraps around the address space): ASan stops at the
  #    out-of-bounds access such a pointer would make;
  #  - alignment (a misaligned load or store) and vptr (an object used through the wrong dynamic
  #    type): the code that reads untrusted bytes (CIFAR, safetensors, payloads) is fuzzed with
  #    clang's full -fsanitize=undefined, which has both (fuzz/).
  # -g1 (function names and line numbers) is all a sanitizer's stack trace needs, in two thirds of
  # -g's compile time.
  SANITIZERS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize=null,object-size,pointer-overflow,alignment,vptr \
    -fno-sanitize-recover=all
  OPT := -O1 -g1 -fno-omit-frame-pointer $(SANITIZERS)
endif
ifeq ($(COVERAGE):$(filter 1,$(EMU)),1:)
  OPT := -O1 --coverage
endif
CXXFLAGS := -std=c++17 $(OPT) $(ARCHFLAGS) $(OPENMP_FLAG) -Wall -Wextra -I. -isystem $(STB_INCLUDE) -isystem $(DOCTEST_INCLUDE) -MMD -MP
LDFLAGS := $(strip $(SANITIZERS) $(OPENMP_FLAG) -pthread $(filter --coverage,$(OPT)))
ifeq ($(OPENMP_FLAG),)
  # The parallel loops' pragmas are ignored (-fopenmp-simd keeps the simd ones) and <omp.h> is a
  # serial stand-in: one thread.
  CXXFLAGS += -fopenmp-simd -isystem capi/serial_openmp
endif
# Position-independent code in every build: the same objects make the apps, the static library
# and the shared one (`make install`, capi/install.mk). -fno-semantic-interposition lets the
# compiler inline and call the library's own functions directly, as in an executable (no program
# replaces them at load time). On x86-64 it costs nothing measurable (bench/train_step on the
# CPU: the same images/s as without, within run-to-run noise). The emulated build (EMU=1, below)
# is never installed and is left out: its kernels and the race checker's hooks ran 15 to 20%
# slower position-independent.
PIC_FLAGS := $(if $(filter 1,$(EMU)),,-fPIC -fno-semantic-interposition)
CXXFLAGS += $(PIC_FLAGS)
TURBOJPEG ?= $(wildcard /usr/include/turbojpeg.h)
ifneq ($(TURBOJPEG),)
  # -isystem /usr/include would break #include_next in the C++ headers: only other folders.
  CXXFLAGS += -DQNN_TURBOJPEG $(addprefix -isystem ,$(filter-out /usr/include,$(patsubst %/,%,$(dir $(TURBOJPEG)))))
  LDFLAGS += -lturbojpeg
endif
LIB_SRC := $(wildcard tensor/*.cpp autograd/*.cpp nn/*.cpp optim/*.cpp data/*.cpp quant/*.cpp qat/*.cpp ptq/*.cpp qinfer/*.cpp train/*.cpp capi/*.cpp)
# MPI (Debian's libopenmpi-dev + openmpi-bin): when mpicxx is found, dist/ is built with its MPI
# communicator and the apps train data-parallel under mpirun (docs/distributed.md); without it
# they build and run as one process and the MPI tests skip. `make MPI=0` leaves it out.
MPICXX ?= $(shell command -v mpicxx 2>/dev/null)
MPI ?= $(if $(MPICXX),1,0)
ifeq ($(MPI),1)
  CXXFLAGS += -DQNN_MPI $(shell $(MPICXX) --showme:compile 2>/dev/null)
  LDFLAGS += $(filter-out -lmpi_cxx,$(shell $(MPICXX) --showme:link 2>/dev/null))
  MPI_LINE := , MPI yes
endif
LIB_SRC += $(wildcard dist/*.cpp)
# NCCL (GPU collectives, dist/nccl_communicator.h): with CUDA and MPI, where its header and
# library are in CUDA_HOME or /usr. Only that file sees the CUDA headers.
NCCL_H := $(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h))
NCCL_LIB := $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libnccl.so /usr/lib/x86_64-linux-gnu/libnccl.so))))
ifeq ($(MPI)$(CUDA)$(if $(and $(NCCL_H),$(NCCL_LIB)),1,0),111)
  $(BUILD)/dist/nccl_communicator.o: CXXFLAGS += -DQNN_NCCL -isystem $(CUDA_HOME)/include $(addprefix -isystem ,$(filter-out /usr/include,$(patsubst %/,%,$(dir $(NCCL_H)))))
  LDFLAGS += -L$(NCCL_LIB) -lnccl -Wl,-rpath,$(NCCL_LIB)
  MPI_LINE := , MPI yes + NCCL
endif
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/%.o)

EMU ?= 0
ifeq ($(EMU),1)
  ifeq ($(wildcard $(CUDA_HOME)/include/cuda_runtime.h),)
    $(error EMU=1 (make emulate) needs the CUDA toolkit's headers: no $(CUDA_HOME)/include/cuda_runtime.h (set CUDA_HOME))
  endif
  ifeq ($(wildcard $(CUDNN_INCLUDE)/cudnn.h),)
    $(error EMU=1 (make emulate) needs cuDNN's headers: no cudnn.h in $(CUDA_HOME)/include or /usr/include (set CUDNN_INCLUDE))
  endif
  # The .cu files as C++ (emu/launch.sed rewrites the launch syntax, emu/cuda_emu.h defines the
  # rest), linked with the emulated runtime, cuBLAS and cuDNN instead of NVIDIA's libraries.
  CUDA_SRC := $(wildcard tensor/*.cu autograd/*.cu nn/*.cu optim/*.cu data/*.cu quant/*.cu qat/*.cu qinfer/*.cu)
  LIB_OBJ += $(CUDA_SRC:%.cu=$(BUILD)/%.cu.o) $(patsubst %.cpp,$(BUILD)/%.o,$(wildcard emu/*.cpp))
  CXXFLAGS += -DQNN_CUDA -isystem $(CUDA_HOME)/include $(if $(filter-out /usr/include,$(CUDNN_INCLUDE)),-isystem $(CUDNN_INCLUDE))
  # Headers that launch kernels or declare shared or device variables are rewritten too, into a
  # folder searched before the sources.
  EMU_HEADERS := $(patsubst %,$(BUILD)/emu-include/%,$(shell grep -lE '<<<|__shared__|^__device__' $(wildcard $(addsuffix *.h,$(sort $(dir $(CUDA_SRC)))))))
  EMU_CUFLAGS := -g1 -ffp-contract=off -Wno-deprecated-declarations -Wno-unused-parameter -Wno-sign-compare -iquote $(BUILD)/emu-include \
    -include emu/cuda_emu.h -x c++
  # Every load and store of the kernels calls the race checker (emu/race_check.h), which uses
  # ThreadSanitizer's instrumentation but not its runtime. ASan's (SANITIZE=1) excludes it, and
  # so do gcov's counters (COVERAGE=1: which lines of the .cu files the GPU tests run,
  # scripts/coverage.sh gpu), whose updates the checker would take for a kernel's accesses
  # to host memory. Unoptimised, so that every line counts as itself.
  ifeq ($(COVERAGE),1)
    EMU_CUFLAGS += --coverage -O0
    LDFLAGS += --coverage
  else ifneq ($(SANITIZE),1)
    EMU_CUFLAGS += -fsanitize=thread --param tsan-instrument-func-entry-exit=0 --param tsan-distinguish-volatile=1
  endif
  CUDA_LINE := CUDA backend: run on the CPU by the CUDA emulator (emu/)
  # The library's host code at -O1: its tests spend their time in the emulated kernels (-O3), and
  # the library compiles in 40 s less on 2 cores for 9 s more of tests.
  $(LIB_SRC:%.cpp=$(BUILD)/%.o): CXXFLAGS := $(filter-out -O%,$(CXXFLAGS)) -O1
else ifeq ($(CUDA),1)
  # The visible GPU's architecture; on a machine without one (or without nvidia-smi) sm_90.
  ifeq ($(origin CUDA_ARCH),undefined)
    CUDA_ARCH := $(or $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d . | grep -E '^[0-9]+$$'),90)
  endif
  CUDA_SRC := $(wildcard tensor/*.cu autograd/*.cu nn/*.cu optim/*.cu data/*.cu quant/*.cu qat/*.cu qinfer/*.cu)
  LIB_OBJ += $(CUDA_SRC:%.cu=$(BUILD)/%.cu.o)
  CXXFLAGS += -DQNN_CUDA
  NVCCFLAGS := -std=c++17 -O3 -DQNN_CUDA -I. -isystem $(CUDNN_INCLUDE) -ccbin $(CXX) --expt-relaxed-constexpr \
    -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) -gencode arch=compute_$(CUDA_ARCH),code=compute_$(CUDA_ARCH) \
    -Xcompiler "$(strip $(OPENMP_FLAG) $(PIC_FLAGS)) -Wall -Wextra" -MMD -MP
  LDFLAGS += -L$(CUDA_HOME)/lib64 -lcublas -lcudart -L$(CUDNN_LIB) -l:libcudnn.so.9 \
    -Wl,-rpath,$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDNN_LIB)
  CUDA_LINE := CUDA backend: built for sm_$(CUDA_ARCH) + PTX (nvcc $(NVCC), cuDNN $(CUDNN_INCLUDE))
else
  CUDA_LINE := CUDA backend: not built (CPU only; $(if $(CUDA_FOUND),CUDA=0 given,nvcc or cuDNN not found))
endif

# What was found, once per build (`make sanitize` says it from the make it starts).
comma := ,
ifeq ($(filter sanitize emulate,$(MAKECMDGOALS)),)
  $(info qnn build: $(CXX) $(shell $(CXX) -dumpfullversion 2>/dev/null), OpenMP $(if $(OPENMP_FLAG),yes,no), \
    $(if $(ARCHFLAGS),-march=native,portable)$(comma)$(if $(SANITIZERS), ASan + UBSan -O1 in $(BUILD)$(comma))$(if $(filter --coverage,$(OPT)), gcov's counters -O1 in $(BUILD)$(comma)) \
    JPEG $(if $(TURBOJPEG),libjpeg-turbo + stb_image,stb_image)$(MPI_LINE)$(comma) $(CUDA_LINE))
endif

# The tests' own code (inputs, references, checks) is little of what they run: -O1 (-Og with the
# sanitizers, still instrumented) compiles it in half the time of the library's level.
TEST_OPT := $(if $(SANITIZERS),-Og,-O1)
# Each CHECK compiles to one function call (doctest's "super fast asserts"), not inline code with
# its own try block: about 8% less compile time for the same checks and messages; an exception
# thrown inside a CHECK fails its test case instead of that check alone.
TEST_DEFINES := -DDOCTEST_CONFIG_SUPER_FAST_ASSERTS
# Objects depend on the configuration: switching CUDA=0/1, CUDA_ARCH or the emulated kernels' flags
# rebuilds everything.
CONFIG := $(CXX) $(CXXFLAGS) | $(NVCCFLAGS)$(EMU_CUFLAGS) | $(LDFLAGS) | tests $(TEST_OPT) $(TEST_DEFINES)
$(shell mkdir -p $(BUILD); echo '$(CONFIG)' | cmp -s - $(BUILD)/config || echo '$(CONFIG)' > $(BUILD)/config)
# ./apps/* is shared by every BUILD folder: relink it when the configuration it came from changes.
$(shell echo '$(CONFIG)' | cmp -s - apps/.config || echo '$(CONFIG)' > apps/.config)
TEST_SRC := $(shell find tests -name '*.cpp' 2>/dev/null)
ifeq ($(EMU),1)
  # The emulator runs the "gpu" suite (and its own tests, below): only the files that hold one.
  TEST_SRC := tests/main.cpp $(shell grep -rl GPU_TEST_CASE tests --include='*.cpp')
else ifneq ($(CUDA),1)
  # Without the CUDA backend every GPU case skips: the files that hold nothing else are left out.
  TEST_SRC := $(filter-out $(shell grep -L -E '^\s*TEST_CASE' $(shell grep -rl GPU_TEST_CASE tests --include='*.cpp')),$(TEST_SRC))
endif
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
ifeq ($(EMU),1)
  TEST_OBJ += $(patsubst %.cu,$(BUILD)/%.cu.o,$(wildcard tests/emu/*.cu))  # the emulator's own tests
endif
$(TEST_OBJ): CXXFLAGS := $(filter-out -O%,$(CXXFLAGS)) $(TEST_OPT) $(TEST_DEFINES)
APP_SRC := $(wildcard apps/*.cpp)
APP_OBJ := $(APP_SRC:%.cpp=$(BUILD)/%.o)
APPS := $(APP_SRC:%.cpp=%)
BENCH_SRC := $(wildcard bench/*.cpp)
BENCH_OBJ := $(BENCH_SRC:%.cpp=$(BUILD)/%.o)
BENCHES := $(BENCH_SRC:%.cpp=$(BUILD)/%)

.PHONY: all test sanitize emulate clean cifar10 packages
all: $(APPS) $(BENCHES)

# Missing headers: their Debian packages are installed (or make stops with the command to run)
# before anything compiles, in one apt-get run. The test runner's doctest is needed only when
# the goals build tests. With every header in place nothing depends on `packages`, so a build
# with nothing to do runs nothing.
PACKAGES := STB_INCLUDE=$(STB_INCLUDE) DOCTEST_INCLUDE=$(DOCTEST_INCLUDE) sh scripts/ensure_packages.sh
TEST_GOALS := $(filter test sanitize emulate $(BUILD)/qnn_tests $(BUILD)/tests/%,$(MAKECMDGOALS))
NEEDED := $(filter build $(if $(TEST_GOALS),test),$(shell $(PACKAGES) --missing build test))
ifneq ($(NEEDED),)
  $(LIB_OBJ) $(APP_OBJ) $(BENCH_OBJ) $(TEST_OBJ): | packages
endif
packages:
	@$(PACKAGES) $(NEEDED)

# Written afresh: `ar r` into an existing archive would keep members that this configuration no
# longer builds (the CUDA objects after CUDA=0), and the link would then fail on them.
$(BUILD)/libqnn.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.cpp $(BUILD)/config
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

ifeq ($(EMU),1)
.SECONDARY: $(EMU_HEADERS)  # kept: make would delete a rewritten header it made only on the way
$(BUILD)/emu-include/%.h: %.h emu/launch.sed
	@mkdir -p $(@D)
	{ echo '#line 1 "$<"'; sed -E -f emu/launch.sed $<; } > $@
$(BUILD)/%.cu.o: %.cu emu/launch.sed $(BUILD)/config $(EMU_HEADERS)
	@mkdir -p $(@D)
	{ echo '#line 1 "$<"'; sed -E -f emu/launch.sed $<; } > $(BUILD)/$*.emu.cpp
	$(CXX) $(CXXFLAGS) $(EMU_CUFLAGS) -MT $@ -MF $(BUILD)/$*.cu.d -c $(BUILD)/$*.emu.cpp -o $@
else
$(BUILD)/%.cu.o: %.cu $(BUILD)/config
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
endif

# Static pattern rules name each object explicitly, so make keeps them (an object reached only
# through a pattern rule is intermediate and deleted, and the next make would compile it again).
$(APPS): apps/%: $(BUILD)/apps/%.o $(BUILD)/libqnn.a apps/.config
	$(CXX) $(filter-out apps/.config,$^) -o $@ $(LDFLAGS)

$(BENCHES): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libqnn.a
	$(CXX) $^ -o $@ $(LDFLAGS)

$(BUILD)/qnn_tests: $(TEST_OBJ) $(BUILD)/libqnn.a
	$(CXX) $^ -o $@ $(LDFLAGS)

# Runs every test; the last line sums them up as "tests: N passed, N failed, N skipped". The tests
# run the apps; a sanitizer or emulator build leaves the benchmarks out. The cases run in
# TEST_JOBS processes at once (one per core, at most 4), each taking the next case when it has
# finished one (scripts/run_tests.sh): many cases, and the apps they start, use one core at a
# time, as do the emulated kernels and much of the code under the sanitizers.
TEST_JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); echo $$(( n < 4 ? n : 4 )))
test: $(if $(filter 1,$(SANITIZE) $(EMU)),$(APPS),all) $(BUILD)/qnn_tests
	@$(TEST_ENV) scripts/run_tests.sh $(TEST_JOBS) $(BUILD)/test.log ./$(BUILD)/qnn_tests $(TEST_ARGS)

# The unit tests of a CPU-only build (in its own folder) under AddressSanitizer and
# UndefinedBehaviorSanitizer; the first finding stops the run with its stack. The apps the tests
# run are linked with the sanitizers too (./apps/* are relinked by the next plain make).
SANITIZE_BUILD ?= build-sanitize
SANITIZE_ENV := ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:print_stacktrace=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Left out, so the run takes minutes on two cores: the end-to-end runs that train ./apps/cifar
# several times ("cifar: resume ...", "cifar: QAT runs resume ...", "cifar: quantized training
# ...", "cifar resume: settings ...", "cifar bad input: a diverging run ...": about 5 minutes
# together under ASan) and the 5,000-image epoch (with CIFAR10_DIR); ./apps/imagenet's training
# on the ants/bees folder (with HYMENOPTERA_DIR) and the ImageNet ResNets' logits against
# torchvision (ResNet-50 forward passes: minutes under ASan; their shapes and names are still
# checked). "cifar bad input: damaged checkpoints ..." and "cifar: a bucket larger ..." still run
# ./apps/cifar's training, checkpoint, resume and quantization paths under the sanitizers, and the
# QAT layers, their export and their state are tested directly; make test runs everything.
SANITIZE_TEST_ARGS ?= "-tce=cifar: resume continues bit-identically,cifar: QAT runs resume*,cifar: one epoch on 5*,cifar: quantized training*,cifar resume: settings*,cifar bad input: a diverging*,imagenet app: ResNet-18 trains*,imagenet resnet: logits*,imagenet resnet: a saved state dict*"
# MPI=0: OpenMPI's start-up allocations would read as leaks; the MPI tests skip there.
sanitize:
	@$(MAKE) --no-print-directory CUDA=0 MPI=0 SANITIZE=1 BUILD=$(SANITIZE_BUILD) \
	  TEST_ENV='$(SANITIZE_ENV)' TEST_ARGS='$(SANITIZE_TEST_ARGS)' test

# The CUDA backend's tests (the "gpu" suite: every CUDA op against its CPU twin, the training
# steps, graph capture, the quantizers) on the CUDA emulator, in a folder of its own: no GPU
# needed; every load and store of the kernels is checked for races between their threads and for
# host memory (emu/race_check.h). The apps the tests run are linked with the emulator too
# (./apps/* are relinked by the next plain make). docs/cuda-emulator.md says what it checks and
# what it cannot.
# `make emulate SANITIZE=1 EMULATE_BUILD=build-emulate-sanitize` runs them under ASan and UBSan
# instead of the race checker (the fibers are announced to ASan; the allocator's cache lives to
# the end, so no leak check).
EMULATE_BUILD ?= build-emulate
emulate:
	@$(MAKE) --no-print-directory EMU=1 CUDA=0 MPI=0 BUILD=$(EMULATE_BUILD) TEST_ARGS='-ts=gpu,emulator $(EMULATE_ARGS)' \
	  TEST_ENV='ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1' test

# Downloads the official CIFAR-10 binary archive, checks its md5 and unpacks it into data/.
cifar10:
	sh scripts/fetch_cifar10.sh data

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD) $(EMULATE_BUILD) $(APPS)

include fuzz/fuzz.mk
include capi/install.mk

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(APP_SRC:%.cpp=$(BUILD)/%.d) $(BENCH_SRC:%.cpp=$(BUILD)/%.d)
