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

# gtest_suite NAME BINARY: runs a GoogleTest binary and counts its results.
gtest_suite() {
    local name=$1 binary=$2 p f total
    "$binary" --gtest_brief=1 2>&1 | tee "$log_dir/$name.log" | tail -15
    p=$(grep -oE '^\[  PASSED  \] [0-9]+ test' "$log_dir/$name.log" | grep -oE '[0-9]+' || echo 0)
    f=$(grep -oE '^\[  FAILED  \] [0-9]+ test' "$log_dir/$name.log" | grep -oE '[0-9]+' || echo 0)
    total=$(grep -oE '^\[==========\] [0-9]+ tests? from' "$log_dir/$name.log" | grep -oE '[0-9]+' | head -1 || echo 0)
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    # a crash (or a sanitizer report, which aborts) leaves no summary: count the missing tests as failed
    if [ $((p + f)) -lt "${total:-0}" ]; then f=$((total - p)); fi
    if [ $((p + f)) -eq 0 ]; then f=1; fi # the binary did not run at all
    count "$name" "$p" "$f"
}

echo "== unit tests (GoogleTest)"
make -C tests/unit -j"$JOBS" >"$log_dir/unit-build.log" 2>&1 || { tail -30 "$log_dir/unit-build.log"; count unit 0 1; }
if [ -x tests/unit/build/unit_tests ]; then
    gtest_suite unit tests/unit/build/unit_tests
fi

# The same unit tests (the protocol codec and its fuzz test, the sidecar's logic) built with
# AddressSanitizer and UndefinedBehaviorSanitizer in a build directory of their own; any report
# aborts the binary, which counts as failed tests. The sidecar built the same way runs a few
# integration tests below (suite sidecar-asan).
SAN_CXXFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
echo "== unit tests under AddressSanitizer and UndefinedBehaviorSanitizer"
rm -f tests/unit/build-asan/unit_tests
make -C tests/unit -j"$JOBS" BUILD=build-asan CXXFLAGS="$SAN_CXXFLAGS" >"$log_dir/unit-asan-build.log" 2>&1 ||
    { tail -30 "$log_dir/unit-asan-build.log"; count unit-asan 0 1; }
if [ -x tests/unit/build-asan/unit_tests ]; then
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        gtest_suite unit-asan tests/unit/build-asan/unit_tests
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
    line=$(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log_dir/$name.log" | tail -1)
    if [ -z "$line" ]; then
        count "$name" 0 1
    else
        count "$name" "$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')" \
            "$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')" \
            "$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+')"
    fi
done

# The real sidecar built with the sanitizers, under a few delivery and fault tests and every
# hostile-worker test (a test file without names runs all its tests); harness.py
# fails a test after which a sidecar wrote a sanitizer report (HASURA_EVENTS_SANITIZER_LOGS).
# The binary and the report directory live where the server's OS user can reach them.
echo "== sidecar-asan: integration tests against the sidecar built with ASan and UBSan"
san_dir=$(mktemp -d)
chmod 755 "$san_dir"
mkdir "$san_dir/reports"
chmod 777 "$san_dir/reports"
if make -C sidecar -j"$JOBS" BUILD=build-asan PROGRAM=build-asan/hasura-events-sidecar CXXFLAGS="$SAN_CXXFLAGS" \
    HASURA_EVENTS_VERSION="$(sed -n 's/^EXTVERSION *= *//p' Makefile)" \
    >"$log_dir/sidecar-asan-build.log" 2>&1 && install -m 755 sidecar/build-asan/hasura-events-sidecar "$san_dir/"; then
    san_p=0
    san_f=0
    for run in "test_delivery insert_update_delete_delivered failure_then_success_retries timeout_is_a_failed_attempt \
headers_and_webhook_from_env urls_curl_refuses_are_failed_attempts sigterm_stops_sidecar_cleanly" \
        "test_observability healthz_follows_worker_connections endpoint_answers_only_get_and_head \
metrics_after_known_deliveries logs_have_fields_and_no_secrets" \
        "test_faults random_500s_with_retries sigterm_with_a_backlog_gives_queued_deliveries_back" \
        "test_hostile_worker"; do
        read -r file tests <<<"$run"
        # shellcheck disable=SC2086 # the test names are words
        HASURA_EVENTS_SIDECAR="$san_dir/hasura-events-sidecar" HASURA_EVENTS_SANITIZER_LOGS="$san_dir/reports" \
            python3 "tests/integration/$file.py" $tests 2>&1 | tee "$log_dir/sidecar-asan-$file.log" | grep -vE '^\{"ts"' | tail -100
        line=$(grep -E '^[a-z_]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log_dir/sidecar-asan-$file.log" | tail -1)
        if [ -z "$line" ]; then
            san_f=$((san_f + 1))
        else
            p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+')
            f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+')
            [ $((p + f)) -eq 0 ] && f=1 # no test of that name ran
            san_p=$((san_p + p))
            san_f=$((san_f + f))
        fi
    done
    # a report no test collected (a sidecar that outlived its test)
    if [ -n "$(ls -A "$san_dir/reports")" ]; then
        cat "$san_dir/reports"/*
        san_f=$((san_f + 1))
    fi
    count sidecar-asan "$san_p" "$san_f"
else
    tail -30 "$log_dir/sidecar-asan-build.log"
    count sidecar-asan 0 1
fi
rm -rf "$san_dir"

if [ "$skipped" -gt 0 ]; then
    echo "$passed passed, $failed failed, $skipped skipped"
else
    echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
