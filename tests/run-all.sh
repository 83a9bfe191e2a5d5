#!/usr/bin/env bash
# tests/run-all.sh: every suite, as `make test` runs it: builds and installs the extension and the
# sidecar, then runs the GoogleTest unit tests, the pg_regress suite and the integration tests
# (real clusters, the real sidecar, a local HTTP receiver). Ends with one line
# "N passed, N failed" adding up every suite's counts; exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

JOBS=${JOBS:-2}
passed=0
failed=0
skipped=0
log_dir=$(mktemp -d)
trap 'rm -rf "$log_dir"' EXIT

# count SUITE PASSED FAILED [SKIPPED]: adds a suite's counts to the totals.
count() {
    echo "== $1: $2 passed, $3 failed${4:+, $4 skipped}"
    passed=$((passed + $2))
    failed=$((failed + $3))
    skipped=$((skipped + ${4:-0}))
}

echo "== build"
if ! make -j"$JOBS" >"$log_dir/build.log" 2>&1; then
    tail -50 "$log_dir/build.log"
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi
if ! sudo_if_needed make install >"$log_dir/install.log" 2>&1; then
    tail -30 "$log_dir/install.log"
    echo "install failed"
    echo "0 passed, 1 failed"
    exit 1
fi
make check-version || { echo "0 passed, 1 failed"; exit 1; }

echo "== unit tests (GoogleTest)"
make -C tests/unit -j"$JOBS" >"$log_dir/unit-build.log" 2>&1 || { tail -30 "$log_dir/unit-build.log"; count unit 0 1; }
if [ -x tests/unit/build/unit_tests ]; then
    tests/unit/build/unit_tests --gtest_brief=1 2>&1 | tee "$log_dir/unit.log" | tail -15
    p=$(grep -oE '^\[  PASSED  \] [0-9]+ test' "$log_dir/unit.log" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log_dir/unit.log" | grep -oE '[0-9]+' || echo 0)
    total=$(grep -oE '^\[==========\] [0-9]+ tests? from' "$log_dir/unit.log" | grep -oE '[0-9]+' | head -1 || echo 0)
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    # a crash leaves no summary: count the missing tests as failed
    if [ $((p + f)) -lt "${total:-0}" ]; then f=$((total - p)); fi
    count unit "$p" "$f"
fi

echo "== pg_regress"
tests/run-regress.sh 2>&1 | tee "$log_dir/regress.log" | grep -E '^(ok|not ok|test |     |#)|tests (passed|failed)|failed \(ignored\)' | tail -40
p=$(grep -cE '^ok |^test .* \.\.\. ok|^     [a-z_0-9]+ +\.\.\. ok' "$log_dir/regress.log")
f=$(grep -cE '^not ok |\.\.\. FAILED' "$log_dir/regress.log")
if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then f=1; fi # pg_regress did not run
count pg_regress "$p" "$f"

for suite in tests/integration/test_*.py; do
    name=$(basename "$suite" .py)
    echo "== $name"
    python3 "$suite" 2>&1 | tee "$log_dir/$name.log" | grep -vE '^\{"ts"' | tail -200
    line=$(grep -E '^[a-z]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log_dir/$name.log" | tail -1)
    if [ -z "$line" ]; then
        count "$name" 0 1
    else
        count "$name" "$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')" \
            "$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')" \
            "$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')"
    fi
done

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
