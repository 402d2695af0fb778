# tests/tokenize.sh: `rotor tokenize` on the converted tiny fixture: ids against the reference
# vectors, BOS handling, the three text sources, special tokens, and bad input.
. tests/lib.sh
M=$TMP/tiny.rotor
if ! "$ROTOR" convert "$FIX/tiny-bitnet" -o "$M" >/dev/null 2>&1; then
    fail "convert the tiny fixture"; t_done tokenize; exit
fi
pass

eq() { local d=$1 want=$2; shift 2; local got; got=$("$@" 2>/dev/null); if [ "$got" = "$want" ]; then pass; else fail "$d: got '$got', want '$want'"; fi; }

eq "BOS is prepended" "128000 9906 1917" "$ROTOR" tokenize -m "$M" -p "Hello world"
eq "--no-bos" "9906 1917" "$ROTOR" tokenize -m "$M" -p "Hello world" --no-bos
eq "stdin" "128000 9906 1917" sh -c "printf 'Hello world' | '$ROTOR' tokenize -m '$M'"
printf ' Hello world' >"$TMP/t.txt"
eq "-f FILE" "22691 1917" "$ROTOR" tokenize -m "$M" -f "$TMP/t.txt" --no-bos
eq "special token in text" "128009 128006 882 128007" "$ROTOR" tokenize -m "$M" --no-bos -p "<|eot_id|><|start_header_id|>user<|end_header_id|>"
got=$("$ROTOR" tokenize -m "$M" --no-bos --plain -p "<|eot_id|>" 2>/dev/null)
case " $got " in *" 128009 "*|" ") fail "--plain still gives the special id ($got)" ;; *) pass ;; esac

# a few reference vectors, through the whole CLI
n=0
while IFS= read -r line && [ $n -lt 12 ]; do
    n=$((n + 1))
    want=$(printf '%s' "$line" | python3 -c 'import json,sys
d = json.loads(sys.stdin.read())
open(sys.argv[1], "w", encoding="utf-8", newline="").write(d["text"])
print(" ".join(map(str, d["ids"])))' "$TMP/v.txt" 2>/dev/null) || { skip "python3 cannot read the vectors"; break; }
    [ -s "$TMP/v.txt" ] || continue
    eq "vectors.jsonl line $n" "$want" "$ROTOR" tokenize -m "$M" --no-bos -f "$TMP/v.txt"
done <"$FIX/llama3-tokenizer/vectors.jsonl"

check_fails "invalid UTF-8" "UTF-8" sh -c "printf 'abc\\377def' | '$ROTOR' tokenize -m '$M'"
check_fails "no model" "no model" "$ROTOR" tokenize -p hi
check_fails "missing model file" "no-such.rotor" "$ROTOR" tokenize -m "$TMP/no-such.rotor" -p hi
check_fails "unknown flag" "unknown" "$ROTOR" tokenize -m "$M" --frobnicate
check_fails "missing text file" "nope.txt" "$ROTOR" tokenize -m "$M" -f "$TMP/nope.txt"
t_done tokenize
