# tests/cli.sh: rotor run and rotor chat as users and scripts drive them: pipes, flags, bad
# input, the greedy continuation through --print-ids, and a real pseudo-terminal for Ctrl-C.
. tests/lib.sh
M=$TMP/tiny.rotor
if ! "$ROTOR" convert "$FIX/tiny-bitnet" -o "$M" >/dev/null 2>&1; then
    fail "convert the tiny fixture"; t_done cli; exit
fi
pass

out=$(echo "The quick brown fox" | "$ROTOR" run -m "$M" -n 16 --seed 1 2>"$TMP/err"); rc=$?
check "run from stdin exits 0" test $rc -eq 0
check "run from stdin prints text" test -n "$out"
check "run prints one timing line on stderr" grep -q "generation 16 tokens" "$TMP/err"

# the CLI reproduces the reference greedy continuation of len7
ids=$(grep '^len7 ' "$FIX/tiny-bitnet/inputs.txt" | cut -d' ' -f2- | tr ' ' ',')
want=$(grep -v '^#' "$FIX/tiny-bitnet/greedy_len7.txt" | awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')
got=$("$ROTOR" run -m "$M" --prompt-ids "$ids" --print-ids --temp 0 --ignore-eos -n 32 -q 2>/dev/null)
check "greedy --print-ids equals the reference" test "$got" = "$want"

"$ROTOR" run -m "$M" --prompt-ids "$ids" --logits-out "$TMP/l.bin" -n 1 -q >/dev/null 2>&1
check "--logits-out writes n_vocab floats" test "$(stat -c %s "$TMP/l.bin" 2>/dev/null)" = $((128256 * 4))

# --list-devices: each Vulkan device's line ends with whether rotor uses its memory model
devs=$("$ROTOR" --list-devices 2>&1)
vk_lines=$(printf '%s\n' "$devs" | sed -n '/^vulkan:/,/^[a-z]*:/p' | grep -E '^  [0-9]+: ')
if [ -z "$vk_lines" ]; then
    skip "--list-devices: no Vulkan device"
else
    check "--list-devices gives every Vulkan device its memory model" \
        test -z "$(printf '%s\n' "$vk_lines" | grep -vE 'memory model (yes|no|not used \(Mesa before 23\))$')"
fi

# greedy decoding on each GPU backend (one token ahead there): the same reference ids, and chat
# transcripts equal to the CPU's through /regen, /clear and a ring that wraps
chat_in=$(printf 'Hello there\n/regen\nWhat is two plus two?\n%s\n/clear\nAgain\n' "$(for i in $(seq 1 12); do printf 'one two three four five '; done)")
cpu_chat=$(printf '%s\n' "$chat_in" | "$ROTOR" chat -m "$M" --backend cpu --temp 0 -n 12 -c 64 2>/dev/null)
for be in vulkan opencl; do
    if ! why=$("$ROTOR" run -m "$M" --backend $be -p x -n 1 -q 2>&1 >/dev/null); then
        skip "greedy on $be: $(printf '%s' "$why" | tail -n 1)"
        continue
    fi
    got=$("$ROTOR" run -m "$M" --backend $be --prompt-ids "$ids" --print-ids --temp 0 --ignore-eos -n 32 -q 2>/dev/null)
    check "greedy --print-ids on $be (after the warm-up pass) equals the reference" test "$got" = "$want"
    got=$("$ROTOR" run -m "$M" --backend $be --prompt-ids "$ids" --print-ids --temp 0 --ignore-eos -n 32 -q --no-warmup 2>/dev/null)
    check "and with --no-warmup" test "$got" = "$want"
    out=$(printf '%s\n' "$chat_in" | "$ROTOR" chat -m "$M" --backend $be --temp 0 -n 12 -c 64 2>/dev/null)
    check "greedy chat on $be equals the cpu's" test -n "$out" -a "$out" = "$cpu_chat"
    out=$("$ROTOR" bench -m "$M" --backend $be -p 0 -n 2 -r 1 --no-warmup 2>/dev/null)
    check "bench on $be: the device's own read bandwidth and a roofline" \
        sh -c "printf '%s\n' '$out' | grep -qE 'memory bandwidth [0-9.]+ GB/s \(device reads\) \| roofline [0-9.]+ tok/s'"
    check "and tg as a fraction of it" sh -c "printf '%s\n' '$out' | grep -qE '\| tg2 \| [0-9.]+ ± [0-9.]+ \| [0-9]+% \|'"
done

a=$("$ROTOR" run -m "$M" -p "Hello" -n 12 --seed 7 -q 2>/dev/null)
b=$("$ROTOR" run -m "$M" -p "Hello" -n 12 --seed 7 -q 2>/dev/null)
check "same seed, same output" test "$a" = "$b"

out=$(printf 'hello\n/regen\nbye\n' | "$ROTOR" chat -m "$M" -n 6 --seed 3 2>"$TMP/err"); rc=$?
check "chat from a pipe exits 0" test $rc -eq 0
check "chat answers three turns" test "$(printf '%s\n' "$out" | wc -l)" -ge 3

printf 'hi\n' | "$ROTOR" chat -m "$M" -n 4 -c 16 >/dev/null 2>&1
check "chat with a tiny context" test $? -eq 0
long=$(for i in $(seq 1 40); do printf 'one two three four five six seven '; done)
printf '%s\n%s\n%s\n' "$long" "$long" "$long" | "$ROTOR" chat -m "$M" -n 8 -c 64 >/dev/null 2>&1
check "chat goes on past the context size" test $? -eq 0

# rotor bench: one row a test, every format; the untimed warm-up can be left out
out=$("$ROTOR" bench -m "$M" -p 16 -n 4 -r 2 --no-bandwidth -o jsonl 2>/dev/null); rc=$?
check "bench exits 0" test $rc -eq 0
check "bench jsonl: a pp16 row" sh -c "printf '%s\n' '$out' | grep -q '\"test\": \"pp\", \"n_prompt\": 16'"
check "bench jsonl: a tg4 row" sh -c "printf '%s\n' '$out' | grep -q '\"test\": \"tg\", \"n_prompt\": 0, \"n_gen\": 4'"
check "bench jsonl: two rows" test "$(printf '%s\n' "$out" | grep -c '^{')" -eq 2
out=$("$ROTOR" bench -m "$M" -p 8 -n 0 -r 1 --no-bandwidth --no-warmup -o csv 2>/dev/null)
check "bench csv: a header and one row" test "$(printf '%s\n' "$out" | wc -l)" -eq 2
out=$("$ROTOR" bench -m "$M" -p 0 -n 2 -r 1 --no-bandwidth 2>/dev/null)
check "bench md: a tg2 row" sh -c "printf '%s\n' '$out' | grep -q '| tg2 |'"
out=$("$ROTOR" bench -m "$M" -p 8 -n 2 -d 0,16 -r 1 --no-bandwidth --no-warmup -o jsonl 2>/dev/null)
check "bench -d: four rows, two at depth 16" test "$(printf '%s\n' "$out" | grep -c '"n_depth": 16')" -eq 2 -a "$(printf '%s\n' "$out" | grep -c '^{')" -eq 4
out=$("$ROTOR" bench -m "$M" -p 0 -n 2 -d 16 -r 1 --no-bandwidth --no-warmup 2>/dev/null)
check "bench md: a 'tg2 @ d16' row" sh -c "printf '%s\n' '$out' | grep -q '| tg2 @ d16 |'"
check_fails "bench: bad depth list" "-d needs" "$ROTOR" bench -m "$M" -d x
check_fails "bench: unknown option" "unknown option" "$ROTOR" bench -m "$M" --frobnicate
check_fails "bench: bad repetitions" "-r needs" "$ROTOR" bench -m "$M" -r 0

check_fails "missing model" "no-such.rotor" "$ROTOR" run -m "$TMP/no-such.rotor" -p hi
check_fails "no model flag" "no model" "$ROTOR" run -p hi
check_fails "unreadable prompt file" "nope.txt" "$ROTOR" run -m "$M" -f "$TMP/nope.txt"
check_fails "invalid UTF-8 on stdin" "UTF-8" sh -c "printf 'abc\\377\\376def' | '$ROTOR' run -m '$M' -n 2"
check_fails "prompt longer than the context" "longer than the context" "$ROTOR" run -m "$M" -c 16 -p "$long"
check_fails "unknown flag" "unknown option" "$ROTOR" run -m "$M" --frobnicate
check_fails "bad number" "-n needs" "$ROTOR" run -m "$M" -p hi -n lots
check_fails "unknown command" "unknown command" "$ROTOR" frobnicate
check_fails "token id out of range" "out of range" "$ROTOR" run -m "$M" --prompt-ids 999999 -n 1

# output to a closed pipe ends cleanly
"$ROTOR" run -m "$M" -p "Hello" -n 200 --ignore-eos 2>"$TMP/err" | head -c 10 >/dev/null
rc=${PIPESTATUS[0]}
check "closed stdout exits 0" test "$rc" -eq 0
check "closed stdout is not an error" test ! -s "$TMP/err" -o -z "$(grep -v '^rotor: \(load\|no usable GPU\)' "$TMP/err")"

# answers from an index cite their sources
mkdir -p "$TMP/docs"
printf 'The zebrafish quasar protocol uses port 7781.\n\nIt was designed in 2019.\n' > "$TMP/docs/a.md"
printf 'Bananas are yellow fruit.\n' > "$TMP/docs/b.txt"
"$ROTOR" rag-index "$TMP/docs" --db "$TMP/i.sqlite" >/dev/null 2>&1
out=$("$ROTOR" run -m "$M" --rag "$TMP/i.sqlite" -k 1 -p "Which port does the zebrafish quasar protocol use?" -n 4 --seed 1 2>/dev/null)
check "run --rag exits 0" test $? -eq 0
check "run --rag lists the source it used" sh -c "printf '%s' \"\$1\" | grep -q 'a.md:1-3'" _ "$out"

# a real terminal: Ctrl-C stops the answer, the chat goes on, /exit leaves; Ctrl-C at an
# empty prompt leaves. The driver waits for the prompt and the answer, not for fixed delays.
if command -v python3 >/dev/null; then
    for sc in interrupt-answer interrupt-prompt; do
        if why=$(python3 tests/pty_chat.py $sc "$ROTOR" chat -m "$M" --ignore-eos -n -1 --color off 2>&1); then
            pass
        else
            fail "pty chat $sc: $why"
        fi
    done
else
    skip "python3 not installed: no pseudo-terminal test"
fi
t_done cli
