#!/usr/bin/env bash
# tests/run.sh: runs every test program and shell test, sums their closing lines, and ends with
# one line "N passed, N failed, N skipped". Exit status 1 if anything failed.
# Usage: tests/run.sh BUILD_DIR [pattern]
# ROTOR_TEST_SKIP="name ..." leaves those tests out, each counted as one skip with the reason
# ROTOR_TEST_SKIP_WHY (the sanitizer run leaves out what only re-runs unsanitized binaries).
set -u
build=${1:-build}
pat=${2:-}
pass=0 fail=0 skip=0 broken=0
run_one() {
    local name=$1; shift
    case " ${ROTOR_TEST_SKIP:-} " in *" $name "*)
        echo "skip   $name: ${ROTOR_TEST_SKIP_WHY:-left out}"; skip=$((skip + 1)); return ;;
    esac
    local out t0=$SECONDS
    out=$("$@" 2>"$build/tests/$name.err")
    local rc=$?
    local el=$((SECONDS - t0))
    local line
    line=$(printf '%s\n' "$out" | grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
    if [ -z "$line" ]; then
        echo "BROKEN $name (exit $rc, no closing line)"; sed 's/^/    /' "$build/tests/$name.err" | tail -n 20
        broken=$((broken + 1)); return
    fi
    local p f s
    read -r p f s < <(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$f" != 0 ] || [ "$rc" != 0 ]; then
        echo "FAIL   $line (exit $rc, ${el}s)"; grep -E '^(FAIL|skip)' "$build/tests/$name.err" | head -n 30 | sed 's/^/    /'
        [ "$f" = 0 ] && fail=$((fail + 1))
    else
        echo "ok     $line (${el}s)"
        grep -E '^skip' "$build/tests/$name.err" | head -n 10 | sed 's/^/    /'
    fi
}
mkdir -p "$build/tests"
# the lavapipe tools/lavapipe.sh unpacked (Debian 12), unless a Vulkan driver was chosen
lvp=$(dirname "$0")/../.deps/lavapipe/lvp.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$lvp" ]; then
    export VK_DRIVER_FILES=$(cd "$(dirname "$lvp")" && pwd)/lvp.json
    echo "Vulkan: $VK_DRIVER_FILES (set VK_DRIVER_FILES to choose another driver)"
fi
for t in "$build"/tests/test_*; do
    [ -x "$t" ] && [ -f "$t" ] || continue
    case "$t" in *.err) continue ;; esac
    n=$(basename "$t")
    [ -n "$pat" ] && [[ "$n" != *$pat* ]] && continue
    run_one "$n" "$t"
done
for t in tests/*.sh; do
    n=$(basename "$t" .sh)
    case "$n" in run|lib|_*) continue ;; esac
    [ -n "$pat" ] && [[ "$n" != *$pat* ]] && continue
    run_one "$n" env ROTOR="${ROTOR:-./rotor}" BUILD="$build" bash "$t"
done
fail=$((fail + broken))
echo "$pass passed, $fail failed, $skip skipped in ${SECONDS}s"
[ "$fail" = 0 ]
