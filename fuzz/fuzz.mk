# Fuzz targets (fuzz/README.md), included from the Makefile.
#   make fuzz         builds every fuzz/fuzz_<name>.cpp into $(FUZZ_BUILD)/fuzz_<name> with clang,
#                     libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer
#   make fuzz-smoke   runs each target for FUZZ_SMOKE_SECONDS on its seed corpus; fails on any
#                     crash, sanitizer report, timeout or over-limit allocation
# Variables: FUZZ_CXX (clang++), FUZZ_BUILD (build-fuzz), FUZZ_SMOKE_SECONDS (20),
# FUZZ_SMOKE_SEED (1: a smoke run tries the same inputs each time on the same corpus, so a clean
# checkout passes or fails the same way; FUZZ_SMOKE_SEED=0 lets libFuzzer pick a seed).
# The library sources the targets need are compiled here with the same sanitizers (CPU only,
# no OpenMP, no CUDA), into their own folder so the regular build is untouched.

FUZZ_CXX ?= clang++
FUZZ_BUILD ?= build-fuzz
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SMOKE_SEED ?= 1
# -fsanitize=undefined covers float-cast-overflow in recent clang; it is named as well where the
# compiler accepts it, for older ones.
FUZZ_FLOAT_CAST := $(shell $(FUZZ_CXX) -fsanitize=float-cast-overflow -x c++ -c /dev/null -o /dev/null 2>/dev/null \
  && echo ,float-cast-overflow)
FUZZ_SANITIZE := address,undefined$(FUZZ_FLOAT_CAST)
# (-Wno-unused-private-field: CudaGraph's graph_ is only used by the CUDA build, which g++ does
# not flag and clang does; -Wno-unknown-warning-option: some sources silence GCC-only warnings.)
FUZZ_CXXFLAGS := -std=c++17 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-private-field \
  -Wno-unknown-warning-option -I. \
  -isystem $(STB_INCLUDE) -isystem capi/serial_openmp -fsanitize=$(FUZZ_SANITIZE) -fno-sanitize-recover=all -MMD -MP
# The image decoders as the regular build has them: TurboJPEG for JPEGs where it is installed.
ifneq ($(TURBOJPEG),)
  FUZZ_CXXFLAGS += -DQNN_TURBOJPEG $(addprefix -isystem ,$(filter-out /usr/include,$(patsubst %/,%,$(dir $(TURBOJPEG)))))
  FUZZ_LIBS := -lturbojpeg
endif
# Limits of every run: an input that makes the library allocate over 1 GB at once, hold over
# 2 GB, or take over 10 s is reported as a defect.
FUZZ_LIMITS := -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10

# The library sources the targets link (the rest of the library is not used), without OpenMP:
# the integer engine's parallel loops run serially (capi/serial_openmp stands in for <omp.h>).
FUZZ_LIB_SRC := data/cifar.cpp tensor/safetensors.cpp tensor/safetensors_header.cpp \
  tensor/tensor.cpp tensor/allocator.cpp tensor/device_cpu_only.cpp dist/payload_wire.cpp \
  data/image_decode.cpp data/image_structure.cpp data/image_resize.cpp data/image_transforms.cpp \
  data/augment.cpp nn/qat_export_format.cpp $(wildcard qinfer/*.cpp)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.cpp=$(FUZZ_BUILD)/lib/%.o)
# The integer engine's AVX-512 kernels take clang minutes to optimise under the sanitizers (three
# for conv_direct.cpp, one for gemm_vnni.cpp); unoptimised they build in seconds, and the fuzzer's
# 8 x 8 images still run fast.
$(FUZZ_BUILD)/lib/qinfer/conv_direct.o $(FUZZ_BUILD)/lib/qinfer/gemm_vnni.o: FUZZ_CXXFLAGS += -O0
# stb_image 2.27's JPEG bit reader (compiled into image_decode.o) shifts a zero byte by 32 or more
# bits once a scan's data has ended early, which UBSan reports (stb_image 2.28 stops reading
# there); the decode then ends in stb_image's error as before. docs/imagenet-data.md.
$(FUZZ_BUILD)/lib/data/image_decode.o: FUZZ_CXXFLAGS += -fno-sanitize=shift-exponent
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))
FUZZ_TARGETS := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)

.PHONY: fuzz fuzz-smoke
.SECONDARY: $(FUZZ_LIB_OBJ) $(FUZZ_TARGETS:=.o)  # kept between builds
fuzz: $(FUZZ_TARGETS)

$(FUZZ_BUILD)/lib/%.o: %.cpp fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%.o: fuzz/fuzz_%.cpp fuzz/fuzz.mk
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CXX) -fsanitize=fuzzer,$(FUZZ_SANITIZE) $^ -o $@ -pthread $(FUZZ_LIBS)

# Each target starts from its committed corpus (fuzz/corpus/<name>, only read) and writes what
# it finds into $(FUZZ_BUILD)/corpus/<name>; a failing input is saved in $(FUZZ_BUILD)/crashes/.
# Targets run side by side, one per make job (libFuzzer runs on one core).
FUZZ_SMOKES := $(FUZZ_NAMES:%=fuzz-smoke-%)
.PHONY: $(FUZZ_SMOKES)
fuzz-smoke: $(FUZZ_SMOKES)
	@echo "fuzz-smoke: every target ran clean"

$(FUZZ_SMOKES): fuzz-smoke-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/crashes
	@echo "fuzz-smoke: $* for $(FUZZ_SMOKE_SECONDS) s"
	@$(FUZZ_BUILD)/fuzz_$* $(FUZZ_LIMITS) -seed=$(FUZZ_SMOKE_SEED) -max_total_time=$(FUZZ_SMOKE_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$*- $(FUZZ_BUILD)/corpus/$* fuzz/corpus/$* \
	    > $(FUZZ_BUILD)/smoke-$*.log 2>&1 \
	  || { tail -n 40 $(FUZZ_BUILD)/smoke-$*.log; echo "fuzz-smoke: $* FAILED (log: $(FUZZ_BUILD)/smoke-$*.log)"; exit 1; }
	@echo "fuzz-smoke: $* done: $$(grep -E '^(stat::number_of_executed_units|Done)' $(FUZZ_BUILD)/smoke-$*.log | tr '\n' ' ')"

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_TARGETS:=.d)
