#!/usr/bin/env bash
# bench/run.sh [quick|full]: the hasura_events benchmark suite (docs/benchmarks.md).
#
# Builds the module, the sidecar and the bench tools, starts its own throwaway cluster (as the
# `postgres` OS user when run as root), the sidecar and a fast loopback receiver (bench/receiver,
# whose capacity is measured and printed first), runs every stage, prints one table and writes
# it to bench/results/latest.md (raw figures: bench/results/raw.txt).
#
# quick: smaller sizes and shorter runs, under 3 minutes. full: the sizes of issue 5, under 20.
# Environment: BENCH_KEEP=1 keeps the cluster directory; TMPDIR chooses where it goes.
# Not part of `make test`; nothing here asserts a timing (a missed target is reported, exit 0).
set -euo pipefail

MODE=${1:-quick}
case "$MODE" in quick | full) ;; *) echo "usage: bench/run.sh [quick|full]" >&2; exit 2 ;; esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$ROOT/bench
cd "$ROOT"
. tests/lib.sh

SUITE_T0=$(date +%s)
log() { printf '[bench %4ds] %s\n' $(($(date +%s) - SUITE_T0)) "$*"; }

# ---------------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------------
if [ "$MODE" = full ]; then
    PGB_SECONDS=15; PGB_ROUNDS=2; BULK_ROWS=100000; BULK_ROUNDS=9
    DRAIN_N=100000; DRAIN_REPS=3; STEADY_SECONDS=20; LAT_SECONDS=15
    SCALE_BACKLOG=10000; SCALE_SMALL=10000; SCALE_BIG=1000000; SCALE_REPS=5
    CYCLES=5; CYCLE_N=50000; DOWN_N=100000
else
    PGB_SECONDS=4; PGB_ROUNDS=1; BULK_ROWS=100000; BULK_ROUNDS=2
    DRAIN_N=20000; DRAIN_REPS=1; STEADY_SECONDS=5; LAT_SECONDS=4
    SCALE_BACKLOG=10000; SCALE_SMALL=10000; SCALE_BIG=100000; SCALE_REPS=1
    CYCLES=3; CYCLE_N=10000; DOWN_N=20000
fi

# ---------------------------------------------------------------------------------------------
# dependencies and build
# ---------------------------------------------------------------------------------------------
missing=()
command -v g++ >/dev/null || missing+=(g++)
dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
[ -x "$PG_BINDIR/pgbench" ] || command -v pgbench >/dev/null || missing+=(postgresql-15)
command -v python3 >/dev/null || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! can_sudo; then
        echo "bench: need root or sudo to install: ${missing[*]}" >&2; exit 1
    fi
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PGBENCH=$PG_BINDIR/pgbench; [ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench)

log "building (make, bench tools)"
make -s -j"$(nproc)" -C "$ROOT" >/dev/null
make -s -j"$(nproc)" -C "$BENCH" >/dev/null
USE_INSTALLED_SIDECAR=0
if ! module_is_installed "$ROOT"; then
    log "installing the module (make install)"
    if ! can_sudo; then
        [ -f "$PG_PKGLIBDIR/hasura_events.so" ] || { echo "bench: the module is not installed and there is no sudo: run 'make install' as root" >&2; exit 1; }
        log "WARNING: no usable sudo: benchmarking the installed module and sidecar, which differ from this build ('make install' as root to change it)"
        USE_INSTALLED_SIDECAR=1 # a sidecar of this build may not speak the installed worker's protocol
    else
        sudo_if_needed make -s -C "$ROOT" install >/dev/null
    fi
fi
SIDECAR=$ROOT/sidecar/hasura-events-sidecar
if [ "${USE_INSTALLED_SIDECAR:-0}" = 1 ] || { [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$SIDECAR"; }; then
    SIDECAR=$PG_BINDIR/hasura-events-sidecar # the build tree is not reachable for postgres
fi
RECEIVER=$BENCH/build/receiver
DRIVER=$BENCH/build/driver
LOADGEN=$BENCH/build/loadgen

# ---------------------------------------------------------------------------------------------
# processes: cluster, receiver, sidecar
# ---------------------------------------------------------------------------------------------
DIR=${TMPDIR:-/tmp}/hasura_events_bench.$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hasura_events_bench_work.XXXXXX")
RESULTS=$BENCH/results
mkdir -p "$RESULTS"
RAW=$RESULTS/raw.txt
: >"$RAW"
PORT=$(free_port)
RECV_PID=""
SIDECAR_PID=""
WPID=""
WALWRITER_PID=""

put() { echo "$1=$2" >>"$RAW"; }

cleanup() {
    set +e
    [ -n "$SIDECAR_PID" ] && kill "$SIDECAR_PID" 2>/dev/null && wait "$SIDECAR_PID" 2>/dev/null
    [ -n "$RECV_PID" ] && kill "$RECV_PID" 2>/dev/null && wait "$RECV_PID" 2>/dev/null
    cluster_stop "$DIR" immediate
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: kept $DIR and $WORK"
    else
        rm -rf "$DIR" "$WORK"
    fi
}
trap cleanup EXIT

log "mode $MODE; starting a cluster in $DIR (shared_buffers 1GB, fsync on, synchronous_commit on)"
cluster_start "$DIR" "$PORT" \
    "shared_buffers = 1GB" \
    "fsync = on" \
    "synchronous_commit = on" \
    "max_wal_size = 8GB" \
    "checkpoint_timeout = 30min" \
    "log_min_messages = warning" \
    "hasura_events.retry_check_interval = '1s'"
CONNINFO="host=$DIR port=$PORT user=postgres dbname=bench"
export PGHOST=$DIR PGPORT=$PORT PGUSER=postgres PGDATABASE=bench

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d bench "$@"; }
sql() { q -c "$1"; }
psql -X -q -d postgres -c "CREATE DATABASE bench" >/dev/null
sql "CREATE EXTENSION hasura_events" >/dev/null

pause_delivery() {
    sql "ALTER SYSTEM SET hasura_events.paused = on" >/dev/null
    sql "SELECT pg_reload_conf()" >/dev/null
    sleep 0.2
}

start_receiver() {
    "$RECEIVER" --port "${1:-0}" --out "$WORK/recv.dump" >"$WORK/receiver.out" &
    RECV_PID=$!
    for _ in $(seq 100); do grep -q listening "$WORK/receiver.out" 2>/dev/null && break; sleep 0.05; done
    RECV_PORT=$(sed -n 's/.*127.0.0.1://p' "$WORK/receiver.out")
}
stop_receiver() { kill "$RECV_PID"; wait "$RECV_PID" 2>/dev/null || true; RECV_PID=""; }
# recv_dump FILE: the receiver's records since its previous dump.
recv_dump() {
    rm -f "$WORK/recv.dump"
    kill -USR1 "$RECV_PID"
    for _ in $(seq 200); do [ -f "$WORK/recv.dump" ] && break; sleep 0.05; done
    mv "$WORK/recv.dump" "$1"
}

start_sidecar() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups -- \
            "$SIDECAR" --socket "$DIR/he.sock" --log-level warn >>"$WORK/sidecar.log" 2>&1 &
    else
        "$SIDECAR" --socket "$DIR/he.sock" --log-level warn >>"$WORK/sidecar.log" 2>&1 &
    fi
    SIDECAR_PID=$!
    # connected when the dispatcher has a sidecar: give it its 1 s directory rescan at most
    sleep 1.2
}
stop_sidecar() { kill "$SIDECAR_PID"; wait "$SIDECAR_PID" 2>/dev/null || true; SIDECAR_PID=""; }
worker_pid() { sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'hasura_events dispatcher'"; }

pending_sql="SELECT count(*) FROM hdb_catalog.event_log WHERE NOT delivered AND NOT error AND NOT archived"

# create_trigger NAME TABLE [extra JSON members]
create_trigger() {
    local extra=${3:-}
    sql "SELECT hasura_events.metadata(\$\$
        {\"type\": \"pg_create_event_trigger\", \"args\": {\"name\": \"$1\",
         \"table\": {\"schema\": \"public\", \"name\": \"$2\"},
         \"webhook\": \"http://127.0.0.1:$RECV_PORT/hook\" $extra}}\$\$::jsonb)" >/dev/null
}
delete_trigger() { sql "SELECT hasura_events.delete_event_trigger('$1')" >/dev/null; }

# ---------------------------------------------------------------------------------------------
# 0. the receiver and its capacity
# ---------------------------------------------------------------------------------------------
start_receiver
log "receiver on 127.0.0.1:$RECV_PORT; measuring its capacity (loadgen, 64 keep-alive connections, ~900-byte bodies)"
cap=$("$LOADGEN" "$RECV_PORT" 64 3 900 1 | sed -n 's/.*rps \([0-9]*\).*/\1/p')
put receiver_rps "$cap"
recv_dump "$WORK/discard"
log "receiver capacity: $cap requests/s (while sharing the 2 cores with the load client)"

# ---------------------------------------------------------------------------------------------
# 1. capture overhead
# ---------------------------------------------------------------------------------------------
pause_delivery
q >/dev/null <<'SQL'
CREATE TABLE bench_cap (
    id      bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name    text NOT NULL,
    note    text,
    amount  numeric(12, 2),
    flag    boolean,
    created date
);

-- The PL/pgSQL baseline: what Hasura's per-row trigger does (row_to_json payload built with
-- json_build_object, session variables from hasura.user, one INSERT into the event log per row;
-- an UPDATE records an event only when a listened column changed).
CREATE FUNCTION bench_hasura_style_insert_event(schema_name text, table_name text, trigger_name text,
                                                op text, row_data json) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    new_id text := gen_random_uuid()::text;
    session_variables json := NULLIF(current_setting('hasura.user', true), '')::json;
    trace_context json := NULLIF(current_setting('hasura.tracecontext', true), '')::json;
BEGIN
    INSERT INTO hdb_catalog.event_log (id, schema_name, table_name, trigger_name, payload)
    VALUES (new_id, schema_name, table_name, trigger_name,
            json_build_object('op', op, 'data', row_data, 'session_variables', session_variables,
                              'trace_context', trace_context)::jsonb);
    RETURN new_id;
END
$$;

CREATE FUNCTION bench_hasura_style_trigger() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    _old record;
    _new record;
    _data json;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        _old := row(OLD.name);
        _new := row(NEW.name);
    ELSE
        _old := row((SELECT 1));
        _new := row((SELECT 1));
    END IF;
    IF TG_OP = 'INSERT' THEN
        _data := json_build_object('old', NULL, 'new', row_to_json(NEW));
    ELSIF TG_OP = 'UPDATE' THEN
        _data := json_build_object('old', row_to_json(OLD), 'new', row_to_json(NEW));
    ELSE
        _data := json_build_object('old', row_to_json(OLD), 'new', NULL);
    END IF;
    IF TG_OP <> 'UPDATE' OR _old IS DISTINCT FROM _new THEN
        PERFORM bench_hasura_style_insert_event(TG_TABLE_SCHEMA::text, TG_TABLE_NAME::text, 'plpgsql_cap', TG_OP, _data);
    END IF;
    RETURN NULL;
END
$$;
SQL

# cap_variant none|he|plpgsql: the trigger set-up of bench_cap. A disabled trigger is not
# enough: a statement trigger with transition tables makes Postgres capture them even when
# disabled, so the other variants drop it.
cap_variant() {
    q -c "SET client_min_messages = warning" -c "DROP TRIGGER IF EXISTS plpgsql_cap ON bench_cap" >/dev/null
    if [ -n "$(sql "SELECT 1 FROM hasura_events.event_triggers WHERE name = 'he_cap'")" ]; then delete_trigger he_cap; fi
    case $1 in
    he) create_trigger he_cap bench_cap ', "insert": {"columns": "*"}, "update": {"columns": ["name"]}' ;;
    plpgsql) sql "CREATE TRIGGER plpgsql_cap AFTER INSERT OR UPDATE ON bench_cap
                  FOR EACH ROW EXECUTE FUNCTION bench_hasura_style_trigger()" >/dev/null ;;
    esac
}
cap_reset() {
    sql "TRUNCATE bench_cap, hdb_catalog.event_log, hdb_catalog.event_invocation_logs" >/dev/null
    sql "CHECKPOINT" >/dev/null
}
# timed_ms SQL: server round trip of one statement, from psql's \timing.
timed_ms() {
    q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}

cat >"$WORK/insert1.sql" <<'SQL'
INSERT INTO bench_cap (name, note, amount, flag, created) VALUES ('alice', 'a short note about this row', 1234.50, true, current_date);
SQL
pgb_tps() { # pgb_tps SCRIPT CLIENTS SECONDS [PGOPTIONS]
    PGOPTIONS=${4:-} "$PGBENCH" -n -c "$2" -j 2 -T "$3" -f "$1" bench 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p'
}
median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:] if x]; print(f"{statistics.median(v):.3f}" if v else "")' "$@"; }

log "capture: pgbench single-row INSERT, 4 clients, ${PGB_SECONDS}s x $PGB_ROUNDS round(s) per variant, synchronous_commit on and off"
declare -A TPS
for round in $(seq "$PGB_ROUNDS"); do
    for v in none he plpgsql; do
        cap_variant $v
        for sc in on off; do
            cap_reset
            t=$(pgb_tps "$WORK/insert1.sql" 4 "$PGB_SECONDS" "-c synchronous_commit=$sc")
            TPS[$v.$sc]="${TPS[$v.$sc]:-} $t"
        done
    done
done
for v in none he plpgsql; do for sc in on off; do
    m=$(median ${TPS[$v.$sc]}); put "pgb_${v}_sc${sc}_tps" "$m"
    log "  single-row INSERT, $v, synchronous_commit=$sc: $m tps (runs:${TPS[$v.$sc]})"
done; done

log "capture: $BULK_ROWS-row INSERT ... SELECT and UPDATE of an unlistened column, $BULK_ROUNDS rounds per variant"
bulk_insert="INSERT INTO bench_cap (name, note, amount, flag, created)
             SELECT 'name ' || g, 'a short note about this row', g * 1.5, g % 2 = 0, current_date
             FROM generate_series(1, $BULK_ROWS) g"
bulk_update="UPDATE bench_cap SET note = 'changed note'"
declare -A BULK UPD
# the order rotates every round: each variant runs first, second and last in turn, and what one
# leaves behind (dirty buffers, WAL to recycle) falls on each of the others
orders=("none he plpgsql" "he plpgsql none" "plpgsql none he")
for round in $(seq "$BULK_ROUNDS"); do
    for v in ${orders[$(((round - 1) % 3))]}; do
        cap_variant $v
        cap_reset
        BULK[$v]="${BULK[$v]:-} $(timed_ms "$bulk_insert")"
        sql "VACUUM bench_cap" >/dev/null
        sql "CHECKPOINT" >/dev/null
        UPD[$v]="${UPD[$v]:-} $(timed_ms "$bulk_update")"
    done
done
for v in none he plpgsql; do
    put "bulk_${v}_ms" "$(median ${BULK[$v]})"
    put "update_${v}_ms" "$(median ${UPD[$v]})"
    log "  $v: bulk INSERT ms:${BULK[$v]}; UPDATE (listened column unchanged) ms:${UPD[$v]}"
done
# paired_ratio "X1 X2 ..." "Y1 Y2 ...": the median of Xi/Yi. The variants of a round run one after
# the other, so a ratio within a round is not moved by the machine's slower and faster minutes.
paired_ratio() { python3 -c 'import sys,statistics; x,y=(list(map(float,a.split())) for a in sys.argv[1:3]); print(f"{statistics.median(a/b for a,b in zip(x,y)):.3f}")' "$1" "$2"; }
put bulk_ratio_he_none "$(paired_ratio "${BULK[he]}" "${BULK[none]}")"
put bulk_ratio_plpgsql_he "$(paired_ratio "${BULK[plpgsql]}" "${BULK[he]}")"
put update_ratio_he_none "$(paired_ratio "${UPD[he]}" "${UPD[none]}")"
put update_events_he "$(sql "SELECT count(*) FROM hdb_catalog.event_log WHERE payload->>'op' = 'UPDATE'")"
cap_variant none
cap_reset

# ---------------------------------------------------------------------------------------------
# 2. delivery: backlog drain, then steady state
# ---------------------------------------------------------------------------------------------
sql "CREATE TABLE bench_dlv (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name text, note text, amount numeric(12, 2), created timestamptz DEFAULT now())" >/dev/null
create_trigger he_dlv bench_dlv ', "insert": {"columns": "*"}'
fill_dlv() { # fill_dlv N: N events in statements of at most 10k rows
    local left=$1 n
    while [ "$left" -gt 0 ]; do
        n=$((left > 10000 ? 10000 : left))
        sql "INSERT INTO bench_dlv (name, note, amount)
             SELECT 'name ' || g, 'a short note about this row', g * 1.5 FROM generate_series(1, $n) g" >/dev/null
        left=$((left - n))
    done
}
# cpu_ns PID...: each process's CPU time so far in ns (schedstat; 0 for one that is gone).
cpu_ns() { local p; for p in "$@"; do awk '{print $1}' "/proc/$p/schedstat" 2>/dev/null || echo 0; done | xargs; }
# machine_ticks: busy and total ticks of all CPUs so far (/proc/stat; busy is all but idle and iowait).
machine_ticks() { awk '/^cpu /{t=0; for (i=2;i<=NF;i++) t+=$i; print t-$5-$6, t}' /proc/stat; }
# drain PREFIX N: unpause, time until nothing is pending, with RSS of the sidecar and the worker,
# and the CPU each process of the pipeline used per event (the drain is CPU-bound on 2 cores).
drain() {
    local out cpu0 cpu1 m0 m1 cpu
    cpu0=$(cpu_ns "$WPID" "$SIDECAR_PID" "$RECV_PID" "$WALWRITER_PID")
    m0=$(machine_ticks)
    out=$("$DRIVER" drain "$CONNINFO" 300 25 "$SIDECAR_PID" "$WPID")
    cpu1=$(cpu_ns "$WPID" "$SIDECAR_PID" "$RECV_PID" "$WALWRITER_PID")
    m1=$(machine_ticks)
    if echo "$out" | grep -q timeout; then
        echo "bench: events still pending after 300 s; sidecar log tail:" >&2
        tail -5 "$WORK/sidecar.log" >&2
        exit 1
    fi
    local s
    s=$(echo "$out" | sed -n 's/^seconds //p')
    put "${1}_seconds" "$s"
    put "${1}_rate" "$(python3 -c "print(round($2 / $s))")"
    put "${1}_sidecar_hwm_kb" "$(echo "$out" | awk -v p="$SIDECAR_PID" '$1=="pid" && $2==p {print $4}')"
    put "${1}_worker_anon_kb" "$(echo "$out" | awk -v p="$WPID" '$1=="pid" && $2==p {print $8}')"
    put "${1}_worker_rss_kb" "$(echo "$out" | awk -v p="$WPID" '$1=="pid" && $2==p {print $6}')"
    # us of CPU per event: dispatcher, sidecar, receiver, walwriter; the cores' busy share (%)
    cpu=$(python3 -c "
import sys
a, b, n = [int(x) for x in sys.argv[1].split()], [int(x) for x in sys.argv[2].split()], int(sys.argv[3])
m0, m1 = [int(x) for x in sys.argv[4].split()], [int(x) for x in sys.argv[5].split()]
us = ['%.1f' % ((y - x) / 1000 / n) for x, y in zip(a, b)]
busy = 100.0 * (m1[0] - m0[0]) / max(m1[1] - m0[1], 1)
print(' '.join(us), '%.0f' % busy)" "$cpu0" "$cpu1" "$2" "$m0" "$m1")
    put "${1}_cpu_us" "$(echo "$cpu" | cut -d' ' -f1-4)"
    put "${1}_busy_pct" "$(echo "$cpu" | cut -d' ' -f5)"
    echo "$s"
}
get() { sed -n "s/^$1=//p" "$RAW" | tail -1; }

put drain_n "$DRAIN_N"
put drain_reps "$DRAIN_REPS"
log "delivery: $DRAIN_REPS drain(s) of a $DRAIN_N-event backlog (sidecar pool 100, each webhook's limit adaptive from 32; batch_size 100, max_inflight 1000)"
# One drain on a shared machine moves a lot from one run to the next: the figure is the
# median of DRAIN_REPS drains, each of a fresh backlog behind the events the drains before
# delivered (as in a system that has run a while: the scale stage shows the log's size does not
# matter). One sidecar for all of them: its peak RSS covers every drain.
received=0
delivered0=$(sql "SELECT count(*) FROM hdb_catalog.event_log WHERE delivered")
logged0=$(sql "SELECT count(*) FROM hdb_catalog.event_invocation_logs")
for rep in $(seq "$DRAIN_REPS"); do
    if [ "$rep" -gt 1 ]; then pause_delivery; fi
    fill_dlv "$DRAIN_N"
    sql "VACUUM ANALYZE hdb_catalog.event_log" >/dev/null
    sql "CHECKPOINT" >/dev/null
    if [ "$rep" -eq 1 ]; then
        start_sidecar
        WPID=$(worker_pid)
        WALWRITER_PID=$(sql "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
    fi
    recv_dump "$WORK/discard"
    s=$(drain "drain$rep" "$DRAIN_N")
    recv_dump "$WORK/drain.dump"
    received=$((received + $(wc -l <"$WORK/drain.dump")))
    read -r c_disp c_side c_recv c_walw <<<"$(get "drain${rep}_cpu_us")"
    log "  drain $rep: $DRAIN_N events in ${s}s = $(get "drain${rep}_rate") events/s; CPU an event: dispatcher $c_disp us, sidecar $c_side, receiver $c_recv, walwriter $c_walw; cores $(get "drain${rep}_busy_pct") % busy"
done
per_drain() { local r; for r in $(seq "$DRAIN_REPS"); do get "drain${r}_$1"; done; } # a figure of each drain
rates=$(per_drain rate | xargs)
put drain_rates "$rates"
put drain_rate "$(median $rates | cut -d. -f1)"
for f in sidecar_hwm_kb worker_anon_kb worker_rss_kb; do # the peaks over all drains
    put "drain_$f" "$(per_drain "$f" | sort -n | tail -1)"
done
put drain_cpu_us "$(per_drain cpu_us | python3 -c "
import statistics, sys
rows = [[float(x) for x in line.split()] for line in sys.stdin if line.strip()]
print(' '.join('%.1f' % statistics.median(col) for col in zip(*rows)))")" # medians over the drains
put drain_busy_pct "$(median $(per_drain busy_pct | xargs) | cut -d. -f1)"
put drain_received "$received"
put drain_delivered "$(($(sql "SELECT count(*) FROM hdb_catalog.event_log WHERE delivered") - delivered0))"
put drain_invocations "$(($(sql "SELECT count(*) FROM hdb_catalog.event_invocation_logs") - logged0))"
log "  median $(get drain_rate) events/s (drains: $rates); delivered $(get drain_delivered), invocation logs $(get drain_invocations), receiver saw $(get drain_received) of $((DRAIN_N * DRAIN_REPS))"

log "delivery: steady state, pgbench inserting 10-row statements (2 clients) for ${STEADY_SECONDS}s while delivering"
cat >"$WORK/steady.sql" <<'SQL'
INSERT INTO bench_dlv (name, note, amount) SELECT 'name ' || g, 'a short note about this row', g * 1.5 FROM generate_series(1, 10) g;
SQL
inv0=$(sql "SELECT count(*) FROM hdb_catalog.event_invocation_logs")
t0=$(date +%s.%N)
tps=$(pgb_tps "$WORK/steady.sql" 2 "$STEADY_SECONDS")
t1=$(date +%s.%N)
inv1=$(sql "SELECT count(*) FROM hdb_catalog.event_invocation_logs")
backlog=$(sql "$pending_sql")
put steady_insert_rate "$(python3 -c "print(round($tps * 10))")"
put steady_delivery_rate "$(python3 -c "print(round(($inv1 - $inv0) / ($t1 - $t0)))")"
put steady_backlog_end "$backlog"
"$DRIVER" drain "$CONNINFO" 600 50 >/dev/null
log "  inserted $(get steady_insert_rate) events/s, delivered $(get steady_delivery_rate) events/s, backlog at the end $backlog"

# ---------------------------------------------------------------------------------------------
# 3. latency: commit-to-receipt at fixed offered rates
# ---------------------------------------------------------------------------------------------
sql "CREATE TABLE bench_lat (id bigint PRIMARY KEY, note text)" >/dev/null
create_trigger he_lat bench_lat ', "insert": {"columns": "*"}'
first=1
for rate in 500 5000; do
    conns=$((rate >= 5000 ? 16 : 4))
    log "latency: $rate/s offered for ${LAT_SECONDS}s ($conns connections, one autocommit INSERT per event)"
    recv_dump "$WORK/discard"
    drv=$("$DRIVER" paced "$CONNINFO" "$rate" "$LAT_SECONDS" "$conns" "$first" "$WORK/commits_$rate.txt")
    "$DRIVER" drain "$CONNINFO" 120 50 >/dev/null
    recv_dump "$WORK/lat_$rate.dump"
    put "lat${rate}_achieved" "$(echo "$drv" | awk '{print $4}')"
    res=$(python3 "$BENCH/analyze.py" latency "$WORK/commits_$rate.txt" "$WORK/lat_$rate.dump")
    for kv in $res; do put "lat${rate}_${kv%%=*}" "${kv#*=}"; done
    log "  $drv; $res"
    first=$((first + 10000000))
done

# ---------------------------------------------------------------------------------------------
# 4. scale: drain rate with a small log against a big one; bloat over fill/drain cycles
# ---------------------------------------------------------------------------------------------
reset_logs() {
    sql "TRUNCATE hdb_catalog.event_log, hdb_catalog.event_invocation_logs, bench_dlv" >/dev/null
    sql "VACUUM ANALYZE hdb_catalog.event_log" >/dev/null
}
# prefill N: N delivered events, with their invocation logs, as a long-running system has them.
prefill() {
    q >/dev/null <<SQL
INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload, delivered, tries, created_at)
SELECT 'public', 'bench_dlv', 'he_dlv',
       jsonb_build_object('op', 'INSERT', 'data', jsonb_build_object('old', NULL, 'new',
           jsonb_build_object('id', -g, 'name', 'name ' || g, 'note', 'a short note about this row', 'amount', g * 1.5,
                              'created', now())), 'session_variables', NULL, 'trace_context', NULL),
       true, 1, now() - interval '2 days' + g * interval '100 ms'
FROM generate_series(1, $1) g;
INSERT INTO hdb_catalog.event_invocation_logs (trigger_name, event_id, status, request, response, created_at)
SELECT 'he_dlv', e.id, 200,
       json_build_object('payload', e.payload, 'headers', json_build_array(), 'version', '2'),
       '{"type": "webhook_response", "data": {"body": "{\"status\":\"ok\"}", "headers": [], "status": 200}, "version": "2"}',
       e.created_at
FROM hdb_catalog.event_log e;
VACUUM ANALYZE hdb_catalog.event_log;
VACUUM ANALYZE hdb_catalog.event_invocation_logs;
CHECKPOINT;
SQL
}
scale_run() { # scale_run NAME LOG_TOTAL BACKLOG: the median rate of SCALE_REPS drains of BACKLOG
    local s rates="" r
    pause_delivery
    reset_logs
    [ "$2" -gt "$3" ] && prefill $(($2 - $3))
    for r in $(seq "$SCALE_REPS"); do
        pause_delivery
        # the small log is only the backlog, every time; the big one grows by it (1-2 %)
        [ "$2" -eq "$3" ] && [ "$r" -gt 1 ] && reset_logs
        fill_dlv "$3"
        sql "CHECKPOINT" >/dev/null
        s=$(drain "$1" "$3")
        rates="$rates $(get "${1}_rate")"
        put "${1}_log_rows" "$(sql "SELECT count(*) FROM hdb_catalog.event_log")"
        log "  log of $(get "${1}_log_rows") events, backlog $3: drained in ${s}s = $(get "${1}_rate") events/s"
    done
    put "${1}_rate" "$(median $rates | cut -d. -f1)"
}
log "scale: drain $SCALE_BACKLOG events with a $SCALE_SMALL-event log (backlog $SCALE_SMALL) and a $SCALE_BIG-event log, median of $SCALE_REPS"
scale_run scale_small "$SCALE_SMALL" "$SCALE_SMALL"
scale_run scale_big "$SCALE_BIG" "$SCALE_BACKLOG"
put scale_small_n "$SCALE_SMALL"
put scale_big_n "$SCALE_BIG"

log "scale: $CYCLES fill/drain cycles of $CYCLE_N events (autovacuum on, default settings)"
pause_delivery
reset_logs
for c in $(seq "$CYCLES"); do
    pause_delivery
    fill_dlv "$CYCLE_N"
    "$DRIVER" drain "$CONNINFO" 600 50 >/dev/null
    sleep 1.2 # the worker's table statistics reach pg_stat within a second
    row=$(sql "SELECT pg_total_relation_size('hdb_catalog.event_log'), pg_relation_size('hdb_catalog.event_log'),
                      n_live_tup, n_dead_tup, autovacuum_count
               FROM pg_stat_user_tables WHERE relid = 'hdb_catalog.event_log'::regclass")
    IFS='|' read -r total heap live dead av <<<"$row"
    put "cycle${c}" "$total $heap $live $dead $av"
    log "  cycle $c: event_log total $((total / 1024 / 1024)) MB (heap $((heap / 1024 / 1024)) MB), live $live, dead $dead, autovacuums $av"
done
put cycles "$CYCLES"
put cycle_n "$CYCLE_N"

# ---------------------------------------------------------------------------------------------
# 5. memory with the receiver down while events pile up
# ---------------------------------------------------------------------------------------------
log "memory: receiver down while $DOWN_N events pile up (retry_conf num_retries 5, interval 3600 s)"
pause_delivery
reset_logs
delete_trigger he_dlv
create_trigger he_dlv bench_dlv ', "insert": {"columns": "*"}, "retry_conf": {"num_retries": 5, "interval_sec": 3600, "timeout_sec": 5}'
stop_sidecar
start_sidecar
WPID=$(worker_pid)
stop_receiver
sql "ALTER SYSTEM SET hasura_events.paused = off" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
"$DRIVER" watch 3600 50 "$SIDECAR_PID" "$WPID" >"$WORK/watch.out" &
WATCH_PID=$!
t0=$(date +%s.%N)
fill_dlv "$DOWN_N"
for _ in $(seq 1200); do
    [ "$(sql "SELECT count(*) FROM hdb_catalog.event_log WHERE tries = 0")" = 0 ] && break
    sleep 0.25
done
t1=$(date +%s.%N)
kill -INT "$WATCH_PID" 2>/dev/null || true
wait "$WATCH_PID" 2>/dev/null || true
put down_seconds "$(python3 -c "print(round($t1 - $t0, 1))")"
put down_attempted "$(sql "SELECT count(*) FROM hdb_catalog.event_log WHERE tries > 0")"
put down_pending "$(sql "$pending_sql")"
put down_sidecar_hwm_kb "$(awk -v p="$SIDECAR_PID" '$1=="pid" && $2==p {print $4}' "$WORK/watch.out")"
put down_worker_anon_kb "$(awk -v p="$WPID" '$1=="pid" && $2==p {print $8}' "$WORK/watch.out")"
log "  $(get down_attempted) attempted (all failed, retry scheduled), $(get down_pending) pending; sidecar peak RSS $(get down_sidecar_hwm_kb) kB, worker peak private $(get down_worker_anon_kb) kB"

# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
put mode "$MODE"
put elapsed_s $(($(date +%s) - SUITE_T0))
put fsync on
put synchronous_commit on
put shared_buffers 1GB
put date "$(date -u +%Y-%m-%dT%H:%MZ)"
put host "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r)"
if git -C "$ROOT" rev-parse --short HEAD >/dev/null 2>&1; then
    put commit "$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- extension sidecar protocol || echo '+local changes')"
else
    put commit "unknown (no git)"
fi
python3 "$BENCH/analyze.py" report "$RAW" "$RESULTS/latest.md"
log "done in $(($(date +%s) - SUITE_T0)) s; table in bench/results/latest.md"
