#!/usr/bin/env python3
"""tests/integration/test_breaker.py

Deliveries given back unattempted (the Release message): on a graceful stop of the sidecar, and
while a webhook's circuit breaker is open because its attempts fail at the connection level.
Every test accounts for the events by their ids: tries spent only by real attempts, one
invocation log row per attempt, nothing dead that was never sent.
Each test prints PASS/FAIL; the last line is "breaker: N passed, N failed".
Run one test: test_breaker.py NAME [NAME...].
"""
import json
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import Receiver, Sidecar, free_port, wait_for, run_suite  # noqa: E402
from test_delivery import Env, all_delivered, create_trigger, setup_db  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def attempts_by_event(cluster, trigger):
    """{event id: invocation-log rows} of the trigger's events"""
    return {r[0]: int(r[1]) for r in cluster.psql(
        f"SELECT e.id, count(l.id) FROM hdb_catalog.event_log e "
        f"LEFT JOIN hdb_catalog.event_invocation_logs l ON l.event_id = e.id "
        f"WHERE e.trigger_name = '{trigger}' GROUP BY e.id")}


def states(cluster, trigger):
    """{event id: (delivered, error, tries)}"""
    return {r[0]: (r[1] == "t", r[2] == "t", int(r[3])) for r in cluster.psql(
        f"SELECT id, delivered, error, tries FROM hdb_catalog.event_log WHERE trigger_name = '{trigger}'")}


def received_ids(receiver):
    return [r["body"]["id"] for r in receiver.requests()]


def log_lines(sidecar, msg):
    out = []
    for line in sidecar.output().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("msg") == msg:
            out.append(rec)
    return out


@test
def sigterm_gives_the_backlog_back_untouched():
    # A backlog beyond what the sidecar has in flight (pool 10; 400 queued on its credits) of a slow
    # webhook with num_retries 0. SIGTERM: the queued deliveries go back without a try or an
    # invocation log (they used to be reported as failed attempts, "sidecar shutting down", and
    # went dead); those in flight finish within the grace period. A new sidecar delivers the rest.
    n = 500
    with Env(sidecar_args=["--pool-size", "10", "--prefetch", "400"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "rolling", env.url("/slow/0.3"), retry_conf={"num_retries": 0, "timeout_sec": 30})
        c.psql(f"INSERT INTO t SELECT g, 'n' FROM generate_series(1, {n}) g")
        wait_for(lambda: len(env.receiver.requests()) >= 20, timeout=30, what="deliveries under way")
        assert env.sidecar.stop() == 0, "the sidecar exits 0 after SIGTERM"
        out = env.sidecar.output()
        env.sidecar = None
        made = received_ids(env.receiver)
        # every attempt the receiver saw is recorded, and nothing else
        wait_for(lambda: sum(attempts_by_event(c, "rolling").values()) >= len(made), what="attempts recorded")
        st = states(c, "rolling")
        att = attempts_by_event(c, "rolling")
        assert len(st) == n, len(st)
        assert sum(att.values()) == len(made), (sum(att.values()), len(made))
        assert sorted(made) == sorted(i for i, k in att.items() for _ in range(k)), "invocation logs != attempts"
        dead = [i for i, s in st.items() if s[1]]
        assert dead == [], f"{len(dead)} events dead after a graceful stop"
        for i, (delivered, _, tries) in st.items():
            assert tries == att[i], (i, tries, att[i])
            assert delivered == (att[i] == 1), (i, delivered, att[i])
        untouched = [i for i, s in st.items() if s[2] == 0]
        assert len(untouched) > 0 and len(made) < n, "the stop came after the backlog was gone"
        assert "sidecar shutting down" not in json.dumps(c.psql(
            "SELECT response::text FROM hdb_catalog.event_invocation_logs")), "a refused delivery was logged"
        assert "grace period over" not in out, "in-flight attempts were abandoned"

        # a new sidecar delivers every event once
        env.sidecar = Sidecar(c)
        wait_for(lambda: all_delivered(c, "rolling", n), timeout=90, what=f"all {n} delivered")
        st = states(c, "rolling")
        att = attempts_by_event(c, "rolling")
        assert all(s == (True, False, 1) for s in st.values()), [s for s in st.values() if s != (True, False, 1)][:5]
        assert all(k == 1 for k in att.values()), "one invocation log row per event"
        got = received_ids(env.receiver)
        assert sorted(got) == sorted(st), "each event received exactly once"


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    m = re.findall(rf"^{name}\{{[^}}]*\}} (\S+)$", text, re.M)
    return float(m[0]) if m else None


@test
def a_refused_webhook_opens_the_breaker_and_spends_no_tries():
    # A webhook nobody listens on (connection refused) with a backlog and num_retries 0: after a
    # few failures the breaker opens; the backlog waits at the worker (held), only probes are
    # attempted. When a receiver starts on that port, a probe closes the breaker and every
    # waiting event is delivered, with one try each.
    n = 3000
    pool = 100
    port = free_port()
    mport = free_port()
    with Env(sidecar_args=["--pool-size", str(pool), "--breaker-max-cooldown", "2",
                           "--metrics-address", f"127.0.0.1:{mport}"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "down", f"http://127.0.0.1:{port}/ok", retry_conf={"num_retries": 0, "timeout_sec": 10})
        c.psql(f"INSERT INTO t SELECT g, 'n' FROM generate_series(1, {n}) g")
        wait_for(lambda: len(log_lines(env.sidecar, "webhook circuit opened")) >= 1, timeout=30, what="breaker open")
        wait_for(lambda: metric(mport, "hasura_events_webhook_circuit_open") == 1.0, what="circuit gauge 1")
        # three failed probes, two seconds apart at most
        wait_for(lambda: len([o for o in log_lines(env.sidecar, "webhook circuit opened") if o["probe_failed"]]) >= 3,
                 timeout=30, what="3 failed probes")
        probes = len([o for o in log_lines(env.sidecar, "webhook circuit opened") if o["probe_failed"]])
        st = states(c, "down")
        att = attempts_by_event(c, "down")
        tried = [i for i, s in st.items() if s[2] > 0]
        # the first wave (attempts started before the breaker opened: at most the pool) and a probe
        # each opening after; never the backlog
        bound = pool + probes + 2
        assert len(tried) <= bound, (len(tried), bound)
        assert sum(att.values()) == sum(s[2] for s in st.values()), "tries == invocation log rows"
        dead = {i for i, s in st.items() if s[1]}
        assert dead == set(tried), "num_retries 0: exactly the tried events are dead"
        # failure lines are rate limited: a summary counts what was not written
        wait_for(lambda: log_lines(env.sidecar, "attempt failures repeated"), timeout=30, what="a summary line")
        summary = log_lines(env.sidecar, "attempt failures repeated")
        assert sum(s["suppressed"] for s in summary) > 0, summary
        written = [a for a in log_lines(env.sidecar, "attempt") if a["kind"] == "client_error"]
        assert len(written) < len(tried), (len(written), len(tried))

        # the webhook comes back
        receiver = Receiver(port)
        try:
            wait_for(lambda: all_delivered(c, "down", n - len(set(i for i, s in states(c, "down").items() if s[1]))),
                     timeout=120, what="the rest delivered")
            st = states(c, "down")
            att = attempts_by_event(c, "down")
            dead = {i for i, s in st.items() if s[1]}
            delivered = {i for i, s in st.items() if s[0]}
            probes = len([o for o in log_lines(env.sidecar, "webhook circuit opened") if o["probe_failed"]])
            assert len(dead) <= pool + probes + 2, (len(dead), probes)
            assert dead | delivered == set(st) and not (dead & delivered), "every event delivered or dead"
            assert all(st[i][2] == 1 for i in st), "one try each: the held events spent none"
            assert all(att[i] == 1 for i in st), "one invocation log row each"
            got = received_ids(receiver)
            assert sorted(got) == sorted(delivered), "the delivered events, each received once"
            assert log_lines(env.sidecar, "webhook circuit closed"), "no close logged"
            assert metric(mport, "hasura_events_webhook_circuit_open") == 0.0
        finally:
            receiver.stop()


def main(argv):
    return run_suite("breaker", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
