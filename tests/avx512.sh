# tests/avx512.sh: the AVX-512 VNNI kernel set on machines without AVX-512, two ways.
# 1. The real binary under `qemu-x86_64 -cpu max`. QEMU 7.2 (Debian 12) emulates AVX2 but not
#    AVX-512, so there the set stays unpicked and this part is skipped with a message.
# 2. kernels/t2_avx512.c compiled over tests/avx512_emu.h (plain-C versions of the AVX-512
#    intrinsics it uses) and run through the whole of tests/test_kernels.c: this checks the
#    set's logic (layouts, lane order, vpdpbusd grouping, tails) exactly, on any AVX2 machine.
. tests/lib.sh
CC=${CC:-cc}
QEMU=${QEMU_X86_64:-qemu-x86_64}
bin=$BUILD/tests/test_kernels
if [ "$(uname -m)" != x86_64 ]; then skip "not an x86-64 host"; t_done avx512; exit; fi

# add_counts OUTPUT: adds the closing line of a test_kernels run to this test's counts
add_counts() {
    local line p f s
    line=$(printf '%s\n' "$1" | grep -E '^test_kernels: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' | tail -n 1)
    if [ -z "$line" ]; then fail "$2: no closing line"; return; fi
    read -r p f s < <(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped/\1 \2 \3/')
    T_PASS=$((T_PASS + p)); T_FAIL=$((T_FAIL + f)); T_SKIP=$((T_SKIP + s))
    printf '%s\n' "$1" | grep -q '^avx512vnni: all kernels match$' || fail "$2: avx512vnni kernels differ"
}

# 1. qemu
if [ ! -x "$bin" ]; then
    skip "$bin not built"
elif ! command -v "$QEMU" >/dev/null 2>&1; then
    skip "$QEMU not installed (Debian: qemu-user)"
else
    out=$("$QEMU" -cpu max "$bin" 2>"$TMP/qemu.err")
    sets=$(printf '%s\n' "$out" | grep '^kernel sets usable here:')
    if printf '%s\n' "$sets" | grep -qw avx512vnni; then
        grep -E '^FAIL' "$TMP/qemu.err" | head -n 20 >&2
        add_counts "$out" "under qemu"
    else
        skip "$("$QEMU" --version | head -n 1 | cut -d' ' -f1-3) -cpu max does not emulate AVX-512 VNNI (${sets#kernel sets usable here: })"
    fi
fi

# 2. emulated intrinsics
if ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    skip "emulated AVX-512 build needs an AVX2 host"; t_done avx512; exit
fi
flags="-O2 -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -I."
avx2="-mavx2 -mfma -mf16c"
printf '#include "rotor.h"\nint rtr_seterr(rtr_err *e, int c, const char *f, ...) { (void)e; (void)f; return c; }\n' \
    >"$TMP/seterr.c"
objs= ok=1
build() { # build SRC [extra flags]
    local src=$1 o="$TMP/$(basename "$1" .c).o"; shift
    if ! $CC $flags "$@" -c -o "$o" "$src" 2>"$TMP/cc.err"; then
        fail "compiling $src: $(head -n 3 "$TMP/cc.err" | tr '\n' ' ')"; ok=0; return
    fi
    objs="$objs $o"
}
for f in kernels/scalar.c kernels/dispatch.c models/format.c "$TMP/seterr.c"; do build "$f"; done
for f in kernels/*_avx2.c; do build "$f" $avx2; done
build kernels/t2_avx512.c $avx2 -include tests/avx512_emu.h
build kernels/t2_amx.c $avx2 -mavx512f -mavx512bw -mavx512vl -mamx-tile -mamx-int8 # linked for dispatch.c; never picked here
build tests/test_kernels.c -DRTR_TEST_AVX512_EMULATED
if [ $ok = 1 ] && $CC -o "$TMP/test_kernels_emu" $objs -lm 2>"$TMP/ld.err"; then
    out=$("$TMP/test_kernels_emu" 2>"$TMP/emu.err")
    grep -E '^FAIL' "$TMP/emu.err" | head -n 20 >&2
    add_counts "$out" "emulated AVX-512"
else
    [ $ok = 1 ] && fail "linking the emulated build: $(head -n 3 "$TMP/ld.err" | tr '\n' ' ')"
fi
t_done avx512
