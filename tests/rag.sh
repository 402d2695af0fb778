# tests/rag.sh: `rotor rag-index` and `rotor embed` end to end on a generated folder: first
# and incremental runs, deletions, skipped files (binary, huge, hidden, links out of the root,
# a link loop), invalid UTF-8, queries (text and JSON, FTS syntax in the query), kill -9 in the
# middle then a rerun (integrity_check, same chunks as a fresh index), a second indexer refused
# while the lock is held, bad input; with the converted tiny embedding model: `rotor embed`
# against the fixture's reference vectors, hybrid retrieval, and a model change.
. tests/lib.sh

D=$TMP/docs
mkdir -p "$D/sub/deep" "$D/.hidden" "$D/.git"
words="river stone lamp orchard signal copper winter harbor engine meadow ledger violet thunder"
prose() { # prose SEED WORDS: deterministic sentences
    awk -v seed="$1" -v n="$2" -v w="$words" 'BEGIN { split(w, a, " "); srand(seed);
        for (i = 1; i <= n; i++) { printf "%s%s", a[int(rand() * 13) + 1], (i % 11 == 0) ? ".\n" : " ";
            if (i % 77 == 0) printf "\n" } print "." }'
}
prose 1 900 > "$D/a.md"
{ prose 2 400; echo "The zymurgical quetzal marmalade was sampled at dawn."; prose 3 400; } > "$D/sub/b.txt"
printf 'int main(void) {\n    return 0; /* quokka wombat */\n}\n' > "$D/sub/deep/c.c"
printf '<html><body><h1>Orchard</h1><p>The tamarind &amp; the harbor.</p><script>var scriptword;</script></body></html>\n' > "$D/page.html"
printf 'caf\351 cr\350me and more text about a harbor.\n' > "$D/latin1.txt"
printf 'bin\000ary\001\002' > "$D/noext"
head -c 3000000 /dev/zero | tr '\0' 'x' > "$D/huge.txt"
echo "secret" > "$D/.hidden/s.md"
echo "[core]" > "$D/.git/config"
ln -s ../.. "$D/sub/deep/loop"
ln -s "$TMP" "$D/outside"
DB=$TMP/i.sqlite

out=$($ROTOR rag-index "$D" --db "$DB" --max-size 1 2>&1); rc=$?
if [ $rc -eq 0 ]; then pass; else fail "first index: $out"; fi
for w in "5 files indexed" "binary" "too large" "hidden" "outside root" "duplicate" "invalid UTF-8"; do
    case "$out" in *"$w"*) pass ;; *) fail "summary lacks '$w': $out" ;; esac
done

first=$($ROTOR rag-index --db "$DB" --query "zymurgical quetzal marmalade" 2>/dev/null | head -n 1)
case "$first" in *sub/b.txt:*) pass ;; *) fail "rare phrase: first hit '$first'" ;; esac
check "query with FTS syntax characters" $ROTOR rag-index --db "$DB" --query '"-: * ^ NEAR( AND'
first=$($ROTOR rag-index --db "$DB" --query 'quokka' -k 1 2>/dev/null)
case "$first" in *c.c:1-3*) pass ;; *) fail "line range of c.c hit: '$first'" ;; esac
if command -v python3 >/dev/null; then
    $ROTOR rag-index --db "$DB" --query "tamarind" --json -k 3 > "$TMP/q.json" 2>/dev/null
    if python3 -c 'import json,sys; h=json.load(open(sys.argv[1])); assert h[0]["path"].endswith("page.html") and "scriptword" not in h[0]["text"]' "$TMP/q.json"
    then pass; else fail "JSON query output: $(cat "$TMP/q.json")"; fi
else skip "python3 missing: JSON output not checked"; fi

out=$($ROTOR rag-index "$D" --db "$DB" --max-size 1 2>&1)
case "$out" in *"0 files indexed"*"5 unchanged"*) pass ;; *) fail "second run: $out" ;; esac
echo "A new paragraph about a saxophone." >> "$D/a.md"
rm "$D/sub/deep/c.c"
out=$($ROTOR rag-index "$D" --db "$DB" --max-size 1 2>&1)
case "$out" in *"1 file indexed"*"1 removed"*) pass ;; *) fail "changed + deleted: $out" ;; esac
first=$($ROTOR rag-index --db "$DB" --query saxophone -k 1 2>/dev/null)
case "$first" in *a.md:*) pass ;; *) fail "changed file: '$first'" ;; esac
first=$($ROTOR rag-index --db "$DB" --query quokka 2>/dev/null)
[ -z "$first" ] && pass || fail "deleted file still found: $first"

# a second indexer is refused while the lock is held
if command -v flock >/dev/null; then
    flock "$DB.lock" sleep 3 & fl=$!
    sleep 0.3
    check_fails "second indexer refused" "another process" $ROTOR rag-index "$D" --db "$DB"
    kill $fl 2>/dev/null; wait $fl 2>/dev/null
else skip "flock(1) missing"; fi

# kill -9 in the middle, then a rerun: the same as a fresh index
K=$TMP/many
mkdir -p "$K"
for i in $(seq 1 400); do prose $i 300 > "$K/f$i.txt"; done
$ROTOR rag-index "$K" --db "$TMP/fresh.sqlite" -q --chunk-tokens 64 --overlap 8 2>/dev/null
dump() {
    python3 - "$1" <<'EOF'
import sqlite3, sys, hashlib
c = sqlite3.connect(sys.argv[1])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
if not c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'chunks_fts'").fetchone()[0]:
    print("empty 0")  # killed before the schema was committed
    sys.exit(0)
c.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
h = hashlib.sha256()
for r in c.execute("SELECT d.path, c.ord, c.byte_start, c.byte_end, c.line_start, c.line_end, c.text "
                   "FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY d.path, c.ord"):
    h.update(repr(r).encode())
print(h.hexdigest(), c.execute("SELECT count(*) FROM chunks").fetchone()[0])
EOF
}
if command -v python3 >/dev/null; then
    want=$(dump "$TMP/fresh.sqlite")
    for delay in 0.05 0.2 0.4; do
        rm -f "$TMP/k.sqlite"*
        $ROTOR rag-index "$K" --db "$TMP/k.sqlite" -q --chunk-tokens 64 --overlap 8 2>/dev/null & pid=$!
        sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
        mid=$(dump "$TMP/k.sqlite" 2>&1) && pass || fail "integrity after kill -9 at ${delay}s: $mid"
        $ROTOR rag-index "$K" --db "$TMP/k.sqlite" -q --chunk-tokens 64 --overlap 8 2>/dev/null
        got=$(dump "$TMP/k.sqlite" 2>&1)
        [ "$got" = "$want" ] && pass || fail "after kill at ${delay}s and rerun: '$got' != '$want'"
    done
else skip "python3 missing: kill -9 test not run"; fi

# bad input
check_fails "no --db" "needs --db" $ROTOR rag-index "$D"
check_fails "missing folder" "No such file" $ROTOR rag-index "$TMP/nope" --db "$TMP/x.sqlite"
check_fails "query of a missing index" "No such file" $ROTOR rag-index --db "$TMP/none.sqlite" --query x
head -c 8192 /dev/urandom > "$TMP/junk.sqlite"
check_fails "junk index" "not a rotor index" $ROTOR rag-index --db "$TMP/junk.sqlite" --query x
check_fails "overlap >= chunk" "overlap" $ROTOR rag-index "$D" --db "$DB" --chunk-tokens 50 --overlap 50
check_fails "embed without a model" "model" $ROTOR embed -p hi

# with the tiny embedding model
E=$FIX/tiny-bitnet-embed
if [ ! -f "$E/config.json" ]; then skip "fixture tiny-bitnet-embed missing"; t_done rag; exit; fi
if ! timeout 120 $ROTOR convert "$E" -o "$TMP/e.rotor" >/dev/null 2>&1; then
    skip "tiny-bitnet-embed does not convert yet"; t_done rag; exit
fi
cosine() { # cosine FILE.f32.bin "floats..."
    python3 -c 'import struct,sys,math
r = struct.unpack("<32f", open(sys.argv[1], "rb").read()); v = [float(x) for x in sys.argv[2].split()]
print(sum(a*b for a, b in zip(r, v)) / math.sqrt(sum(a*a for a in r) * sum(b*b for b in v)) if len(v) == 32 else -1)' "$@"
}
M="-m $TMP/e.rotor -t 1"
v=$(timeout 60 $ROTOR embed $M -p "A ternary weight takes one of three values: -1, 0 or +1." 2>/dev/null)
c=$(cosine "$E/emb_passage_short1.f32.bin" "$v")
python3 -c "import sys; sys.exit(0 if float('$c') >= 0.999 else 1)" && pass || fail "embed passage: cosine $c"
v=$(printf 'what is a ternary weight?\n' | timeout 60 $ROTOR embed $M --query 2>/dev/null)
c=$(cosine "$E/emb_query.f32.bin" "$v")
python3 -c "import sys; sys.exit(0 if float('$c') >= 0.999 else 1)" && pass || fail "embed --query from stdin: cosine $c"
v=$(timeout 60 $ROTOR embed $M --json -p "The capital of France is Paris, a city on the Seine." 2>/dev/null)
python3 -c "import json,sys; a=json.loads(sys.argv[1]); assert len(a)==32 and abs(sum(x*x for x in a)-1)<1e-4" "$v" \
    && pass || fail "embed --json: $v"

H=$TMP/h.sqlite
out=$(timeout 300 $ROTOR rag-index "$D" --db "$H" $M --chunk-tokens 128 --overlap 16 --max-size 1 2>&1)
case "$out" in *"4 files indexed"*vectors*) pass ;; *) fail "index with a model: $out" ;; esac
first=$(timeout 60 $ROTOR rag-index --db "$H" --query "zymurgical quetzal marmalade" -t 1 2>/dev/null | head -n 1)
case "$first" in *sub/b.txt:*) pass ;; *) fail "hybrid: rare phrase first hit '$first'" ;; esac
first=$(timeout 60 $ROTOR rag-index --db "$H" --query "zymurgical quetzal marmalade" --json -t 1 2>/dev/null)
case "$first" in *'"vec_rank": '[1-9]*) pass ;; *) fail "hybrid: no vector ranks in '$first'" ;; esac
out=$(timeout 300 $ROTOR rag-index "$D" --db "$H" -t 1 --max-size 1 2>&1)
case "$out" in *"0 files indexed"*) pass ;; *) fail "rerun without -m reuses the model: $out" ;; esac
cp "$TMP/e.rotor" "$TMP/e2.rotor"
out=$(timeout 300 $ROTOR rag-index "$D" --db "$H" -m "$TMP/e2.rotor" -t 1 --max-size 1 2>&1)
case "$out" in *"4 files indexed"*"indexed again"*) pass ;; *) fail "model change: $out" ;; esac
check_fails "query with another model" "not the embedding model" $ROTOR rag-index --db "$H" --query x -m "$TMP/e.rotor" -t 1
t_done rag
