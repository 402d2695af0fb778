# rotor: one binary, built with make. `make` builds ./rotor; `make test` builds and runs the tests.
# Vulkan and OpenCL are compiled in when their headers (and glslc, for Vulkan) are present;
# VULKAN=0 / OPENCL=0 leave them out. Kernels for each instruction set get their own flags and
# are chosen at run time; nothing is built with -march=native.

CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += $(OPT) -g -std=c11 -Wall -Wextra -D_GNU_SOURCE -pthread -MMD -MP
LDLIBS  += -lm -pthread
SAN     ?=
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

ARCH    ?= $(shell $(CC) -dumpmachine | cut -d- -f1)
PKG     ?= pkg-config

# --- required libraries ---
CFLAGS  += $(shell $(PKG) --cflags libutf8proc sqlite3 2>/dev/null)
LDLIBS  += $(shell $(PKG) --libs libutf8proc sqlite3 2>/dev/null || echo -lutf8proc -lsqlite3)

# --- sources ---
LIB_SRC := $(wildcard models/*.c) $(wildcard tools/*.c) backends/cpu.c backends/registry.c \
           $(wildcard backends/cpu_*.c) kernels/dispatch.c kernels/scalar.c
ifeq ($(ARCH),x86_64)
LIB_SRC += $(wildcard kernels/*_avx2.c kernels/*_avx512.c kernels/*_amx.c)
endif
ifeq ($(ARCH),aarch64)
LIB_SRC += $(wildcard kernels/*_neon.c)
endif

# --- optional GPU backends ---
VULKAN  ?= $(shell $(PKG) --exists vulkan 2>/dev/null && command -v glslc >/dev/null && echo 1 || echo 0)
OPENCL  ?= $(shell printf '\#include <CL/cl.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)
GLSLC   ?= glslc
ifeq ($(VULKAN),1)
CFLAGS  += -DRTR_HAVE_VULKAN $(shell $(PKG) --cflags vulkan)
LDLIBS  += $(shell $(PKG) --libs vulkan 2>/dev/null || echo -lvulkan)
LIB_SRC += $(wildcard backends/vulkan*.c)
SHADERS := $(filter-out %_coop.comp,$(wildcard kernels/*.comp))
# each shader plain (core 1.1) and __sg (subgroup ops); the matmuls also __dot (int8 dot product);
# the chained ones (vk_chain.glsl) also __vmm (int8 dot product and the Vulkan memory model);
# mm_f also __amax (the LM head with greedy decoding's argmax, by 64-bit atomics);
# *_coop.comp once (NV cooperative matrices, used only where the device lists their shapes), when
# this glslc knows the extension (the backend runs without them otherwise)
COOP_GLSL := $(shell printf '\#version 450\n\#extension GL_NV_cooperative_matrix : require\n\#extension GL_NV_integer_cooperative_matrix : require\nvoid main(){}\n' | $(GLSLC) -fshader-stage=compute -o /dev/null - 2>/dev/null && echo 1)
SPV     := $(SHADERS:kernels/%.comp=$(BUILD)/spv/%.spv) $(SHADERS:kernels/%.comp=$(BUILD)/spv/%__sg.spv) \
           $(patsubst kernels/%.comp,$(BUILD)/spv/%__dot.spv,$(filter kernels/mm_%.comp,$(SHADERS))) \
           $(patsubst kernels/%.comp,$(BUILD)/spv/%__vmm.spv,$(shell grep -l 'include "vk_chain.glsl"' $(SHADERS))) \
           $(BUILD)/spv/mm_f__amax.spv \
           $(if $(COOP_GLSL),$(patsubst kernels/%.comp,$(BUILD)/spv/%.spv,$(wildcard kernels/*_coop.comp)))
GEN     += $(BUILD)/gen/shaders.h
endif
ifeq ($(OPENCL),1)
CFLAGS  += -DRTR_HAVE_OPENCL -DCL_TARGET_OPENCL_VERSION=120
LDLIBS  += -lOpenCL
LIB_SRC += $(wildcard backends/opencl*.c)
GEN     += $(BUILD)/gen/cl_source.h
endif
CFLAGS  += -I$(BUILD)/gen

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TESTS   := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))

.PHONY: all test check clean fuzz help
all: rotor

rotor: $(BUILD)/rotor.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c | $(GEN)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# per-instruction-set flags; dispatch.c decides at run time whether they may run
$(BUILD)/kernels/%_avx2.o:   CFLAGS += -mavx2 -mfma -mf16c
$(BUILD)/kernels/%_avx512.o: CFLAGS += -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx2 -mfma -mf16c
$(BUILD)/kernels/%_amx.o:    CFLAGS += -mamx-tile -mamx-int8 -mavx512f -mavx512bw -mavx512vl -mavx2 -mfma -mf16c
$(BUILD)/kernels/%_neon.o:   CFLAGS += -march=armv8.2-a+dotprod+fp16
# the CPU backend's element-wise loops (norms, GLU, activation sums) vectorize at -O3 only
$(BUILD)/backends/cpu.o:     CFLAGS += -O3

# SPIR-V compiled at build time and embedded; no run-time compiler
$(BUILD)/spv/%__sg.spv: kernels/%.comp $(wildcard kernels/*.glsl)
	@mkdir -p $(dir $@)
	$(GLSLC) --target-env=vulkan1.1 -O -DRTR_SG -o $@ $<
$(BUILD)/spv/%__dot.spv: kernels/%.comp $(wildcard kernels/*.glsl)
	@mkdir -p $(dir $@)
	$(GLSLC) --target-env=vulkan1.1 -O -DRTR_SG -DRTR_DOT -o $@ $<
$(BUILD)/spv/%__vmm.spv: kernels/%.comp $(wildcard kernels/*.glsl)
	@mkdir -p $(dir $@)
	$(GLSLC) --target-env=vulkan1.1 -O -DRTR_SG -DRTR_DOT -DRTR_VMM -o $@ $<
$(BUILD)/spv/%__amax.spv: kernels/%.comp $(wildcard kernels/*.glsl)
	@mkdir -p $(dir $@)
	$(GLSLC) --target-env=vulkan1.1 -O -DRTR_SG -DRTR_AMAX -o $@ $<
$(BUILD)/spv/%.spv: kernels/%.comp $(wildcard kernels/*.glsl)
	@mkdir -p $(dir $@)
	$(GLSLC) --target-env=vulkan1.1 $(GLSLC_O) -o $@ $<
GLSLC_O := -O
# glslc 2023.2's optimizer crashes on the sum of two cooperative matrices; the driver optimizes
$(BUILD)/spv/attn_coop.spv: GLSLC_O :=
$(BUILD)/gen/shaders.h: $(SPV) kernels/embed.sh
	@mkdir -p $(dir $@)
	sh kernels/embed.sh spv $@ $(SPV)
$(BUILD)/gen/cl_source.h: $(wildcard kernels/*.cl) kernels/embed.sh
	@mkdir -p $(dir $@)
	sh kernels/embed.sh cl $@ $(wildcard kernels/*.cl)

$(BUILD)/tests/%: tests/%.c $(LIB_OBJ) tests/test.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

# make test: the suite, then (unless T= picks a subset) every fuzz target for a short smoke
# time and the suite again under AddressSanitizer + UndefinedBehaviorSanitizer (tests/fuzz.mk).
# The plain pass leaves the bad-input suite and the leak check to the sanitized pass, which runs
# both with more checks. make check: the suite alone, all of it.
check: rotor $(TESTS)
	ROTOR=./rotor tests/run.sh $(BUILD) $(T)
ifeq ($(T),)
test: rotor $(TESTS)
	ROTOR=./rotor ROTOR_TEST_SKIP="bad_input leaks" ROTOR_TEST_SKIP_WHY="run by make san-test below" \
	    tests/run.sh $(BUILD)
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory san-test
else
test: check
endif

clean:
	rm -rf $(BUILD) rotor

help:
	@echo "make            build ./rotor"
	@echo "make test       the suite, the fuzz smoke run and the sanitizer run (what CI runs)"
	@echo "make check      the suite alone (T=pattern runs a subset, also with make test)"
	@echo "make fuzz-smoke every fuzz target for FUZZ_SMOKE_SECONDS (default 20)"
	@echo "make san-test   the suite under AddressSanitizer and UndefinedBehaviorSanitizer"
	@echo "make fuzz       run every fuzz target for FUZZ_SECONDS (default 60)"
	@echo "make VULKAN=0 OPENCL=0          CPU-only build"

-include $(LIB_OBJ:.o=.d) $(BUILD)/rotor.d
-include tests/fuzz.mk
