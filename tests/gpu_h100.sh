#!/usr/bin/env bash
# tests/gpu_h100.sh: the Vulkan backend on a real NVIDIA GPU (the H100 machine). Run it by hand
# from the repository root after building (make && make build/tests/test_backend_ops
# build/tests/test_parity); in `make test` it skips at once where no NVIDIA GPU is present.
#   1. unpacks carried Debian packages (.gl/*.deb and .debs/*.deb, e.g. libvulkan1, libutf8proc2,
#      libsqlite3-0, ocl-icd-libopencl1) into / and runs ldconfig
#   2. points the Vulkan loader at the NVIDIA driver's ICD when it is not found by default
#   3. lists the devices: an NVIDIA Vulkan device must be there
#   4. op tests (test_backend_ops) and parity tests (test_parity) on the vulkan backend
#   5. rotor bench on the synthetic 2B4T shape with vulkan (pp128, pp512, tg128), again with
#      ROTOR_VK_NOFUSE=1 (decode without the backend's op fusions), then cpu for reference
# The parity test reads the tiny-bitnet fixture: carry a copy and set ROTOR_FIXTURES to it.
# Logs go to $OUT (when set) or build/gpu/. ROTOR_GPU_FORCE=1 runs it on any Vulkan device;
# ROTOR_GPU_SHAPE picks another synthetic shape and ROTOR_GPU_BENCH other bench options (to try
# the script on a slow device: ROTOR_GPU_SHAPE=tiny ROTOR_GPU_BENCH='-p 16 -n 8 -r 1').
. "$(dirname "$0")/lib.sh"
LOG=${OUT:-$BUILD/gpu}
mkdir -p "$LOG"

if [ -z "${ROTOR_GPU_FORCE:-}" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    skip "gpu_h100: no NVIDIA GPU here (nvidia-smi not found)"
    t_done gpu_h100
    exit
fi

# 1. carried packages
debs=$(ls .gl/*.deb .debs/*.deb 2>/dev/null)
if [ -n "$debs" ]; then
    for f in $debs; do dpkg -x "$f" / || echo "could not unpack $f" >&2; done
    ldconfig
fi
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    fail "no Vulkan loader (libvulkan.so.1): carry libvulkan1 in .debs/"
    t_done gpu_h100
    exit
fi

# 2. the NVIDIA ICD (container images often keep it under /usr/local/nvidia), not the lavapipe
# tests/run.sh picks for the other tests
case "${VK_DRIVER_FILES:-}" in */.deps/lavapipe/*) unset VK_DRIVER_FILES ;; esac
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
    for j in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
             /etc/vulkan/icd.d/nvidia_icd.json; do
        if [ -f "$j" ]; then export VK_DRIVER_FILES=$j; break; fi
    done
fi
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-(loader default)}" | tee "$LOG/env.log"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$LOG/env.log" 2>&1

# 3. devices
"$ROTOR" --list-devices >"$LOG/devices.log" 2>&1
cat "$LOG/devices.log"
if [ -z "${ROTOR_GPU_FORCE:-}" ] && ! grep -qi 'nvidia' "$LOG/devices.log"; then
    fail "the Vulkan loader sees no NVIDIA device (see $LOG/devices.log; set VK_DRIVER_FILES to the NVIDIA ICD json)"
    t_done gpu_h100
    exit
fi
pass

# 4. op tests and parity tests on the vulkan backend
run_test() { # NAME CMD...: passes when CMD exits 0; its output goes to $LOG/NAME.log
    local name=$1; shift
    if "$@" >"$LOG/$name.log" 2>&1; then pass; else fail "$name (see $LOG/$name.log)"; fi
    grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed' "$LOG/$name.log" | tail -n 1
}
if [ -x "$BUILD/tests/test_backend_ops" ]; then
    ROTOR_TEST_BACKEND=vulkan run_test backend_ops "$BUILD/tests/test_backend_ops"
    grep -E '^vulkan' "$LOG/backend_ops.log"
else
    fail "$BUILD/tests/test_backend_ops is not built"
fi
if [ -x "$BUILD/tests/test_parity" ]; then
    ROTOR_PARITY_BACKENDS=vulkan run_test parity "$BUILD/tests/test_parity"
else
    fail "$BUILD/tests/test_parity is not built"
fi

# 5. throughput: the 2B4T shape with random weights (generated once into the cache)
if [ -z "${XDG_CACHE_HOME:-}" ]; then
    case $BUILD in /*) XDG_CACHE_HOME=$BUILD/cache ;; *) XDG_CACHE_HOME=$PWD/$BUILD/cache ;; esac
    export XDG_CACHE_HOME
fi
mkdir -p "$XDG_CACHE_HOME"
shape=${ROTOR_GPU_SHAPE:-bitnet-2b4t}
# shellcheck disable=SC2086
if "$ROTOR" bench --synthetic "$shape" --backend vulkan ${ROTOR_GPU_BENCH:--p 128,512 -n 128 -r 3} \
        >"$LOG/bench_vulkan.md" 2>"$LOG/bench_vulkan.err"; then
    pass
    cat "$LOG/bench_vulkan.md"
    grep -E 'load|first token' "$LOG/bench_vulkan.err"
else
    fail "rotor bench --backend vulkan (see $LOG/bench_vulkan.err)"
    tail -n 5 "$LOG/bench_vulkan.err"
fi
# the same decode without the backend's op fusions, to see what they are worth
ROTOR_VK_NOFUSE=1 "$ROTOR" bench --synthetic "$shape" --backend vulkan -p 16 -n 128 -r 1 --no-bandwidth \
    >"$LOG/bench_vulkan_nofuse.md" 2>"$LOG/bench_vulkan_nofuse.err" && grep -E 'tg|---|model' "$LOG/bench_vulkan_nofuse.md"
"$ROTOR" bench --synthetic "$shape" --backend cpu -p 128 -n 32 -r 1 >"$LOG/bench_cpu.md" 2>"$LOG/bench_cpu.err" &&
    cat "$LOG/bench_cpu.md"
t_done gpu_h100
