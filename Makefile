# qnn build. `make` builds the library, the apps (./apps/cifar) and the test runner;
# `make test` runs every test. CPU-only unless nvcc and cuDNN are found (CUDA=0 forces CPU).
# Variables: PORTABLE=1 (no -march=native), BUILD=dir, STB_INCLUDE, DOCTEST_INCLUDE.

SHELL := /bin/bash
CXX ?= g++
BUILD ?= build
PORTABLE ?= 0
STB_INCLUDE ?= /usr/include/stb
DOCTEST_INCLUDE ?= /usr/include/doctest

ARCHFLAGS := $(if $(filter 1,$(PORTABLE)),,-march=native)
OPENMP := $(shell echo 'int main(){}' | $(CXX) -fopenmp -x c++ - -o /dev/null 2>/dev/null && echo -fopenmp)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDNN_FOUND := $(shell ls /usr/include/cudnn.h /usr/local/cuda/include/cudnn.h 2>/dev/null | head -1)

CXXFLAGS := -std=c++17 -O3 $(ARCHFLAGS) $(OPENMP) -Wall -Wextra -I. -isystem $(STB_INCLUDE) -isystem $(DOCTEST_INCLUDE) -MMD -MP
LDFLAGS := $(OPENMP) -pthread

$(info qnn build: $(CXX) $(shell $(CXX) -dumpfullversion 2>/dev/null), OpenMP $(if $(OPENMP),yes,no), \
  nvcc $(if $(NVCC),$(NVCC),not found), cuDNN $(if $(CUDNN_FOUND),$(CUDNN_FOUND),not found), \
  CUDA backend: not built (CPU only), $(if $(ARCHFLAGS),-march=native,portable))

LIB_SRC := $(wildcard tensor/*.cpp autograd/*.cpp nn/*.cpp optim/*.cpp data/*.cpp quant/*.cpp)
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/%.o)
TEST_SRC := $(shell find tests -name '*.cpp' 2>/dev/null)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/%.o)
APP_SRC := $(wildcard apps/*.cpp)
APPS := $(APP_SRC:%.cpp=%)
BENCH_SRC := $(wildcard bench/*.cpp)
BENCHES := $(BENCH_SRC:%.cpp=$(BUILD)/%)

.PHONY: all test clean cifar10
.PRECIOUS: $(BUILD)/apps/%.o $(BUILD)/bench/%.o
all: $(APPS) $(BUILD)/qnn_tests $(BENCHES)

$(BUILD)/libqnn.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(BUILD)/%.o: %.cpp
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

apps/%: $(BUILD)/apps/%.o $(BUILD)/libqnn.a
	$(CXX) $^ -o $@ $(LDFLAGS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libqnn.a
	$(CXX) $^ -o $@ $(LDFLAGS)

$(BUILD)/qnn_tests: $(TEST_OBJ) $(BUILD)/libqnn.a
	$(CXX) $^ -o $@ $(LDFLAGS)

# Runs every test; the last line sums them up as "tests: N passed, N failed, N skipped".
test: all
	@set -o pipefail; ./$(BUILD)/qnn_tests $(TEST_ARGS) 2>&1 | tee $(BUILD)/test.log; rc=$$?; \
	  awk '/test cases:/ {gsub(/\|/," "); print "tests: " $$5 " passed, " $$7 " failed, " $$9 " skipped"}' $(BUILD)/test.log; exit $$rc

# Downloads the official CIFAR-10 binary archive, checks its md5 and unpacks it into data/.
cifar10:
	sh scripts/fetch_cifar10.sh data

clean:
	rm -rf $(BUILD) $(APPS)

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(APP_SRC:%.cpp=$(BUILD)/%.d) $(BENCH_SRC:%.cpp=$(BUILD)/%.d)
