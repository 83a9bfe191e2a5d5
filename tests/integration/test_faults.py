#!/usr/bin/env python3
"""tests/integration/test_faults.py

The fault matrix: a real cluster, the real sidecar and the local receiver, and one fault in the
middle of a drain of a few hundred events: kill -9 of the sidecar, kill -9 of the dispatcher, an
immediate Postgres stop, the receiver down then back, 50 % random 500s, responses hung past the
trigger's timeout, SIGTERM of the sidecar with a backlog bigger than it holds.

Every case inserts rows with known ids and accounts for each of them by id, from the receiver's
log of the responses it sent (receiver.py --answers) and from event_log:
  - nothing lost: every row's event is delivered in event_log, and a 2xx was answered for it;
  - nothing delivered without a 2xx: each delivered event has a 2xx answer and one 2xx
    invocation log;
  - duplicates (2xx answers beyond the first for an event) at most the attempts that were in
    the hands of the sidecar at the fault (its pool size + prefetch, which max_inflight matches);
    none where no process died;
  - no try without an attempt: an event's tries and invocation logs are at most the requests the
    receiver saw for it (exactly those when every attempt reached it);
  - delivery resumes after the fault: everything is delivered in the end.
The last line is "faults: N passed, N failed". Run one case: test_faults.py NAME [NAME...].
"""
import collections
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Receiver, Sidecar, wait_for, run_suite, print_log_tails  # noqa: E402

TESTS = []

POOL = 16
PREFETCH = 16
HOLD = POOL + PREFETCH  # what one sidecar connection can hold: credits granted after Welcome
SIDECAR_ARGS = ("--pool-size", str(POOL), "--prefetch", str(PREFETCH), "--min-webhook-concurrency", str(POOL),
                "--metrics-address", "off", "--log-level", "info")
SEED = 19  # of the receiver's random modes


def test(fn):
    TESTS.append(fn)
    return fn


class Env:
    """A cluster (claims capped at what the sidecar holds) + an answering receiver + a sidecar."""

    def __init__(self, sidecar_args=SIDECAR_ARGS, max_inflight=HOLD):
        self.sidecar_args = sidecar_args
        self.cluster = Cluster([f"hasura_events.max_inflight = {max_inflight}"])
        self.receiver = Receiver(answers=True)
        self.sidecar = Sidecar(self.cluster, args=sidecar_args)
        self.cluster.psql("CREATE EXTENSION hasura_events; CREATE TABLE t (id int PRIMARY KEY, name text);")

    def url(self, path):
        return self.receiver.base + path

    def new_sidecar(self):
        self.sidecar = Sidecar(self.cluster, args=self.sidecar_args)

    def trigger(self, name, path, **retry_conf):
        args = {"name": name, "table": {"schema": "public", "name": "t"}, "webhook": self.url(path),
                "insert": {"columns": "*"}, "retry_conf": retry_conf}
        req = json.dumps({"type": "pg_create_event_trigger", "args": args})
        self.cluster.psql(f"SELECT hasura_events.metadata($${req}$$::jsonb)")

    def insert(self, n):
        self.cluster.psql(f"INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, {n}) g")
        return set(range(1, n + 1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print_log_tails(self.cluster, self.sidecar)
        if self.sidecar:
            self.sidecar.stop()
        self.receiver.stop()
        self.cluster.destroy()


def ok_rows(env):
    """The row ids a 2xx was answered for so far."""
    return {a["row"] for a in env.receiver.answers() if 200 <= a["status"] < 300}


def drain_started(env, n_rows, at_least):
    """Waits until at_least rows were answered 2xx; checks the drain is not over (the fault must
    fall in its middle). Returns how many were answered."""
    done = wait_for(lambda: len(ok_rows(env)) >= at_least and len(ok_rows(env)), timeout=60,
                    what=f"{at_least} rows answered")
    assert done < n_rows, f"the drain was over ({done} of {n_rows}) before the fault"
    return done


def delivered_count(cluster, trigger):
    """Delivered events, or None while the server does not answer (it restarts after a crash)."""
    rows = cluster.psql(f"SELECT count(*) FROM hdb_catalog.event_log WHERE trigger_name = '{trigger}' AND delivered",
                        check=False)
    return int(rows[0][0]) if rows else None


def account(env, trigger, rows, max_duplicates, every_attempt_reached=True, timeout=120):
    """The checks of the module docstring, once every event is delivered."""
    c = env.cluster
    wait_for(lambda: delivered_count(c, trigger) == len(rows), timeout=timeout,
             what=f"all {len(rows)} events of {trigger} delivered")
    events = c.psql("SELECT e.id, e.payload->'data'->'new'->>'id', e.delivered, e.error, e.tries, "
                    "count(i.id), count(i.id) FILTER (WHERE i.status BETWEEN 200 AND 299) "
                    "FROM hdb_catalog.event_log e LEFT JOIN hdb_catalog.event_invocation_logs i ON i.event_id = e.id "
                    f"WHERE e.trigger_name = '{trigger}' GROUP BY e.id")
    by_row = collections.Counter(int(e[1]) for e in events)
    assert set(by_row) == rows and all(n == 1 for n in by_row.values()), \
        f"not one event per row: missing {sorted(rows - set(by_row))[:10]}, " \
        f"doubled {[r for r, n in by_row.items() if n > 1][:10]}"
    answers = env.receiver.answers()
    ok = collections.Counter(a["id"] for a in answers if 200 <= a["status"] < 300)
    requests = collections.Counter(r["body"]["id"] for r in env.receiver.requests() if isinstance(r["body"], dict))
    lost = rows - {a["row"] for a in answers if 200 <= a["status"] < 300}
    assert not lost, f"{len(lost)} rows never answered 2xx: {sorted(lost)[:10]}"
    for eid, row, delivered, error, tries, logs, ok_logs in events:
        assert delivered == "t" and error == "f", (row, delivered, error)
        assert ok[eid] >= 1, f"row {row}: event {eid} marked delivered without a 2xx answered for it"
        assert ok_logs == "1", f"row {row}: {ok_logs} 2xx invocation logs"
        assert int(tries) == int(logs), f"row {row}: tries {tries}, invocation logs {logs}"
        if every_attempt_reached:
            assert int(tries) <= requests[eid], f"row {row}: {tries} tries, {requests[eid]} requests received"
    duplicates = sum(n - 1 for n in ok.values())
    assert duplicates <= max_duplicates, f"{duplicates} duplicate deliveries, at most {max_duplicates} expected"
    got = {"events": len(events), "requests": sum(requests.values()), "duplicates": duplicates,
           "tries": sum(int(e[4]) for e in events)}
    print(f"  {trigger}: {got}", flush=True)
    return got


@test
def sidecar_killed_mid_drain():
    with Env() as env:
        env.trigger("killed", "/slow/0.05", num_retries=0, timeout_sec=30)
        rows = env.insert(500)
        drain_started(env, len(rows), 100)
        env.sidecar.kill(signal.SIGKILL)
        env.sidecar.proc.wait(10)
        env.new_sidecar()
        account(env, "killed", rows, max_duplicates=HOLD)


@test
def dispatcher_killed_mid_drain():
    with Env() as env:
        c = env.cluster
        env.trigger("orphaned", "/slow/0.05", num_retries=0, timeout_sec=30)
        rows = env.insert(500)
        pid = int(wait_for(lambda: c.scalar("SELECT dispatcher_pid FROM hasura_events.worker_status "
                                            "WHERE database = 'postgres'"), what="the dispatcher"))
        assert c.scalar(f"SELECT backend_type FROM pg_stat_activity WHERE pid = {pid}") == "hasura_events dispatcher"
        drain_started(env, len(rows), 100)
        os.kill(pid, signal.SIGKILL)
        account(env, "orphaned", rows, max_duplicates=HOLD)


@test
def postgres_immediate_stop_mid_drain():
    with Env() as env:
        c = env.cluster
        env.trigger("crashed", "/slow/0.05", num_retries=0, timeout_sec=30)
        rows = env.insert(500)
        drain_started(env, len(rows), 100)
        c.stop("immediate")
        time.sleep(1.0)  # the sidecar finds the server gone and drops what it held
        c.start()
        account(env, "crashed", rows, max_duplicates=HOLD)


@test
def receiver_down_then_back():
    # Connections refused for a few seconds: every attempt then fails at once, so the events need
    # tries to spare (a circuit breaker in the sidecar may also hold them without spending any).
    with Env() as env:
        env.trigger("refused", "/slow/0.02", num_retries=100, interval_sec=1, timeout_sec=30)
        rows = env.insert(500)
        drain_started(env, len(rows), 100)
        env.receiver.down()
        time.sleep(3.0)
        failed = int(env.cluster.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs WHERE status IS NULL "
                                        "OR status NOT BETWEEN 200 AND 299"))
        env.receiver.up()
        # an attempt cut off by the stop may have been answered 2xx already (a duplicate when retried)
        account(env, "refused", rows, max_duplicates=POOL, every_attempt_reached=False)
        print(f"  failed attempts while the receiver was down: {failed}")


@test
def random_500s_with_retries():
    # Half of the attempts are answered 500 (each an attempt, Hasura's semantics): with 30
    # retries an event fails every one with odds of 2^-31.
    with Env() as env:
        env.trigger("flaky", f"/random-fail/{SEED}/50", num_retries=30, interval_sec=0, timeout_sec=30)
        rows = env.insert(400)
        got = account(env, "flaky", rows, max_duplicates=0)
        fails = sum(1 for a in env.receiver.answers() if a["status"] == 500)
        assert got["requests"] == got["tries"], got  # every try is an attempt the receiver answered
        assert fails >= len(rows) // 2, f"only {fails} 500s answered: the mode did not fail half the attempts"


@test
def hung_responses_past_the_timeout():
    # A quarter of the attempts hang 4 s, past the trigger's timeout of 1 s: the sidecar gives
    # up on them (a failed attempt each) and the retry is answered.
    with Env() as env:
        env.trigger("hung", f"/random-hang/{SEED}/25/4", num_retries=30, interval_sec=0, timeout_sec=1)
        rows = env.insert(200)
        got = account(env, "hung", rows, max_duplicates=0)
        assert got["requests"] == got["tries"], got
        hung = got["requests"] - len(rows)
        assert hung >= len(rows) // 8, f"only {hung} attempts hung"


@test
def sigterm_with_a_backlog_gives_queued_deliveries_back():
    # A graceful stop with more queued in the sidecar than it sends at once (pool 8, prefetch 8),
    # and Hasura's default num_retries 0: the attempts in flight finish and are reported, the
    # queued deliveries go back to the queue untouched (no try, no invocation log). A stop that
    # reported them as failed attempts would kill them (dead events).
    args = ("--pool-size", "8", "--prefetch", "8", "--min-webhook-concurrency", "8", "--metrics-address", "off",
            "--log-level", "info")
    with Env(sidecar_args=args, max_inflight=1000) as env:
        c = env.cluster
        env.trigger("graceful", "/slow/0.1", num_retries=0, timeout_sec=30)
        rows = env.insert(300)
        drain_started(env, len(rows), 30)
        rc = env.sidecar.stop()
        assert rc == 0, rc
        env.sidecar = None
        # every try is an attempt the receiver saw; no event went dead
        answered = len(env.receiver.answers())
        wait_for(lambda: int(c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs")) >= answered,
                 what="the outcomes reported at the stop recorded")
        dead = int(c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE error"))
        assert dead == 0, f"{dead} events went dead from a graceful stop"
        requests = len(env.receiver.requests())
        tries = int(c.scalar("SELECT coalesce(sum(tries), 0) FROM hdb_catalog.event_log"))
        assert tries == requests, f"{tries} tries for {requests} attempts received: the stop spent tries"
        env.new_sidecar()
        got = account(env, "graceful", rows, max_duplicates=0)
        assert got["tries"] == got["requests"] == len(rows), got


def main(argv):
    return run_suite("faults", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
