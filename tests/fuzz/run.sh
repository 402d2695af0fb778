#!/usr/bin/env bash
# tests/fuzz/run.sh: runs libFuzzer targets, FUZZ_JOBS at a time, and prints one line per target.
# Usage: tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...   (make fuzz / make fuzz-smoke call it)
# Each target starts from build-fuzz/corpus/TARGET (what earlier runs found, grown in place),
# the generated seeds and the committed ones in tests/fuzz/corpus and tests/fuzz/regress.
# A crash, leak, timeout or failed property leaves its input in BUILD_DIR/artifacts/TARGET/;
# the exit status is 1 if any target found something.
set -u
b=$1 secs=$2
shift 2
jobs_max=${FUZZ_JOBS:-1}
mkdir -p "$b/logs"
# one target: its summary line goes to logs/TARGET.line, exit status 1 if it found something
one() {
    local t=$1 corpus=$b/corpus/$1 art=$b/artifacts/$1 log=$b/logs/$1.log
    mkdir -p "$corpus" "$art"
    local dirs=("$corpus") d
    for d in "$b/seeds/$t" "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    local start=$SECONDS
    "$b/fuzz/$t" -max_total_time="$secs" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$art/" "${dirs[@]}" >"$log" 2>&1
    local rc=$?
    local el=$((SECONDS - start))
    local runs cov n
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -n 1 | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | awk '{print $2}')
    n=$(find "$corpus" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        printf '%-20s %9s runs in %3ss (%s/s), coverage %s edges, corpus %s, nothing found\n' \
            "$t" "${runs:-?}" "$el" "$(( ${runs:-0} / (el > 0 ? el : 1) ))" "${cov:-?}" "$n" >"$b/logs/$t.line"
        return 0
    fi
    local what art_file
    what=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): [a-zA-Z-]+|runtime error: .*|fuzz property failed.*' "$log")
    art_file=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -n 1 | cut -d' ' -f5)
    printf '%-20s FOUND after %ss: %s\n%-20s input: %s (log: %s)\n' "$t" "$el" "${what:-exit $rc}" "" \
        "${art_file:-?}" "$log" >"$b/logs/$t.line"
    return 1
}
# FUZZ_JOBS targets at a time; the lines come out in the order the targets were named
found=0
running=0
for t in "$@"; do
    if [ $running -ge "$jobs_max" ]; then wait -n || found=1; running=$((running - 1)); fi
    rm -f "$b/logs/$t.line"
    one "$t" &
    running=$((running + 1))
done
while [ $running -gt 0 ]; do wait -n || found=1; running=$((running - 1)); done
for t in "$@"; do cat "$b/logs/$t.line" 2>/dev/null || { echo "$t: no result"; found=1; }; done
exit $found
