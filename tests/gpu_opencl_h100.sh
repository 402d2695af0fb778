#!/usr/bin/env bash
# tests/gpu_opencl_h100.sh: the OpenCL backend on a real NVIDIA GPU (the H100 machine). Run it by
# hand from the repository root after building (make && make build/tests/test_backend_ops
# build/tests/test_opencl build/tests/test_parity); in `make test` it skips at once where no
# NVIDIA GPU is present.
#   1. unpacks carried Debian packages (.gl/*.deb and .debs/*.deb: ocl-icd-libopencl1, ...) into /
#      and runs ldconfig
#   2. points the ICD loader at the NVIDIA OpenCL driver: OCL_ICD_VENDORS as given, else a
#      folder of its own with an nvidia.icd naming libnvidia-opencl.so.1
#   3. lists the devices: an NVIDIA OpenCL device must be there
#   4. op tests (test_opencl, test_backend_ops) and parity tests (test_parity) on opencl, then the
#      op tests again with the portable int8 dot product (ROTOR_OPENCL_NO_PTX=1)
#   5. rotor bench with opencl: start-up with a cold and a warm program cache, then -p 512 -n 128
#      on the 2B4T shape with random weights (or the model in ROTOR_GPU_MODEL), a short profiled
#      run (device time per kernel, ROTOR_OPENCL_PROFILE) and the portable variant for comparison
# Logs go to $OUT/opencl (when OUT is set) or build/gpu/opencl. ROTOR_GPU_FORCE=1 runs it on any
# OpenCL device; ROTOR_GPU_SHAPE picks another synthetic shape and ROTOR_GPU_BENCH other bench
# options (on a slow device: ROTOR_GPU_FORCE=1 ROTOR_GPU_SHAPE=tiny ROTOR_GPU_BENCH='-p 16 -n 8 -r 1').
. "$(dirname "$0")/lib.sh"
LOG=${OUT:-$BUILD/gpu}/opencl
mkdir -p "$LOG"

if [ -z "${ROTOR_GPU_FORCE:-}" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    skip "gpu_opencl_h100: no NVIDIA GPU here (nvidia-smi not found)"
    t_done gpu_opencl_h100
    exit
fi

# 1. carried packages
debs=$(ls .gl/*.deb .debs/*.deb 2>/dev/null)
if [ -n "$debs" ]; then
    for f in $debs; do dpkg -x "$f" / || echo "could not unpack $f" >&2; done
    ldconfig
fi
if ! ldconfig -p | grep -q 'libOpenCL\.so\.1'; then
    fail "no OpenCL ICD loader (libOpenCL.so.1): carry ocl-icd-libopencl1 in .debs/"
    t_done gpu_opencl_h100
    exit
fi

# 2. the NVIDIA ICD: container images often have the driver library but no /etc/OpenCL/vendors
if [ -z "${OCL_ICD_VENDORS:-}" ] && [ -z "${ROTOR_GPU_FORCE:-}" ]; then
    lib=
    for l in /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 \
             /usr/lib64/libnvidia-opencl.so.1; do
        if [ -e "$l" ]; then lib=$l; break; fi
    done
    if [ -n "$lib" ]; then
        mkdir -p "$LOG/icd"
        echo "$lib" >"$LOG/icd/nvidia.icd"
        export OCL_ICD_VENDORS=$PWD/$LOG/icd
        case $LOG in /*) OCL_ICD_VENDORS=$LOG/icd ;; esac
    fi
fi
{
    echo "OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-(loader default)}"
    [ -n "${OCL_ICD_VENDORS:-}" ] && cat "$OCL_ICD_VENDORS"/*.icd 2>/dev/null
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
} | tee "$LOG/env.log"

# 3. devices
"$ROTOR" --list-devices >"$LOG/devices.log" 2>&1
cat "$LOG/devices.log"
if [ -z "${ROTOR_GPU_FORCE:-}" ] && ! sed -n '/^opencl:/,/^[a-z]*:/p' "$LOG/devices.log" | grep -qi 'nvidia'; then
    fail "the ICD loader sees no NVIDIA OpenCL device (see $LOG/devices.log; OCL_ICD_VENDORS must name a folder with nvidia.icd)"
    t_done gpu_opencl_h100
    exit
fi
pass

# the program cache and the synthetic models go to the build folder, not $HOME
if [ -z "${XDG_CACHE_HOME:-}" ]; then
    case $BUILD in /*) XDG_CACHE_HOME=$BUILD/cache ;; *) XDG_CACHE_HOME=$PWD/$BUILD/cache ;; esac
    export XDG_CACHE_HOME
fi
mkdir -p "$XDG_CACHE_HOME"

# 4. op tests and parity tests on the opencl backend
run_test() { # NAME CMD...: passes when CMD exits 0; its output goes to $LOG/NAME.log
    local name=$1; shift
    local t0=$SECONDS
    if "$@" >"$LOG/$name.log" 2>&1; then pass; else fail "$name (see $LOG/$name.log)"; fi
    echo "$name: $(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed' "$LOG/$name.log" | tail -n 1) ($((SECONDS - t0)) s)"
    grep -E '^(FAIL|skip)' "$LOG/$name.log" | head -n 20
}
rm -f "$XDG_CACHE_HOME"/rotor/opencl-*.bin
for t in test_opencl test_backend_ops test_parity; do
    if [ ! -x "$BUILD/tests/$t" ]; then fail "$BUILD/tests/$t is not built"; continue; fi
    ROTOR_TEST_BACKEND=opencl ROTOR_PARITY_BACKENDS=opencl run_test "$t" "$BUILD/tests/$t"
done
ls -l "$XDG_CACHE_HOME"/rotor/opencl-*.bin 2>/dev/null | tee "$LOG/program-cache.log"
for t in test_opencl test_backend_ops; do
    [ -x "$BUILD/tests/$t" ] || continue
    ROTOR_OPENCL_NO_PTX=1 ROTOR_TEST_BACKEND=opencl run_test "$t-portable" "$BUILD/tests/$t"
done

# 5. throughput
shape=${ROTOR_GPU_SHAPE:-bitnet-2b4t}
if [ -n "${ROTOR_GPU_MODEL:-}" ]; then model=(-m "$ROTOR_GPU_MODEL"); else model=(--synthetic "$shape"); fi
bench() { # NAME ENV... -- BENCH-OPTIONS...
    local name=$1; shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    if env "${envs[@]}" "$ROTOR" bench "${model[@]}" --backend opencl "$@" >"$LOG/$name.md" 2>"$LOG/$name.err"; then
        pass
        echo "== $name"
        cat "$LOG/$name.md"
        grep -E 'load|first token' "$LOG/$name.err"
    else
        fail "rotor bench $name (see $LOG/$name.err)"
        tail -n 5 "$LOG/$name.err"
    fi
}
# start-up with the kernel program built from source, then loaded from the cache
rm -f "$XDG_CACHE_HOME"/rotor/opencl-*.bin
bench startup_cold -- -p 16 -n 4 -r 1
bench startup_cached -- -p 16 -n 4 -r 1
# shellcheck disable=SC2086
bench bench_opencl -- ${ROTOR_GPU_BENCH:--p 512 -n 128 -r 3}
bench bench_opencl_profile ROTOR_OPENCL_PROFILE="$LOG/profile.txt" -- -p 512 -n 64 -r 1
[ -f "$LOG/profile.txt" ] && cat "$LOG/profile.txt"
# shellcheck disable=SC2086
bench bench_opencl_portable ROTOR_OPENCL_NO_PTX=1 -- ${ROTOR_GPU_BENCH:--p 512 -n 128 -r 2}
t_done gpu_opencl_h100
