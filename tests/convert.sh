# tests/convert.sh: `rotor convert` as a user drives it: both fixtures, --verify, --force,
# synthetic models, flag errors, damaged outputs, and a full disk (a 1 MB tmpfs, when this user
# may mount one). Every failure must be one line on stderr, a non-zero exit and no file left.
. tests/lib.sh

no_tmp_left() { ! ls "$1" 2>/dev/null | grep -q '\.tmp'; }

M=$TMP/tiny.rotor
out=$("$ROTOR" convert "$FIX/tiny-bitnet" -o "$M" 2>"$TMP/err"); rc=$?
check "convert the tiny fixture" test $rc -eq 0
check "summary names the output" grep -q "tiny.rotor: bitnet" <<<"$out"
check "summary gives 2 bits per ternary weight" grep -q "2.00 bits/weight" <<<"$out"
check "nothing on stderr when it is not a terminal" test ! -s "$TMP/err"
out=$("$ROTOR" convert --verify "$M" 2>&1); rc=$?
check "--verify accepts it" test $rc -eq 0
check "--verify says ok" grep -q ": ok:" <<<"$out"

check_fails "existing output" "exists \(use --force" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$M"
check "--force overwrites" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$M" --force
check "--head q8" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/q8.rotor" --head q8
check "--head q8 verifies" "$ROTOR" convert --verify "$TMP/q8.rotor"
check "the embedding fixture converts" "$ROTOR" convert "$FIX/tiny-bitnet-embed" -o "$TMP/embed.rotor"
check "the embedding model verifies" "$ROTOR" convert --verify "$TMP/embed.rotor"

check_fails "no arguments" "usage" "$ROTOR" convert
check_fails "no output" "no output file" "$ROTOR" convert "$FIX/tiny-bitnet"
check_fails "missing source" "no-such-dir: no such file" "$ROTOR" convert "$TMP/no-such-dir" -o "$TMP/x.rotor"
check_fails "unknown option" "unknown option --frob" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/x.rotor" --frob
check_fails "bad --head" "--head must be f16 or q8" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/x.rotor" --head q4
check_fails "--seed without --synthetic" "only to --synthetic" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/x.rotor" --seed 3
check_fails "bad --seed" "--seed needs" "$ROTOR" convert --synthetic tiny -o "$TMP/x.rotor" --seed minus
check_fails "config.json instead of the folder" "give the model folder" "$ROTOR" convert "$FIX/tiny-bitnet/config.json" -o "$TMP/x.rotor"
check_fails "not a model" "neither a Hugging Face model folder nor a GGUF" "$ROTOR" convert "$FIX/tiny-bitnet/inputs.txt" -o "$TMP/x.rotor"
mkdir -p "$TMP/empty"
check_fails "folder without config.json" "no config.json" "$ROTOR" convert "$TMP/empty" -o "$TMP/x.rotor"
check_fails "output folder missing" "cannot create" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/nowhere/x.rotor"
check_fails "unknown synthetic shape" "unknown synthetic shape" "$ROTOR" convert --synthetic gpt5 -o "$TMP/x.rotor"
# GGUF input is recognised by its magic; damaged headers fail cleanly
python3 -c "import struct,sys; open(sys.argv[1],'wb').write(b'GGUF'+struct.pack('<IQQ',3,0,1)+struct.pack('<Q',(1<<62))+b'abc')" "$TMP/huge.gguf"
check_fails "GGUF with a huge string length" "huge.gguf: .*string length" "$ROTOR" convert "$TMP/huge.gguf" -o "$TMP/x.rotor"
python3 -c "import struct,sys; open(sys.argv[1],'wb').write(b'GGUF'+struct.pack('<IQQ',3,5,40))" "$TMP/short.gguf"
check_fails "truncated GGUF" "short.gguf: .*truncated or corrupt GGUF header" "$ROTOR" convert "$TMP/short.gguf" -o "$TMP/x.rotor"
check "no output after the failures" test ! -e "$TMP/x.rotor"

# synthetic: deterministic per seed
check "synthetic tiny" "$ROTOR" convert --synthetic tiny --seed 5 -o "$TMP/s1.rotor" --tokenizer "$FIX/tiny-bitnet/tokenizer.json"
check "synthetic tiny again" "$ROTOR" convert --synthetic tiny --seed 5 -o "$TMP/s2.rotor" --tokenizer "$FIX/tiny-bitnet/tokenizer.json"
check "synthetic tiny, seed 6" "$ROTOR" convert --synthetic tiny --seed 6 -o "$TMP/s3.rotor" --tokenizer "$FIX/tiny-bitnet/tokenizer.json"
check "same seed, same file" cmp -s "$TMP/s1.rotor" "$TMP/s2.rotor"
check "other seed, other file" bash -c "! cmp -s '$TMP/s1.rotor' '$TMP/s3.rotor'"
check "synthetic verifies" "$ROTOR" convert --verify "$TMP/s1.rotor"

# damaged files
cp "$M" "$TMP/flip.rotor"
python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(8192+5); b=f.read(1); f.seek(8192+5); f.write(bytes([b[0]^1]))" "$TMP/flip.rotor"
check_fails "flipped byte" "checksum mismatch" "$ROTOR" convert --verify "$TMP/flip.rotor"
cp "$M" "$TMP/trunc.rotor"
truncate -s -4096 "$TMP/trunc.rotor"
check_fails "truncated file" "truncated" "$ROTOR" convert --verify "$TMP/trunc.rotor"
head -c 100 /dev/urandom >"$TMP/junk.rotor"
check_fails "not a .rotor file" "bad magic" "$ROTOR" convert --verify "$TMP/junk.rotor"
check_fails "missing file" "no-such.rotor" "$ROTOR" convert --verify "$TMP/no-such.rotor"

# Ctrl-C during a long conversion: exit 130, no output, no temporary file
"$ROTOR" convert --synthetic bitnet-2b4t -o "$TMP/int.rotor" 2>"$TMP/err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
check "interrupted conversion exits 130" test $rc -eq 130
check "interrupted conversion leaves nothing" bash -c "! ls '$TMP' | grep -q int.rotor"

# a full disk: the error names the problem and the partial file is gone
mkdir -p "$TMP/small"
if mount -t tmpfs -o size=1m tmpfs "$TMP/small" 2>/dev/null; then
    check_fails "disk full" "no space left on device" "$ROTOR" convert "$FIX/tiny-bitnet" -o "$TMP/small/x.rotor"
    check "disk full leaves nothing" test -z "$(ls -A "$TMP/small")"
    umount "$TMP/small"
else
    skip "disk full: cannot mount a tmpfs here (needs root)"
fi

check "no temporary files left" no_tmp_left "$TMP"
t_done convert
