# tests/fuzz.mk: fuzzing and sanitizer runs (included at the end of the Makefile).
#   make fuzz          every libFuzzer target for FUZZ_SECONDS each (default 60)
#   make fuzz-smoke    every target for FUZZ_SMOKE_SECONDS each (default 20; CI)
#   make fuzz T=json   only the targets whose name contains "json"
#   make san-test      the whole test suite built with SAN=address,undefined in build-san/
# The fuzz targets (tests/fuzz/fuzz_*.c) link the library objects built with clang and
# -fsanitize=fuzzer-no-link,address,undefined in build-fuzz/, CPU only. Their starting corpus is
# written from the fixtures at run time (tests/fuzz/seeds.py, plus .rotor seeds from the
# converter); what the fuzzer finds accumulates in build-fuzz/corpus/, crashes in
# build-fuzz/artifacts/. Saved crash inputs in tests/fuzz/regress/ are replayed by `make test`
# (tests/fuzz_regress.sh) through build/tests/fuzz_replay: every target without libFuzzer.

FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_JOBS          ?= $(shell nproc 2>/dev/null || echo 1)
FUZZ_BUILD         ?= build-fuzz
FUZZ_CC            ?= clang
SAN_BUILD          ?= build-san
FUZZ_FIX           ?= $(or $(ROTOR_FIXTURES),../shared/fixtures)
FUZZ_NAMES         := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_PICK          := $(if $(T),$(foreach n,$(FUZZ_NAMES),$(if $(findstring $(T),$(n)),$(n))),$(FUZZ_NAMES))
FUZZ_HDR           := $(wildcard tests/fuzz/*.h)
FUZZ_ZLIB          ?= $(shell printf '\#include <zlib.h>\n' | $(CC) -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)
FUZZ_ZLIB_LIB       = $(if $(filter 1,$(FUZZ_ZLIB)),-lz)

.PHONY: fuzz fuzz-smoke fuzz-build fuzz-bins fuzz-seeds san-test san-test-bins

# ---- libFuzzer binaries (inner make: BUILD=build-fuzz, clang, FUZZING=1) ----
ifeq ($(FUZZING),1)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_HDR) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DFUZZ_ZLIB=$(FUZZ_ZLIB) -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_OBJ) $(LDLIBS) $(FUZZ_ZLIB_LIB)
fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
endif

fuzz-build:
	@$(MAKE) --no-print-directory FUZZING=1 BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) VULKAN=0 OPENCL=0 \
	    SAN=fuzzer-no-link,address,undefined fuzz-bins

# ---- starting corpus ----
$(FUZZ_BUILD)/seeds/.stamp: tests/fuzz/seeds.py rotor
	@rm -rf $(FUZZ_BUILD)/seeds && mkdir -p $(FUZZ_BUILD)/seeds/fuzz_rotor_file
	python3 tests/fuzz/seeds.py $(FUZZ_FIX) $(FUZZ_BUILD)/seeds
	./rotor convert --synthetic $(FUZZ_BUILD)/seeds/_model/config.json --tokenizer $(FUZZ_BUILD)/seeds/_model/tokenizer.json \
	    -o $(FUZZ_BUILD)/seeds/fuzz_rotor_file/tiny.rotor >/dev/null
	./rotor convert --synthetic $(FUZZ_BUILD)/seeds/_model/config.json --tokenizer $(FUZZ_BUILD)/seeds/_model/tokenizer.json \
	    --head q8 --seed 2 -o $(FUZZ_BUILD)/seeds/fuzz_rotor_file/tiny-q8.rotor >/dev/null
	@touch $@
fuzz-seeds: $(FUZZ_BUILD)/seeds/.stamp

fuzz: fuzz-build fuzz-seeds
	@FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_PICK)
fuzz-smoke: fuzz-build fuzz-seeds
	@FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS) $(FUZZ_PICK)

# ---- replay program: every target in one build of the library, for the regression test ----
# Linked with AddressSanitizer where the compiler has it (even without SAN=): its malloc and
# memcpy then catch overflows inside the plain library objects too.
FUZZ_REPLAY_SAN = $(if $(SAN),,$(shell printf 'int main(void){return 0;}' | $(CC) -fsanitize=address -x c - -o /dev/null 2>/dev/null && echo -fsanitize=address))
$(BUILD)/fuzz-replay/%.o: tests/fuzz/%.c $(FUZZ_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FUZZ_REPLAY_SAN) -DFUZZ_ZLIB=$(FUZZ_ZLIB) -DLLVMFuzzerTestOneInput=$*_one -DLLVMFuzzerInitialize=$*_init -c -o $@ $<
$(BUILD)/tests/fuzz_replay: tests/fuzz/replay.c $(FUZZ_NAMES:%=$(BUILD)/fuzz-replay/%.o) $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FUZZ_REPLAY_SAN) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(FUZZ_ZLIB_LIB)
check test: $(BUILD)/tests/fuzz_replay

# ---- the suite under AddressSanitizer and UndefinedBehaviorSanitizer ----
# ./rotor is left alone: the sanitized binary is build-san/bin/rotor. Vulkan is left out: the
# loader unloads the driver before exit, so LeakSanitizer reports the driver's own allocations
# from an unknown module and cannot tell them from rotor's (OpenCL drivers stay loaded and are
# suppressed by name in tests/fuzz/lsan.supp). The plain suite covers the Vulkan backend.
$(BUILD)/bin/rotor: $(BUILD)/rotor.o $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
san-test-bins: $(BUILD)/bin/rotor $(TESTS) $(BUILD)/tests/fuzz_replay

SAN_FLAGS := SAN=address,undefined VULKAN=0
# cross-compiled NEON and emulated AVX-512 kernel tests and the NVIDIA-only scripts run no
# sanitized code (tests/leaks.sh uses LeakSanitizer here, Valgrind in the plain suite)
SAN_SKIP  := neon avx512 gpu_h100 gpu_opencl_h100
san-test:
	@if [ "$$(cat $(SAN_BUILD)/.flags 2>/dev/null)" != "$(SAN_FLAGS)" ]; then \
	    rm -rf $(SAN_BUILD); mkdir -p $(SAN_BUILD); echo "$(SAN_FLAGS)" >$(SAN_BUILD)/.flags; fi
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) $(SAN_FLAGS) san-test-bins
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	ROTOR_TEST_SKIP="$(SAN_SKIP)" ROTOR_TEST_SKIP_WHY="runs no sanitized code (emulated kernels, NVIDIA machine)" \
	    ROTOR=$(SAN_BUILD)/bin/rotor tests/run.sh $(SAN_BUILD) $(T)
