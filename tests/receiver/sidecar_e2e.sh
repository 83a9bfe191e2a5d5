#!/usr/bin/env bash
# tests/receiver/sidecar_e2e.sh
#
# End-to-end check of hasura-events-sidecar without Postgres: receiver.py as the webhook,
# fake_worker.py as the worker. Builds nothing; run `make -C sidecar` first.
#   tests/receiver/sidecar_e2e.sh [path/to/hasura-events-sidecar]
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SIDECAR=${1:-$HERE/../../sidecar/hasura-events-sidecar}
TMP=$(mktemp -d /tmp/hasura_events_e2e.XXXXXX)
PORT=${E2E_PORT:-18931}
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; echo "--- sidecar log (tail)"; tail -n 30 "$TMP/sidecar.log" || true; exit 1; }

python3 "$HERE/receiver.py" --port "$PORT" --log "$TMP/requests.log" >"$TMP/receiver.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$TMP/receiver.out" 2>/dev/null && break; sleep 0.1; done
BASE=http://127.0.0.1:$PORT

export E2E_HOST=127.0.0.1:$PORT E2E_URL=$BASE/ok?from=env-secret-url E2E_TOKEN=tok-secret-42

# two workers (two databases) served by one sidecar
python3 "$HERE/fake_worker.py" --socket "$TMP/he.sock.1" --database db1 --timeout 20 \
	--deliver '{"webhook": "http://{{E2E_HOST}}/ok", "headers": [["X-Token", "E2E_TOKEN", true], ["X-Plain", "p", false]]}' \
	--deliver '{"webhook": "E2E_URL", "webhook_from_env": true}' \
	--deliver "{\"webhook\": \"$BASE/fail\"}" \
	--deliver "{\"webhook\": \"$BASE/retry-after/7\"}" \
	--deliver '{"webhook": "http://{{E2E_MISSING}}/ok"}' \
	--deliver '{"webhook": "http://{{HASURA_GRAPHQL_ADMIN_SECRET}}/ok"}' \
	--deliver '{"webhook": "ftp://127.0.0.1/x"}' \
	--deliver "{\"webhook\": \"$BASE/slow/3\", \"timeout_sec\": 1}" >"$TMP/worker1.out" &
W1=$!
python3 "$HERE/fake_worker.py" --socket "$TMP/he.sock.2" --database db2 --timeout 20 --repeat 200 \
	--deliver "{\"webhook\": \"$BASE/ok\"}" >"$TMP/worker2.out" &
W2=$!
sleep 0.3
"$SIDECAR" --socket "$TMP/he.sock" --pool-size 4 --grace-period 1 2>"$TMP/sidecar.log" &
SC=$!
PIDS+=($SC)
wait $W1 || fail "worker 1 did not get every outcome"
wait $W2 || fail "worker 2 did not get every outcome"

w1=$TMP/worker1.out
[ "$(grep -c '"delivered"' "$w1")" = 2 ] || fail "expected 2 delivered on db1"
grep -q '"http_status": 500' "$w1" || fail "no 500 outcome"
grep -q '"http_status": 503, "retry_after_sec": 7' "$w1" || fail "no Retry-After 7"
grep -q 'environment variable E2E_MISSING is not set' "$w1" || fail "missing variable"
grep -q 'environment variable HASURA_GRAPHQL_ADMIN_SECRET may not be used' "$w1" || fail "HASURA_GRAPHQL_ refused"
grep -q 'Unsupported protocol' "$w1" || fail "ftp refused"
grep -q 'Timeout was reached' "$w1" || fail "timeout"
[ "$(grep -c '"delivered"' "$TMP/worker2.out")" = 200 ] || fail "expected 200 delivered on db2"

python3 - "$TMP/requests.log" <<'PY' || fail "request checks"
import json, sys
reqs = [json.loads(l) for l in open(sys.argv[1])]
tok = [r for r in reqs if r["headers"].get("X-Token")]
assert len(tok) == 1 and tok[0]["headers"]["X-Token"] == "tok-secret-42", tok
h = tok[0]["headers"]
assert h["Content-Type"] == "application/json" and h["User-Agent"].startswith("hasura-events/"), h
assert h["X-Plain"] == "p" and "Expect" not in h, h
assert all(r["method"] == "POST" and isinstance(r["body"], dict) for r in reqs)
ports = {r["client_port"] for r in reqs}
assert len(ports) <= 8, f"{len(ports)} TCP connections for {len(reqs)} requests: no keep-alive?"
PY
! grep -q 'tok-secret-42' "$TMP/sidecar.log" || fail "a header secret reached the log"
! grep -q 'env-secret-url' "$TMP/sidecar.log" || fail "a resolved URL reached the log"
grep -q 'from=env-secret-url' "$TMP/requests.log" || fail "URL from the environment not used"
grep -q '"msg":"attempt"' "$TMP/sidecar.log" || fail "no attempt log lines"

# shutdown: in-flight attempts past the grace period are reported as client_error
python3 "$HERE/fake_worker.py" --socket "$TMP/he.sock.3" --timeout 20 --expect-goodbye --repeat 2 \
	--deliver "{\"webhook\": \"$BASE/slow/5\"}" >"$TMP/worker3.out" &
W3=$!
for _ in $(seq 100); do grep -q '"Credit"' "$TMP/worker3.out" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
kill -TERM $SC
wait $SC || fail "sidecar exit code $?"
wait $W3 || fail "worker 3"
grep -q '"Goodbye"' "$TMP/worker3.out" || fail "no Goodbye"
[ "$(grep -c 'sidecar shutting down' "$TMP/worker3.out")" -ge 3 ] || fail "in-flight not reported as shutting down"

# bad command line
set +e
"$SIDECAR" --no-such-flag 2>"$TMP/err"; rc=$?
set -e
[ $rc = 2 ] && grep -q -- --no-such-flag "$TMP/err" || fail "bad flag: rc $rc"

echo "sidecar e2e: all checks passed"
