# tests/lib.sh: helpers for shell tests. Source it, call check/skip, end with t_done NAME.
# ROTOR is the binary under test, FIX the shared fixtures, TMP a scratch folder removed at exit.
ROTOR=${ROTOR:-./rotor}
FIX=${ROTOR_FIXTURES:-../shared/fixtures}
BUILD=${BUILD:-build}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rotor-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
T_PASS=0 T_FAIL=0 T_SKIP=0
pass() { T_PASS=$((T_PASS + 1)); }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL $*" >&2; }
skip() { T_SKIP=$((T_SKIP + 1)); echo "skip: $*" >&2; }
# check DESC CMD...: passes when CMD exits 0
check() { local d=$1; shift; if "$@" >/dev/null 2>&1; then pass; else fail "$d"; fi; }
# check_fails DESC PATTERN CMD...: CMD must exit non-zero (not by a signal), print one stderr line
# matching PATTERN, and not crash
check_fails() {
    local d=$1 pat=$2; shift 2
    local err rc
    err=$("$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -eq 0 ]; then fail "$d: exited 0"; return; fi
    if [ $rc -ge 128 ]; then fail "$d: killed by signal $((rc - 128))"; return; fi
    if ! printf '%s' "$err" | grep -qE -- "$pat"; then fail "$d: message '$err' lacks /$pat/"; return; fi
    pass
}
t_done() { echo "$1: $T_PASS passed, $T_FAIL failed, $T_SKIP skipped"; [ $T_FAIL -eq 0 ]; }
