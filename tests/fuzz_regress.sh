# tests/fuzz_regress.sh: every fuzz target (tests/fuzz/fuzz_*.c), built without libFuzzer into
# $BUILD/tests/fuzz_replay, runs the inputs that once crashed it (tests/fuzz/regress/TARGET),
# the committed seeds (tests/fuzz/corpus/TARGET) and the seeds generated from the fixtures, as
# `make fuzz` starts from. A target passes when none of them crashes or breaks a property.
# Under `make san-test` the same inputs run with AddressSanitizer and UBSan.
. tests/lib.sh
R=$BUILD/tests/fuzz_replay
if [ ! -x "$R" ]; then
    skip "$R is not built (make test builds it)"; t_done fuzz_regress; exit 0
fi
S=$TMP/seeds
if python3 tests/fuzz/seeds.py "$FIX" "$S" 2>"$TMP/err" &&
    mkdir -p "$S/fuzz_rotor_file" &&
    "$ROTOR" convert --synthetic "$S/_model/config.json" --tokenizer "$S/_model/tokenizer.json" \
        -o "$S/fuzz_rotor_file/tiny.rotor" >/dev/null 2>>"$TMP/err"; then
    pass
else
    fail "generate the seeds: $(head -c 300 "$TMP/err")"
fi
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    out=$("$R" "$t" "tests/fuzz/regress/$t" "tests/fuzz/corpus/$t" "$S/$t" 2>"$TMP/$t.err")
    rc=$?
    n=$(sed -n 's/.*: \([0-9]*\) inputs$/\1/p' <<<"$out")
    if [ $rc -eq 0 ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
        pass
    else
        fail "$t: exit $rc after $(grep '^replay:' "$TMP/$t.err" | tail -n 1): $(grep -v '^replay:' "$TMP/$t.err" | head -n 8)"
    fi
done
t_done fuzz_regress
