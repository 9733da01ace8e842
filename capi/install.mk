# Installing qnn for other programs (docs/embedding.md), included from the Makefile.
#   make install PREFIX=DIR     the static and the shared library, the public headers under
#                               DIR/include/qnn/ and pkg-config files: qnn.pc (shared library)
#                               and qnn-static.pc (static library and what it links with)
#   make uninstall PREFIX=DIR   removes exactly those
#   make shared                 only builds the two libraries: $(BUILD)/libqnn.{a,so}
# Both libraries are made of the build's objects, which are position-independent (-fPIC, which a
# shared library needs) in every build: installing after `make` compiles nothing again.
# Variables: PREFIX (/usr/local), DESTDIR (staging root, prepended to every installed path).
# The library is built for this machine (-march=native) unless PORTABLE=1; OPENMP=0 and CUDA=0
# apply to what is installed as to any build.
#
# The headers keep the source tree's layout (include/qnn/tensor/tensor.h, ...) and include
# each other as "tensor/tensor.h", so pkg-config's Cflags is -I$(PREFIX)/include/qnn; the C API
# is include/qnn/qnn.h (#include "qnn.h" or <qnn.h>).

PREFIX ?= /usr/local
QNN_VERSION := $(shell sed -n 's/^\#define QNN_VERSION_STRING "\([0-9.]*\)".*/\1/p' capi/qnn.h)
QNN_SONAME := libqnn.so.$(firstword $(subst ., ,$(QNN_VERSION)))
INSTALL_PREFIX := $(abspath $(PREFIX))
INSTALL_LIBDIR := $(DESTDIR)$(INSTALL_PREFIX)/lib
INSTALL_INCLUDEDIR := $(DESTDIR)$(INSTALL_PREFIX)/include/qnn

# Implementation detail, left out of the installed headers: what only the CUDA sources include
# (it pulls in the CUDA toolkit's headers), the register kernels under sgemm and the Winograd
# convolution, the autograd functions' private helpers, the safetensors JSON parser, the
# subprocess runner of the download, the arithmetic that a .cpp file and its CUDA twin share,
# and the training tools' PNG plots (their header includes stb_easy_font.h, which users need
# not have).
PRIVATE_HEADERS := train/plot.h tensor/cuda_runtime.h tensor/channel_sums_cuda.h tensor/batchnorm_math_cuda.h \
  tensor/batchnorm_kernels_cuda.h tensor/conv_plan_cuda.h \
  tensor/conv_bf16.h tensor/conv_gemm.h tensor/conv_lowering.h tensor/gemm_kernel.h tensor/gemm_kernel_bf16.h tensor/safetensors_header.h tensor/winograd_tiles.h \
  autograd/functions_internal.h data/subprocess.h qat/channel_reduce.h qat/channel_reduce_cuda.h \
  qat/observer_math.h quant/bucket_loop.h quant/bucket_math.h quant/float_sort.h quant/level_dp_scan.h \
  quant/level_lookup.h quant/pack_parallel.h
PUBLIC_HEADERS := $(filter-out $(PRIVATE_HEADERS) capi/qnn.h,\
  $(wildcard $(addsuffix /*.h,tensor autograd nn optim data quant qat ptq qinfer dist train)))

.PHONY: install uninstall shared
shared: $(BUILD)/libqnn.a $(BUILD)/libqnn.so

$(BUILD)/libqnn.so: $(LIB_OBJ)
	$(CXX) -shared -Wl,-soname,$(QNN_SONAME) $^ -o $@ $(LDFLAGS)

# pkg-config files for the installed prefix. The shared library records the libraries it needs;
# the static one needs them on the link line (LDFLAGS: OpenMP, libjpeg-turbo, CUDA).
define QNN_PC
prefix=$(INSTALL_PREFIX)
libdir=$${prefix}/lib
includedir=$${prefix}/include

Name: qnn$(1)
Description: a from-scratch deep-learning framework with quantization built in$(2)
Version: $(QNN_VERSION)
Cflags: -I$${includedir}/qnn
Libs: $(3)
endef
export QNN_PC_SHARED := $(call QNN_PC,,,-L$${libdir} -Wl$(comma)-rpath$(comma)$${libdir} -lqnn)
export QNN_PC_STATIC := $(call QNN_PC,-static, (static library),$${libdir}/libqnn.a $(LDFLAGS) -lstdc++ -lm)

install: shared
	install -d $(INSTALL_LIBDIR)/pkgconfig $(INSTALL_INCLUDEDIR)
	install -m 644 $(BUILD)/libqnn.a $(INSTALL_LIBDIR)/libqnn.a
	install -m 755 $(BUILD)/libqnn.so $(INSTALL_LIBDIR)/libqnn.so.$(QNN_VERSION)
	ln -sf libqnn.so.$(QNN_VERSION) $(INSTALL_LIBDIR)/$(QNN_SONAME)
	ln -sf $(QNN_SONAME) $(INSTALL_LIBDIR)/libqnn.so
	install -m 644 capi/qnn.h $(INSTALL_INCLUDEDIR)/qnn.h
	@for h in $(PUBLIC_HEADERS); do install -D -m 644 $$h $(INSTALL_INCLUDEDIR)/$$h || exit 1; done
	@echo "install -m 644 <$(words $(PUBLIC_HEADERS)) public headers> $(INSTALL_INCLUDEDIR)/"
	@echo "$$QNN_PC_SHARED" > $(INSTALL_LIBDIR)/pkgconfig/qnn.pc
	@echo "$$QNN_PC_STATIC" > $(INSTALL_LIBDIR)/pkgconfig/qnn-static.pc
	@echo "installed qnn $(QNN_VERSION) in $(DESTDIR)$(INSTALL_PREFIX); use it with"
	@echo "  PKG_CONFIG_PATH=$(INSTALL_PREFIX)/lib/pkgconfig pkg-config --cflags --libs qnn   (or qnn-static)"

uninstall:
	rm -f $(INSTALL_LIBDIR)/libqnn.a $(INSTALL_LIBDIR)/libqnn.so $(INSTALL_LIBDIR)/$(QNN_SONAME) \
	  $(INSTALL_LIBDIR)/libqnn.so.$(QNN_VERSION) $(INSTALL_LIBDIR)/pkgconfig/qnn.pc \
	  $(INSTALL_LIBDIR)/pkgconfig/qnn-static.pc
	rm -rf $(INSTALL_INCLUDEDIR)
