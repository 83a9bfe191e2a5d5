#!/usr/bin/env bash
# tests/demo.sh: `make demo`. Builds and installs, starts a throwaway cluster with the module,
# the sidecar and a small webhook receiver, registers an event trigger with one SQL call,
# changes rows, and shows the webhooks received and the event states. Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
. tests/lib.sh

echo "== building and installing"
make -j2 >/dev/null
sudo_if_needed make install >/dev/null

demo=${TMPDIR:-/tmp}/hasura_events_demo.$$
port=$(free_port)
recv_log=$(mktemp)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    cluster_stop "$demo" immediate
    wait 2>/dev/null || true
    rm -rf "$demo" "$demo.sidecar.log" "$recv_log"
}
trap cleanup EXIT

echo "== starting a throwaway cluster in $demo"
cluster_start "$demo" "$port"

python3 tests/receiver/receiver.py --port 0 --log "$recv_log" >"$recv_log.addr" &
pids+=($!)
for _ in $(seq 50); do [ -s "$recv_log.addr" ] && break; sleep 0.1; done
webhook="http://$(sed -n 's/^listening on //p' "$recv_log.addr")/ok"
rm -f "$recv_log.addr"
echo "== webhook receiver at $webhook"

bg_as_pg "$demo.sidecar.log" "$PG_BINDIR/hasura-events-sidecar" --socket "$demo/he.sock"
pids+=("$BG_PID")
echo "== sidecar started (log: $demo.sidecar.log)"

sql() { psql_in "$demo" "$port" postgres "$@"; }

sql <<SQL
CREATE EXTENSION hasura_events;
CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric, status text);
\echo '== registering the event trigger (a Hasura metadata request, verbatim)'
SELECT hasura_events.metadata('{
  "type": "pg_create_event_trigger",
  "args": {
    "name": "order_events",
    "table": {"schema": "public", "name": "orders"},
    "webhook": "$webhook",
    "insert": {"columns": "*"},
    "update": {"columns": ["status"]},
    "delete": {"columns": "*"},
    "enable_manual": true,
    "retry_conf": {"num_retries": 3, "interval_sec": 5}
  }
}');
\echo '== changing rows'
INSERT INTO orders VALUES (1, 'ada', 42.50, 'new'), (2, 'grace', 7, 'new');
UPDATE orders SET total = 43 WHERE id = 1;        -- not a listened column: no event
UPDATE orders SET status = 'paid' WHERE id = 1;
DELETE FROM orders WHERE id = 2;
BEGIN; INSERT INTO orders VALUES (3, 'nobody', 0, 'new'); ROLLBACK;   -- rolled back: no event
SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger",
                                "args": {"name": "order_events", "payload": {"id": 1, "note": "manual"}}}') AS invoked;
SQL

echo "== waiting for deliveries"
for _ in $(seq 100); do
    left=$(sql -Atc "SELECT count(*) FROM hdb_catalog.event_log WHERE NOT delivered AND NOT error")
    [ "$left" = "0" ] && break
    sleep 0.1
done

echo "== webhooks received"
python3 - "$recv_log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    b = r["body"]
    e = b["event"]
    print(f'  POST {r["path"]}  op={e["op"]:<6} trigger={b["trigger"]["name"]} table={b["table"]["name"]} '
          f'old={json.dumps(e["data"]["old"])} new={json.dumps(e["data"]["new"])}')
PY

echo "== event states"
sql -c "SELECT payload->>'op' AS op, delivered, error, tries FROM hdb_catalog.event_log ORDER BY created_at, payload->>'op'"
sql -c "SELECT status, response->>'type' AS response FROM hdb_catalog.event_invocation_logs ORDER BY created_at"
echo "== done; cleaning up"
