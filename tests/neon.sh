# tests/neon.sh: the kernel tests for ARM, cross-compiled for aarch64 and run under qemu-user.
# Builds kernels/scalar.c, kernels/dispatch.c, kernels/*_neon.c (only these with
# -march=armv8.2-a+dotprod+fp16), models/format.c and tests/test_kernels.c as one static binary,
# runs it with `qemu-aarch64 -cpu max` (which has dotprod and fp16), and reports its closing line
# as this test's. Skipped when the cross compiler or qemu-aarch64 is missing.
. tests/lib.sh
CROSS=${CROSS:-aarch64-linux-gnu-gcc}
QEMU=${QEMU_AARCH64:-qemu-aarch64}
if ! command -v "$CROSS" >/dev/null 2>&1; then skip "$CROSS not installed"; t_done neon; exit; fi
if ! command -v "$QEMU" >/dev/null 2>&1; then skip "$QEMU not installed (Debian: qemu-user)"; t_done neon; exit; fi

flags="-O2 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE"
# rtr_seterr lives in models/model.c with the whole engine; format.c needs only the symbol
printf '#include "rotor.h"\nint rtr_seterr(rtr_err *e, int c, const char *f, ...) { (void)e; (void)f; return c; }\n' \
    >"$TMP/seterr.c"
objs=
build() { # build SRC [extra flags]
    local src=$1 o="$TMP/$(basename "$1" .c).o"; shift
    if ! "$CROSS" $flags "$@" -I. -c -o "$o" "$src" 2>"$TMP/cc.err"; then
        fail "cross-compiling $src: $(head -n 3 "$TMP/cc.err" | tr '\n' ' ')"; return 1
    fi
    objs="$objs $o"
}
ok=1
for f in kernels/scalar.c kernels/dispatch.c models/format.c "$TMP/seterr.c"; do build "$f" || ok=0; done
for f in kernels/*_neon.c; do build "$f" -march=armv8.2-a+dotprod+fp16 || ok=0; done
build tests/test_kernels.c || ok=0
if [ $ok = 1 ] && "$CROSS" -static -o "$TMP/test_kernels" $objs -lm 2>"$TMP/ld.err"; then
    pass
else
    [ $ok = 1 ] && fail "linking: $(head -n 3 "$TMP/ld.err" | tr '\n' ' ')"
    t_done neon; exit
fi

out=$("$QEMU" -cpu max "$TMP/test_kernels" 2>"$TMP/run.err")
rc=$?
grep -E '^(FAIL|skip)' "$TMP/run.err" | head -n 20 >&2
line=$(printf '%s\n' "$out" | grep -E '^test_kernels: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
if [ -z "$line" ]; then
    fail "qemu run gave no closing line (exit $rc)"; t_done neon; exit
fi
if ! printf '%s\n' "$out" | grep -q '^neon: '; then
    fail "the neon set was not tested (not picked under qemu -cpu max?)"
fi
read -r p f s < <(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
T_PASS=$((T_PASS + p)); T_FAIL=$((T_FAIL + f)); T_SKIP=$((T_SKIP + s))
[ $rc -ne 0 ] && [ "$f" = 0 ] && fail "test_kernels under qemu exited $rc"
t_done neon
