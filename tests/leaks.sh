# tests/leaks.sh: memory leaks and memory errors over a whole session on the tiny model:
# convert, verify, run, chat, tokenize, embed, rag-index and a query, plus error paths
# (a damaged model, a broken tokenizer.json, a prompt that does not fit).
# Under Valgrind (memcheck: leaks "definitely" or "indirectly" lost, invalid reads and writes,
# uses of uninitialised values) when the binary is a plain build; when the binary was built
# with AddressSanitizer (make san-test), LeakSanitizer does the same at every exit.
# GPU drivers keep memory of their own, so the session runs on the CPU backend; generation is
# kept to a few tokens (each one computes 128256 logits, slow under Valgrind).
. tests/lib.sh

if grep -q __asan_init "$ROTOR" 2>/dev/null; then
    MODE=asan
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    W=()
elif command -v valgrind >/dev/null; then
    MODE=valgrind
    # the dynamic loader's strncmp reads whole words past the end of short strings
    printf '{\n  ld.so reads past the end of a path\n  Memcheck:Addr8\n  fun:strncmp\n  fun:is_dst\n}\n' >"$TMP/valgrind.supp"
    W=(valgrind -q --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
       --error-exitcode=99 --suppressions="$TMP/valgrind.supp" --log-file="$TMP/vg.%p")
else
    skip "neither Valgrind nor a sanitizer build: leaks not checked (apt-get install valgrind)"
    t_done leaks; exit 0
fi

# leak_free DESC WANT-STATUS CMD...: CMD under the checker (stdin from $IN, else /dev/null)
# exits WANT-STATUS and reports nothing
leak_free() {
    local d=$1 want=$2; shift 2
    rm -f "$TMP"/vg.*
    "${W[@]}" "$@" >"$TMP/out" 2>"$TMP/err" <"${IN:-/dev/null}"
    local rc=$? rep=""
    [ $MODE = valgrind ] && rep=$(cat "$TMP"/vg.* 2>/dev/null)
    [ $MODE = asan ] && rep=$(grep -E "Sanitizer|runtime error" "$TMP/err")
    if [ $rc -ne "$want" ] || [ -n "$rep" ]; then
        fail "$d: exit $rc (want $want): $(printf '%s\n%s' "$rep" "$(cat "$TMP/err")" | head -n 25)"
    else
        pass
    fi
}

M=$TMP/tiny.rotor
E=$TMP/embed.rotor
leak_free "convert" 0 "$ROTOR" convert "$FIX/tiny-bitnet" -o "$M"
[ -e "$M" ] || { fail "no model to go on with"; t_done leaks; exit; }
leak_free "convert --verify" 0 "$ROTOR" convert --verify "$M"
leak_free "run, two threads" 0 "$ROTOR" run -m "$M" --backend cpu -t 2 -p "The quick brown fox" -n 3 --seed 3
leak_free "run --chat with a system prompt, greedy" 0 "$ROTOR" run -m "$M" --backend cpu -t 1 --chat -s "Be brief." -p "Hello" -n 2 --temp 0
leak_free "run --print-ids --logits-out" 0 "$ROTOR" run -m "$M" --backend cpu -t 1 --prompt-ids 128000,9906 -n 2 --print-ids --logits-out "$TMP/l.bin"
printf 'hello\n/regen\n/clear\n/help\nbye\n' >"$TMP/chat.in"
IN=$TMP/chat.in leak_free "chat: turns, /regen, /clear" 0 "$ROTOR" chat -m "$M" --backend cpu -t 1 -n 2 --seed 1
leak_free "tokenize" 0 "$ROTOR" tokenize -m "$M" -p "Héllo wörld <|eot_id|> 123"
leak_free "--version" 0 "$ROTOR" --version

if "$ROTOR" convert "$FIX/tiny-bitnet-embed" -o "$E" >/dev/null 2>&1; then
    leak_free "embed" 0 "$ROTOR" embed -m "$E" --backend cpu -p "a short passage"
    D=$TMP/docs
    mkdir -p "$D/sub"
    for i in 1 2; do
        awk -v s=$i 'BEGIN { srand(s); for (j = 0; j < 200; j++) printf "%s%s", substr("riverstonelamporchardsignal", int(rand() * 24) + 1, 4), (j % 11 == 10) ? ".\n" : " " }' >"$D/d$i.md"
    done
    printf '<html><body><p>The harbor &amp; the lamp.</p></body></html>\n' >"$D/sub/p.html"
    printf 'caf\351 and bytes \377 here\n' >"$D/sub/latin1.txt"
    leak_free "rag-index with an embedding model" 0 "$ROTOR" rag-index "$D" --db "$TMP/i.sqlite" -m "$E" --backend cpu -q
    leak_free "rag-index query" 0 "$ROTOR" rag-index --db "$TMP/i.sqlite" --query "harbor lamp" -k 3 --backend cpu
    echo "a new line about copper" >>"$D/d1.md"
    leak_free "rag-index, incremental" 0 "$ROTOR" rag-index "$D" --db "$TMP/i.sqlite" -m "$E" --backend cpu -q
else
    skip "embedding fixture did not convert: embed and rag-index not checked"
fi

# error paths free what they allocated
head -c 5000000 "$M" >"$TMP/cut.rotor"
leak_free "run on a truncated model" 1 "$ROTOR" run -m "$TMP/cut.rotor" -p hi
cp "$M" "$TMP/flip.rotor"
printf '\001' | dd of="$TMP/flip.rotor" bs=1 seek=5000 conv=notrunc 2>/dev/null
leak_free "--verify of a damaged model" 1 "$ROTOR" convert --verify "$TMP/flip.rotor"
leak_free "a prompt longer than the context" 1 "$ROTOR" run -m "$M" --backend cpu -c 16 -p "$(printf 'word %.0s' $(seq 1 100))"
leak_free "invalid UTF-8 prompt" 1 "$ROTOR" run -m "$M" --backend cpu -p "$(printf 'a\377b')"
mkdir -p "$TMP/hf"
ln -s "$(cd "$FIX/tiny-bitnet" && pwd)/config.json" "$TMP/hf/config.json"
ln -s "$(cd "$FIX/tiny-bitnet" && pwd)/model.safetensors" "$TMP/hf/model.safetensors"
head -c 3000000 "$FIX/tiny-bitnet/tokenizer.json" >"$TMP/hf/tokenizer.json"
leak_free "convert with a cut tokenizer.json" 1 "$ROTOR" convert "$TMP/hf" -o "$TMP/x.rotor"
python3 - "$FIX/tiny-bitnet/tokenizer.json" "$TMP/hf/tokenizer.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
d["model"]["merges"][100] = "qqqz zzzq"
json.dump(d, open(sys.argv[2], "w"))
EOF
leak_free "convert with an unknown merge" 1 "$ROTOR" convert "$TMP/hf" -o "$TMP/x.rotor"
python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(b"GGUF"+struct.pack("<IQQ",3,0,1)+struct.pack("<Q",1<<62)+b"abc")' "$TMP/huge.gguf"
leak_free "convert of a GGUF with a huge string" 1 "$ROTOR" convert "$TMP/huge.gguf" -o "$TMP/x.rotor"
echo "checker: $MODE" >&2
t_done leaks
