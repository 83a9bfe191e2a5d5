#!/usr/bin/env python3
"""bench/breaker.py: what a backlog behind a down webhook writes to disk.

A backlog of events (default 200 000) of one trigger whose webhook refuses connections (a free
port nobody listens on), retry_conf num_retries 3, interval_sec 5, the sidecar at --log-level
warn. From the moment the sidecar starts, for --seconds (default 60), it measures what was
written: the growth of hdb_catalog.event_log and hdb_catalog.event_invocation_logs (relation
sizes, indexes and TOAST included), the WAL (pg_current_wal_lsn() difference), the server log and
the sidecar log; and prints each in MB and MB per minute, with the attempts made (invocation log
rows) and the events tried. Uses the installed module and sidecar (make install); runs as root
(server as postgres) or as the server's owner. Not part of the tests: nothing here asserts.

  python3 bench/breaker.py [--events N] [--seconds S] [--sidecar-arg ARG ...]
"""
import argparse
import json
import os
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Cluster, Sidecar, free_port  # noqa: E402


def sizes(cluster, sidecar_log):
    row = cluster.psql("SELECT pg_total_relation_size('hdb_catalog.event_log'), "
                       "pg_total_relation_size('hdb_catalog.event_invocation_logs'), "
                       "pg_current_wal_lsn() - '0/0'::pg_lsn, "
                       "(SELECT count(*) FROM hdb_catalog.event_invocation_logs), "
                       "(SELECT count(*) FROM hdb_catalog.event_log WHERE tries > 0)")[0]
    return {
        "event_log": int(row[0]),
        "invocation_logs": int(row[1]),
        "wal": int(float(row[2])),
        "server_log": os.path.getsize(cluster.log),
        "sidecar_log": os.path.getsize(sidecar_log) if sidecar_log else 0,
        "attempts": int(row[3]),
        "tried_events": int(row[4]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--sidecar-arg", action="append", default=[])
    args = ap.parse_args()

    cluster = Cluster(perturb=False)
    sidecar = None
    try:
        cluster.psql("CREATE EXTENSION hasura_events; CREATE TABLE t (id int PRIMARY KEY, name text);")
        port = free_port()
        req = json.dumps({"type": "pg_create_event_trigger", "args": {
            "name": "down", "table": {"schema": "public", "name": "t"},
            "webhook": f"http://127.0.0.1:{port}/ok", "insert": {"columns": "*"},
            "retry_conf": {"num_retries": 3, "interval_sec": 5, "timeout_sec": 10}}})
        cluster.psql(f"SELECT hasura_events.metadata($${req}$$::jsonb)")
        cluster.psql(f"INSERT INTO t SELECT g, 'n' FROM generate_series(1, {args.events}) g; CHECKPOINT")
        before = sizes(cluster, None)
        t0 = time.time()
        sidecar = Sidecar(cluster, args=["--log-level", "warn", "--metrics-address", "off"] + args.sidecar_arg)
        time.sleep(args.seconds)
        after = sizes(cluster, sidecar.logpath)
        minutes = (time.time() - t0) / 60
        print(f"backlog {args.events} events, webhook refusing connections, {minutes * 60:.0f} s measured")
        total = 0
        for k in ("event_log", "invocation_logs", "wal", "server_log", "sidecar_log"):
            d = after[k] - before[k]
            total += d
            print(f"  {k:16s} {d / 1e6:10.2f} MB  {d / 1e6 / minutes:10.2f} MB/min")
        print(f"  {'total':16s} {total / 1e6:10.2f} MB  {total / 1e6 / minutes:10.2f} MB/min")
        print(f"  attempts (invocation log rows) {after['attempts'] - before['attempts']}, "
              f"events tried {after['tried_events'] - before['tried_events']}")
    finally:
        if sidecar:
            sidecar.stop()
        cluster.destroy()


if __name__ == "__main__":
    main()
