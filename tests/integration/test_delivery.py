#!/usr/bin/env python3
"""tests/integration/test_delivery.py

End-to-end delivery tests: a real cluster, the real sidecar, a local HTTP receiver.
Each test prints PASS/FAIL; the last line is "integration: N passed, N failed".
Run one test: test_delivery.py NAME [NAME...].
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Receiver, Sidecar, Skip, wait_for, run_suite, IS_ROOT, SIDECAR, print_log_tails  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def create_trigger(cluster, name, webhook, db="postgres", table="t", **extra):
    # webhook None: the trigger names its URL some other way (webhook_from_env in extra)
    args = {"name": name, "table": {"schema": "public", "name": table}, "webhook": webhook,
            "insert": {"columns": "*"}, "update": {"columns": "*"}, "delete": {"columns": "*"}}
    if webhook is None:
        del args["webhook"]
    for k, v in extra.items():
        if v is None:
            args.pop(k, None)
        else:
            args[k] = v
    req = json.dumps({"type": "pg_create_event_trigger", "args": args})
    cluster.psql(f"SELECT hasura_events.metadata($${req}$$::jsonb)", db)


def setup_db(cluster, db="postgres"):
    cluster.psql("CREATE EXTENSION hasura_events; CREATE TABLE t (id int PRIMARY KEY, name text, note text);", db)


def event_states(cluster, trigger, db="postgres"):
    return cluster.psql(f"SELECT delivered, error, tries FROM hdb_catalog.event_log "
                        f"WHERE trigger_name = '{trigger}' ORDER BY created_at, id", db)


def all_delivered(cluster, trigger, n, db="postgres"):
    return cluster.scalar(f"SELECT count(*) FROM hdb_catalog.event_log WHERE trigger_name = '{trigger}' "
                          f"AND delivered", db) == str(n)


class Env:
    """A cluster + receiver + sidecar, torn down at the end of a test."""

    def __init__(self, extra_conf=(), sidecar_env=None, sidecar=True, sidecar_args=()):
        self.cluster = Cluster(extra_conf)
        self.receiver = Receiver()
        self.sidecar = Sidecar(self.cluster, sidecar_env, sidecar_args) if sidecar else None

    def url(self, path):
        return self.receiver.base + path

    def close(self):
        if self.sidecar:
            self.sidecar.stop()
        self.receiver.stop()
        self.cluster.destroy()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print_log_tails(self.cluster, self.sidecar)
        self.close()


@test
def insert_update_delete_delivered():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "t_all", env.url("/ok"), update={"columns": ["name"]})
        c.psql("INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y');"
               "UPDATE t SET note = 'changed';"  # not a listened column: no event
               "UPDATE t SET name = 'c' WHERE id = 1;"
               "DELETE FROM t WHERE id = 2;")
        wait_for(lambda: all_delivered(c, "t_all", 4), what="4 deliveries")
        reqs = env.receiver.requests()
        ops = sorted(r["body"]["event"]["op"] for r in reqs)
        assert ops == ["DELETE", "INSERT", "INSERT", "UPDATE"], ops
        for r in reqs:
            b = r["body"]
            assert set(b) == {"id", "created_at", "trigger", "table", "event", "delivery_info"}, b.keys()
            assert b["trigger"] == {"name": "t_all"}
            assert b["table"] == {"schema": "public", "name": "t"}
            assert b["delivery_info"] == {"max_retries": 0, "current_retry": 0}
            assert set(b["event"]) == {"op", "data", "session_variables", "trace_context"}
            assert r["method"] == "POST"
            assert r["headers"]["Content-Type"] == "application/json"
            assert r["headers"]["User-Agent"].startswith("hasura-events/")
        upd = [r["body"] for r in reqs if r["body"]["event"]["op"] == "UPDATE"][0]
        assert upd["event"]["data"]["old"]["name"] == "a" and upd["event"]["data"]["new"]["name"] == "c"
        # one invocation log per attempt, version 2 shapes
        rows = c.psql("SELECT status, request->>'version', response->>'type', response->'data'->>'status', "
                      "request->'payload'->>'id' = event_id FROM hdb_catalog.event_invocation_logs")
        assert len(rows) == 4 and all(r == ["200", "2", "webhook_response", "200", "t"] for r in rows), rows
        # the payload sent is the one logged
        logged = {r[0]: json.loads(r[1]) for r in c.psql(
            "SELECT event_id, request->'payload' FROM hdb_catalog.event_invocation_logs")}
        for r in reqs:
            assert logged[r["body"]["id"]] == r["body"]
        # the body's bytes are those of Hasura's payload built in SQL (key order, spacing, values)
        expected = {r[0]: r[1] for r in c.psql(
            "SET TimeZone = 'UTC';"  # as the dispatcher renders created_at
            "SELECT e.id, jsonb_build_object('id', e.id, 'created_at', e.created_at, 'trigger', "
            "jsonb_build_object('name', e.trigger_name), 'table', jsonb_build_object('schema', e.schema_name, "
            "'name', e.table_name), 'event', e.payload, 'delivery_info', jsonb_build_object('max_retries', 0, "
            "'current_retry', 0))::text FROM hdb_catalog.event_log e")}
        for r in reqs:
            assert r["raw_body"] == expected[r["body"]["id"]], (r["raw_body"], expected[r["body"]["id"]])


@test
def ddl_on_a_listened_table_keeps_deliveries_flowing():
    """Dropping a column the trigger names is refused (2BP01); after renames of that column, of
    the table and of its schema, and a drop of a column under "*", writes go on and the webhook
    gets the events with the names of the time."""
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "t_ddl", env.url("/ok"), update={"columns": ["name"], "payload": ["id", "name"]})
        c.psql("INSERT INTO t VALUES (1, 'a', 'x')")
        c.psql("DO $$ BEGIN ALTER TABLE t DROP COLUMN name; RAISE EXCEPTION 'the drop went through'; "
               "EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$")
        c.psql("ALTER TABLE t RENAME COLUMN name TO full_name;"
               "ALTER TABLE t RENAME TO people;"
               "CREATE SCHEMA crm;"
               "ALTER TABLE people SET SCHEMA crm;"
               "ALTER TABLE crm.people DROP COLUMN note;"
               "UPDATE crm.people SET full_name = 'b';"
               "DELETE FROM crm.people;")
        wait_for(lambda: all_delivered(c, "t_ddl", 3), what="3 deliveries")
        by_op = {r["body"]["event"]["op"]: r["body"] for r in env.receiver.requests()}
        assert sorted(by_op) == ["DELETE", "INSERT", "UPDATE"], by_op.keys()
        assert by_op["INSERT"]["table"] == {"schema": "public", "name": "t"}
        assert by_op["INSERT"]["event"]["data"]["new"] == {"id": 1, "name": "a", "note": "x"}
        upd = by_op["UPDATE"]
        assert upd["table"] == {"schema": "crm", "name": "people"}, upd["table"]
        assert upd["event"]["data"] == {"old": {"id": 1, "full_name": "a"}, "new": {"id": 1, "full_name": "b"}}, upd
        assert by_op["DELETE"]["table"] == {"schema": "crm", "name": "people"}
        assert by_op["DELETE"]["event"]["data"]["old"] == {"id": 1, "full_name": "b"}, by_op["DELETE"]
        # the stored definition follows too
        assert c.scalar("SELECT definition->'table' = '{\"schema\": \"crm\", \"name\": \"people\"}' "
                        "AND definition->'update' = '{\"columns\": [\"full_name\"], \"payload\": [\"id\", \"full_name\"]}' "
                        "FROM hasura_events.event_triggers WHERE name = 't_ddl'") == "t"


@test
def manual_invoke_and_redeliver():
    # no retry check during the test: the redelivery must be found because it was announced
    with Env(extra_conf=["hasura_events.retry_check_interval = '10min'"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "manual", env.url("/ok"), enable_manual=True, insert=None, update=None, delete=None)
        eid = json.loads(c.scalar("""SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger",
                                     "args": {"name": "manual", "payload": {"hello": "world"}}}')"""))["event_id"]
        wait_for(lambda: all_delivered(c, "manual", 1), what="manual delivery")
        body = env.receiver.requests()[0]["body"]
        assert body["id"] == eid and body["event"]["op"] == "MANUAL"
        assert body["event"]["data"] == {"old": None, "new": {"hello": "world"}}
        c.psql(f"""SELECT hasura_events.metadata('{{"type": "pg_redeliver_event", "args": {{"event_id": "{eid}"}}}}')""")
        wait_for(lambda: len(env.receiver.requests()) == 2, what="redelivery")
        wait_for(lambda: c.scalar(f"SELECT count(*) FROM hdb_catalog.event_invocation_logs WHERE event_id = '{eid}'") == "2")
        assert c.psql(f"SELECT delivered, tries FROM hdb_catalog.event_log WHERE id = '{eid}'") == [["t", "1"]]


@test
def failure_then_success_retries():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "flaky", env.url("/fail-then-ok"), retry_conf={"num_retries": 2, "interval_sec": 1})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: all_delivered(c, "flaky", 1), what="delivery after a retry")
        assert event_states(c, "flaky") == [["t", "f", "2"]]
        rows = c.psql("SELECT status, response->>'type' FROM hdb_catalog.event_invocation_logs ORDER BY created_at")
        assert rows == [["500", "client_error"], ["200", "webhook_response"]], rows  # as Hasura
        currents = [r["body"]["delivery_info"]["current_retry"] for r in env.receiver.requests()]
        assert currents == [0, 1], currents
        ts = [r["ts"] for r in env.receiver.requests()]
        assert ts[1] - ts[0] >= 0.9, ts  # interval_sec honoured


@test
def retries_exhausted_marks_error():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "dead", env.url("/fail"), retry_conf={"num_retries": 2, "interval_sec": 0})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: event_states(c, "dead") == [["f", "t", "3"]], what="error after 3 attempts")
        time.sleep(1)
        assert len(env.receiver.requests()) == 3
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs WHERE status = 500") == "3"


@test
def retry_after_is_honoured_and_bounded():
    with Env(extra_conf=["hasura_events.max_retry_after_attempts = 3"]) as env:
        c = env.cluster
        setup_db(c)
        # num_retries 0: only Retry-After keeps it alive, up to the bound of 3 attempts
        create_trigger(c, "ra", env.url("/retry-after/1"), retry_conf={"num_retries": 0, "interval_sec": 100})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: event_states(c, "ra") == [["f", "t", "3"]], timeout=30, what="bounded Retry-After")
        ts = [r["ts"] for r in env.receiver.requests()]
        assert len(ts) == 3 and ts[1] - ts[0] >= 0.9 and ts[2] - ts[1] >= 0.9, ts


@test
def redeliver_during_an_attempt_wins_over_its_failure():
    # pg_redeliver_event resets an event (tries 0) while its second attempt is running; that
    # attempt then fails. Its outcome was decided from tries 1 (dead, num_retries 1): recorded, it
    # would undo the reset. It is not: the event is delivered again from tries 0, and ends dead
    # only after two more attempts. The invocation logs keep all four attempts.
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "rd", env.url("/slow-fail/1.5"), retry_conf={"num_retries": 1, "interval_sec": 1})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: len(env.receiver.requests()) == 2, timeout=15, what="the second attempt started")
        event_id = c.scalar("SELECT id FROM hdb_catalog.event_log WHERE trigger_name = 'rd'")
        assert event_states(c, "rd") == [["f", "f", "1"]], event_states(c, "rd")
        c.psql(f"SELECT hasura_events.redeliver_event('{event_id}')")
        wait_for(lambda: event_states(c, "rd") == [["f", "t", "2"]], timeout=30, what="dead after two more attempts")
        assert len(env.receiver.requests()) == 4, len(env.receiver.requests())
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs") == "4"


@test
def timeout_is_a_failed_attempt():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "slow", env.url("/slow/3"), retry_conf={"num_retries": 0, "timeout_sec": 1})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: event_states(c, "slow") == [["f", "t", "1"]], what="timeout recorded")
        rows = c.psql("SELECT status IS NULL, response->>'type', response->'data'->>'message' "
                      "FROM hdb_catalog.event_invocation_logs")
        assert rows[0][0] == "t" and rows[0][1] == "client_error", rows
        assert "time" in rows[0][2].lower(), rows


@test
def folded_response_headers_and_a_huge_timeout():
    # A response header continued on folded lines, one of them blanks only (which once threw out
    # of curl's header callback and killed the sidecar), and a trigger whose timeout is beyond
    # what curl takes (which once failed every attempt): both delivered, the sidecar still up.
    with Env() as env:
        c = env.cluster
        setup_db(c)
        c.psql("CREATE TABLE t2 (id int PRIMARY KEY)")
        create_trigger(c, "folded", env.url("/folded"), retry_conf={"num_retries": 0})
        create_trigger(c, "long", env.url("/ok"), table="t2", retry_conf={"num_retries": 0, "timeout_sec": 3000000})
        c.psql("INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        c.psql("INSERT INTO t2 VALUES (1)")
        wait_for(lambda: event_states(c, "folded") == [["t", "f", "1"], ["t", "f", "1"]], what="folded delivered")
        wait_for(lambda: event_states(c, "long") == [["t", "f", "1"]], what="huge timeout delivered")
        hdrs = c.psql("SELECT h->>'value' FROM hdb_catalog.event_invocation_logs i, "
                      "json_array_elements(i.response->'data'->'headers') h "
                      "WHERE i.trigger_name = 'folded' AND h->>'name' = 'X-Folded'")
        assert hdrs == [["first second third"], ["first second third"]], hdrs
        assert env.sidecar.proc.poll() is None, "the sidecar exited"


@test
def headers_and_webhook_from_env():
    env_vars = {"HE_TEST_SECRET": "s3cret-value", "HE_TEST_BASE": "", "HE_TEST_URL": ""}
    recv_env = Env(sidecar=False)
    try:
        env_vars["HE_TEST_BASE"] = recv_env.receiver.base
        env_vars["HE_TEST_URL"] = recv_env.receiver.base + "/ok?from=env"
        recv_env.sidecar = Sidecar(recv_env.cluster, env_vars)
        c = recv_env.cluster
        setup_db(c)
        create_trigger(c, "hdr", "{{HE_TEST_BASE}}/ok?from=template",
                       headers=[{"name": "X-Secret", "value_from_env": "HE_TEST_SECRET"},
                                {"name": "X-Plain", "value": "plain"}])
        create_trigger(c, "fromenv", None, webhook_from_env="HE_TEST_URL")
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: all_delivered(c, "hdr", 1) and all_delivered(c, "fromenv", 1), what="env deliveries")
        reqs = recv_env.receiver.requests()
        paths = sorted(r["path"] for r in reqs)
        assert paths == ["/ok?from=env", "/ok?from=template"], paths
        hdr = [r for r in reqs if r["path"].endswith("template")][0]
        assert hdr["headers"]["X-Secret"] == "s3cret-value" and hdr["headers"]["X-Plain"] == "plain"
        # both events came in one claim: each has its own trigger's definition, not the other's
        plain = [r for r in reqs if r["path"].endswith("env")][0]
        assert "X-Secret" not in plain["headers"] and "X-Plain" not in plain["headers"], plain["headers"]
        assert plain["body"]["trigger"] == {"name": "fromenv"}
        # the secret is in neither the invocation log nor the sidecar's log
        logs = " ".join(r[0] for r in c.psql("SELECT request::text FROM hdb_catalog.event_invocation_logs"))
        assert "s3cret-value" not in logs and "HE_TEST_SECRET" in logs, logs
        assert "s3cret-value" not in recv_env.sidecar.output()
        assert recv_env.receiver.base not in recv_env.sidecar.output()
    except BaseException:
        print("\n".join(recv_env.cluster.server_log().splitlines()[-20:]))
        raise
    finally:
        recv_env.close()


@test
def missing_env_variable_is_a_failed_attempt():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "noenv", env.url("/ok"), headers=[{"name": "X-Secret", "value_from_env": "HE_NOT_SET_ANYWHERE"}])
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: event_states(c, "noenv") == [["f", "t", "1"]], what="failed attempt")
        msg = c.scalar("SELECT response->'data'->>'message' FROM hdb_catalog.event_invocation_logs")
        assert "HE_NOT_SET_ANYWHERE" in msg, msg
        assert env.receiver.requests() == []


@test
def urls_curl_refuses_are_failed_attempts():
    # the sidecar parses each URL once and hands curl the parsed form: a URL the parse refuses
    # (a space in the host) and one it accepts but curl may not fetch (ftp) must still end as
    # failed attempts with curl's reason, while a good webhook next to them is delivered
    env_vars = {"HE_BAD_URL": "http://exa mple.com/hook", "HE_FTP_URL": "ftp://127.0.0.1:1/hook"}
    env = Env(sidecar=False)
    try:
        env.sidecar = Sidecar(env.cluster, env_vars)
        c = env.cluster
        setup_db(c)
        create_trigger(c, "badurl", None, webhook_from_env="HE_BAD_URL")
        create_trigger(c, "ftpurl", None, webhook_from_env="HE_FTP_URL")
        create_trigger(c, "goodurl", env.url("/ok"))
        for i in range(3):
            c.psql(f"INSERT INTO t VALUES ({i}, 'a')")
        wait_for(lambda: all_delivered(c, "goodurl", 3) and event_states(c, "badurl") == [["f", "t", "1"]] * 3
                 and event_states(c, "ftpurl") == [["f", "t", "1"]] * 3, what="failed attempts and deliveries")
        msgs = {r[0]: r[1] for r in c.psql("SELECT DISTINCT trigger_name, response->'data'->>'message' "
                                            "FROM hdb_catalog.event_invocation_logs WHERE trigger_name <> 'goodurl'")}
        # the message is the error as JSON text, as Hasura writes an HTTP exception
        msgs = {k: json.loads(v) for k, v in msgs.items()}
        assert msgs["badurl"]["message"].startswith("URL using bad/illegal format"), msgs
        assert 'Protocol "ftp" not supported' in msgs["ftpurl"]["message"], msgs
        assert len(env.receiver.requests()) == 3
    finally:
        env.close()


@test
def rollback_sends_nothing():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "rb", env.url("/ok"))
        c.psql("BEGIN; INSERT INTO t VALUES (1, 'a'); ROLLBACK;"
               "BEGIN; INSERT INTO t VALUES (2, 'b'); SAVEPOINT s; INSERT INTO t VALUES (3, 'c'); "
               "ROLLBACK TO s; COMMIT;")
        wait_for(lambda: all_delivered(c, "rb", 1), what="one delivery")
        time.sleep(1)
        ids = [r["body"]["event"]["data"]["new"]["id"] for r in env.receiver.requests()]
        assert ids == [2], ids


@test
def sidecar_killed_mid_delivery_loses_nothing():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "slowish", env.url("/slow/1.5"), retry_conf={"num_retries": 0, "timeout_sec": 30})
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 20) g")
        wait_for(lambda: len(env.receiver.requests()) >= 1, what="first requests in flight")
        env.sidecar.kill(signal.SIGKILL)
        env.sidecar.proc.wait(10)
        time.sleep(0.5)
        # the worker gave the claims back: nothing is marked delivered that was not reported
        wait_for(lambda: "undelivered events returned to the queue" in c.server_log(), what="claims returned")
        env.sidecar = Sidecar(c)
        wait_for(lambda: all_delivered(c, "slowish", 20), timeout=40, what="all 20 delivered after restart")
        got = {r["body"]["event"]["data"]["new"]["id"] for r in env.receiver.requests()}
        assert got == set(range(1, 21)), got


@test
def immediate_restart_resumes_within_seconds():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "crash", env.url("/slow/0.5"), retry_conf={"num_retries": 0, "timeout_sec": 30})
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 50) g")
        wait_for(lambda: len(env.receiver.requests()) >= 1, what="deliveries started")
        c.restart_immediate()
        t0 = time.time()
        wait_for(lambda: all_delivered(c, "crash", 50), timeout=60, what="all 50 delivered after crash")
        got = {r["body"]["event"]["data"]["new"]["id"] for r in env.receiver.requests()}
        assert got == set(range(1, 51)), sorted(set(range(1, 51)) - got)
        assert time.time() - t0 < 30, "took too long after restart"


@test
def two_databases_at_once():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE DATABASE db2")
        setup_db(c)
        setup_db(c, "db2")
        create_trigger(c, "one", env.url("/ok?db=1"))
        create_trigger(c, "two", env.url("/ok?db=2"), db="db2")
        c.psql("INSERT INTO t VALUES (1, 'a')")
        c.psql("INSERT INTO t VALUES (2, 'b')", "db2")
        wait_for(lambda: all_delivered(c, "one", 1) and all_delivered(c, "two", 1, "db2"), what="both databases")
        paths = sorted(r["path"] for r in env.receiver.requests())
        assert paths == ["/ok?db=1", "/ok?db=2"], paths


@test
def drop_database_and_extension_are_not_blocked():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE DATABASE db3")
        setup_db(c, "db3")
        create_trigger(c, "d3", env.url("/ok"), db="db3")
        c.psql("INSERT INTO t VALUES (1, 'a')", "db3")
        wait_for(lambda: all_delivered(c, "d3", 1, "db3"), what="delivery in db3")
        t0 = time.time()
        c.psql("DROP DATABASE db3")
        assert time.time() - t0 < 5, "DROP DATABASE waited for the dispatcher"
        setup_db(c)
        create_trigger(c, "p1", env.url("/ok"))
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: all_delivered(c, "p1", 1), what="delivery in postgres")
        t0 = time.time()
        c.psql("DROP EXTENSION hasura_events CASCADE")
        assert time.time() - t0 < 5
        # created again at run time: served again
        c.psql("CREATE EXTENSION hasura_events")
        create_trigger(c, "p2", env.url("/ok"))
        c.psql("INSERT INTO t VALUES (2, 'b')")
        wait_for(lambda: all_delivered(c, "p2", 1), what="delivery after re-create")


@test
def pause_switch_holds_delivery():
    with Env(extra_conf=["hasura_events.paused = on"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "paused", env.url("/ok"))
        c.psql("INSERT INTO t VALUES (1, 'a')")
        time.sleep(1.5)
        assert env.receiver.requests() == []
        c.psql("ALTER SYSTEM SET hasura_events.paused = off; SELECT pg_reload_conf();")
        wait_for(lambda: all_delivered(c, "paused", 1), what="delivery after unpause")


@test
def late_commit_of_an_early_transaction_is_delivered():
    """Claims start at the claim floor, not at the beginning of the claim index; an event whose
    transaction started (created_at) before events already delivered, and committed after them,
    lowers the floor at its commit and is delivered at once, not at the next full look."""
    with Env(extra_conf=["hasura_events.retry_check_interval = '10min'"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "late", env.url("/ok"))
        early = subprocess.Popen(c.psql_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            early.stdin.write("BEGIN; SELECT 'started';\n")
            early.stdin.flush()
            assert early.stdout.readline().strip() == "started"
            time.sleep(0.2)
            for k in range(3):  # later transactions, delivered while the early one is open
                c.psql(f"INSERT INTO t SELECT g, 'later' FROM generate_series({k * 100 + 1}, {k * 100 + 100}) g")
                wait_for(lambda: all_delivered(c, "late", (k + 1) * 100), what=f"{(k + 1) * 100} delivered")
            early.stdin.write("INSERT INTO t VALUES (1000, 'early'); COMMIT; SELECT 'committed';\n")
            early.stdin.flush()
            assert early.stdout.readline().strip() == "committed"
        finally:
            early.stdin.close()
            early.wait(10)
        wait_for(lambda: all_delivered(c, "late", 301), what="the early transaction's event")
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE created_at < "
                        "(SELECT created_at FROM hdb_catalog.event_log WHERE payload->'data'->'new'->>'id' = '1000')"
                        ) == "0", "the early transaction's event should have the oldest created_at"


@test
def concurrent_committers_lose_nothing_between_full_looks():
    """Four sessions commit one event at a time, concurrently (commits land in another order than
    their transactions started): every event is delivered by claims from the floor, without the
    retry check's full look (disabled here by a long interval)."""
    with Env(extra_conf=["hasura_events.retry_check_interval = '10min'"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "many", env.url("/ok"))
        procs = [subprocess.Popen(c.psql_command() + ["-c", f"DO $$ BEGIN FOR i IN {k * 1000 + 1}..{k * 1000 + 600} "
                                                      "LOOP INSERT INTO t VALUES (i, 'c'); COMMIT; END LOOP; END $$"])
                 for k in range(4)]
        for p in procs:
            assert p.wait(120) == 0
        wait_for(lambda: all_delivered(c, "many", 2400), timeout=30, what="2400 delivered")
        ids = [r["body"]["id"] for r in env.receiver.requests()]
        assert len(ids) == len(set(ids)) == 2400, "an event was delivered twice, or not at all"


@test
def claims_step_forward_on_a_big_analyzed_log():
    """Each event is fetched about once in a drain, also when the statistics of a big log make the
    planner join the claimed batch in another order than the claim index's (a hash join)."""
    with Env(extra_conf=["hasura_events.paused = on"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "big", env.url("/ok"))
        c.psql("INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload, delivered, tries) "
               "SELECT 'public', 't', 'big', '{}', true, 1 FROM generate_series(1, 50000);"
               "VACUUM ANALYZE hdb_catalog.event_log;"
               "INSERT INTO t SELECT g, 'n' FROM generate_series(1, 2000) g;"
               "ALTER SYSTEM SET hasura_events.paused = off; SELECT pg_reload_conf();")
        try:
            wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE NOT delivered") == "0",
                     timeout=60, what="2000 delivered")
        except AssertionError:
            print(c.psql("SELECT * FROM hasura_events.worker_status"))
            print(c.psql("SELECT delivered, error, tries, count(*) FROM hdb_catalog.event_log GROUP BY 1, 2, 3"))
            print(len(env.receiver.requests()), "requests received")
            raise
        fetched = int(c.scalar("SELECT events_fetched FROM hasura_events.worker_status "
                               "WHERE database = current_database()"))
        assert 2000 <= fetched <= 2500, f"{fetched} events fetched for 2000 delivered"
        ids = [r["body"]["id"] for r in env.receiver.requests()]
        assert len(ids) == len(set(ids)) == 2000, "an event was delivered twice, or not at all"


@test
def dispatcher_never_scans_the_whole_log():
    """The dispatcher's kept plans are made once, often while event_log is tiny and has no
    statistics: they must still never read event_log sequentially once it has grown (autovacuum
    off, so nothing replans them). pg_stat_user_tables counts the sequential scans."""
    with Env(extra_conf=["autovacuum = off"]) as env:
        c = env.cluster
        setup_db(c)
        c.psql("CREATE TABLE f (id int PRIMARY KEY)")
        create_trigger(c, "grow", env.url("/ok"), retry_conf={"num_retries": 1, "interval_sec": 0})
        create_trigger(c, "fails", env.url("/fail"), table="f", retry_conf={"num_retries": 1, "interval_sec": 0})
        attempts_seen = lambda: int(c.scalar("SELECT delivered + failed_attempts FROM hasura_events.worker_status "
                                             "WHERE database = current_database()"))
        seq_scans = lambda: int(c.scalar("SELECT seq_scan FROM pg_stat_user_tables "
                                         "WHERE relid = 'hdb_catalog.event_log'::regclass"))

        def flushed(n):  # the dispatcher reports its table statistics at most once a second
            time.sleep(1.2)
            c.psql("INSERT INTO t VALUES (-%d, 'flush')" % n)
            wait_for(lambda: attempts_seen() == n + 1, what=f"{n + 1} attempts")
            return n + 1

        c.psql("INSERT INTO t VALUES (0, 'first')")  # the plans are made on a one-row log
        c.psql("INSERT INTO f VALUES (0)")
        wait_for(lambda: attempts_seen() == 3, what="3 attempts")
        attempts = flushed(3)
        before = seq_scans()
        for k in range(3):
            c.psql(f"INSERT INTO t SELECT g, 'n' FROM generate_series({k * 2000 + 1}, {(k + 1) * 2000}) g")
            attempts += 2000
            wait_for(lambda: attempts_seen() == attempts, timeout=60, what=f"{attempts} attempts")
        c.psql("INSERT INTO f VALUES (1)")
        attempts += 2
        wait_for(lambda: attempts_seen() == attempts, what=f"{attempts} attempts")
        flushed(attempts)
        assert seq_scans() == before, f"the dispatcher read event_log sequentially {seq_scans() - before} times"


@test
def two_sidecars_share_the_work():
    with Env() as env:
        c = env.cluster
        second = Sidecar(c)
        try:
            setup_db(c)
            create_trigger(c, "shared", env.url("/slow/0.2"))
            wait_for(lambda: c.server_log().count("sidecar connected") >= 2, what="two sidecars")
            c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 200) g")
            wait_for(lambda: all_delivered(c, "shared", 200), timeout=40, what="200 delivered")
            ports = {r["client_port"] for r in env.receiver.requests()}
            assert len(ports) >= 2, ports
            assert '"attempt"' in second.output(), "the second sidecar delivered nothing"
            assert '"attempt"' in env.sidecar.output(), "the first sidecar delivered nothing"
            ids = [r["body"]["id"] for r in env.receiver.requests()]
            assert len(ids) == len(set(ids)) == 200, "an event was delivered twice"
        finally:
            second.stop()


@test
def a_slow_webhook_does_not_hold_up_a_fast_one():
    # Pool of 8, at least 4 for each webhook. 24 events for a webhook that takes 1 s each, then 10
    # for one that answers at once: the fast webhook's events go out within a second or two, next
    # to the slow ones, instead of waiting three seconds behind them in one queue.
    with Env(sidecar_args=("--pool-size", "8", "--min-webhook-concurrency", "4")) as env:
        c = env.cluster
        setup_db(c)
        c.psql("CREATE TABLE t2 (id int PRIMARY KEY, name text)")
        create_trigger(c, "slow", env.url("/slow/1"))
        create_trigger(c, "fast", env.url("/ok"), table="t2")
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 24) g")
        wait_for(lambda: len(env.receiver.requests()) >= 4, what="the first slow attempts")
        c.psql("INSERT INTO t2 SELECT g, 'n' FROM generate_series(1, 10) g")
        wait_for(lambda: all_delivered(c, "fast", 10), timeout=30, what="the fast webhook's events")
        slow_done = int(c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE trigger_name = 'slow' AND delivered"))
        assert slow_done <= 8, f"the fast events waited for {slow_done} slow ones"
        wait_for(lambda: all_delivered(c, "slow", 24), timeout=30, what="the slow webhook's events")
        # the slow webhook had 4 in flight (its floor: it has not seen the window of 64 attempts
        # its limit learns from), not the whole pool
        slow = sorted(r["ts"] for r in env.receiver.requests() if r["path"].startswith("/slow"))
        assert slow[4] - slow[0] >= 0.9, f"more than 4 slow attempts at once: {slow[:6]}"


@test
def a_webhook_that_scales_gets_more_concurrency():
    # A webhook that answers in 50 ms whatever the load: the limit starts at the floor (4) and
    # grows, since every step up raises the throughput; the sidecar logs each change.
    with Env(sidecar_args=("--pool-size", "32", "--min-webhook-concurrency", "4")) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "scales", env.url("/slow/0.05"))
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 600) g")
        wait_for(lambda: all_delivered(c, "scales", 600), timeout=60, what="600 delivered")
        changes = [json.loads(line) for line in env.sidecar.output().splitlines()
                   if '"webhook concurrency limit changed"' in line]
        assert changes, "the limit never changed"
        assert changes[0]["previous"] == 4 and changes[0]["limit"] > 4, changes[0]
        assert max(ch["limit"] for ch in changes) >= 8, changes
        assert all(ch["webhook"] == env.url("/slow/0.05") for ch in changes), changes


@test
def stopped_sidecar_gives_its_events_back():
    # A sidecar stopped (SIGSTOP) while it holds events keeps its socket open, so nothing tells the
    # dispatcher it is gone. After hasura_events.sidecar_timeout of silence (a Ping unanswered)
    # the dispatcher closes it, and another sidecar delivers the events.
    with Env(extra_conf=["hasura_events.sidecar_timeout = '3s'"]) as env:
        c = env.cluster
        second = None
        try:
            setup_db(c)
            create_trigger(c, "held", env.url("/slow/2"), retry_conf={"num_retries": 0})
            c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 3) g")
            wait_for(lambda: len(env.receiver.requests()) == 3, what="3 requests in flight")
            env.sidecar.kill(signal.SIGSTOP)
            second = Sidecar(c)
            wait_for(lambda: "has sent nothing for 3 s" in c.server_log(), timeout=15, what="silent sidecar closed")
            assert "sidecar connection closed: the sidecar holds 3 events" in c.server_log(), c.server_log()[-2000:]
            wait_for(lambda: all_delivered(c, "held", 3), timeout=20, what="3 delivered by the second sidecar")
            assert event_states(c, "held") == [["t", "f", "1"]] * 3, event_states(c, "held")
            assert '"attempt"' in second.output(), "the second sidecar delivered nothing"
            assert len(env.receiver.requests()) == 6, len(env.receiver.requests())
        finally:
            env.sidecar.kill(signal.SIGCONT)
            os.kill(env.sidecar.proc.pid, signal.SIGCONT)  # runuser stops itself when its child stops
            if second:
                second.stop()


@test
def foreign_os_user_is_refused():
    if not IS_ROOT:
        raise Skip("needs root to run a sidecar as another OS user")
    with Env(sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        import subprocess
        # the socket is 0600 and owned by postgres; root can still connect, and is refused by SO_PEERCRED
        log = open(os.path.join(c.dir, "root_sidecar.log"), "w")
        p = subprocess.Popen([SIDECAR, "--socket", c.socket_prefix], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "refused a sidecar running as OS user 0" in c.server_log(), what="refusal")
            mode = os.stat(c.socket_prefix + "." + c.scalar("SELECT oid FROM pg_database WHERE datname='postgres'")).st_mode
            assert mode & 0o077 == 0, oct(mode)
        finally:
            p.terminate()
            p.wait(10)
            log.close()


@test
def sigterm_stops_sidecar_cleanly():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "grace", env.url("/slow/0.5"))
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: len(env.receiver.requests()) == 1, what="attempt started")
        rc = env.sidecar.stop()
        assert rc == 0, rc
        wait_for(lambda: all_delivered(c, "grace", 1), what="in-flight attempt reported before exit")
        env.sidecar = None


@test
def dump_and_restore_keep_triggers_and_events():
    with Env(sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "kept", env.url("/ok"), update={"columns": ["name"], "payload": ["id", "name"]},
                       headers=[{"name": "X-A", "value": "b"}], retry_conf={"num_retries": 4})
        c.psql("CREATE TABLE p (id int, v text) PARTITION BY RANGE (id);"
               "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);")
        create_trigger(c, "kept_p", env.url("/ok"), table="p", update=None, delete=None)
        c.psql("INSERT INTO t VALUES (1, 'a'); INSERT INTO p VALUES (5, 'x');")  # pending: no sidecar runs
        dump = os.path.join(c.dir, "dump.bin")
        import subprocess
        subprocess.run(["pg_dump", "-Fc", "-h", c.dir, "-p", str(c.port), "-U", "postgres", "-f", dump, "postgres"],
                       check=True)
        c.psql("CREATE DATABASE restored")
        subprocess.run(["pg_restore", "--exit-on-error", "-h", c.dir, "-p", str(c.port), "-U", "postgres",
                        "-d", "restored", dump], check=True)
        defs = c.psql("SELECT name, schema_name, table_name, num_retries, update_spec::text, headers::text "
                      "FROM hasura_events.event_triggers ORDER BY name", "restored")
        assert defs == c.psql("SELECT name, schema_name, table_name, num_retries, update_spec::text, headers::text "
                              "FROM hasura_events.event_triggers ORDER BY name"), defs
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE NOT delivered", "restored") == "2"
        # the pg triggers came back once each (partition clones included) and still fire
        counts = c.psql("SELECT tgrelid::regclass::text, count(*) FROM pg_trigger "
                        "WHERE tgfoid = 'hasura_events.capture()'::regprocedure GROUP BY 1 ORDER BY 1", "restored")
        assert counts == [["p", "1"], ["p1", "1"], ["t", "3"]], counts
        c.psql("INSERT INTO t VALUES (2, 'b'); INSERT INTO p VALUES (6, 'y'); UPDATE t SET name = 'c' WHERE id = 1",
               "restored")
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log", "restored") == "5"
        # and they are delivered once a sidecar runs
        env.sidecar = Sidecar(c)
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered", "restored") == "5",
                 what="restored events delivered")


@test
def events_of_a_vanished_trigger_do_not_block_the_queue():
    with Env(extra_conf=["hasura_events.batch_size = 5"]) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "gone", env.url("/ok"))
        c.psql("CREATE TABLE t2 (id int PRIMARY KEY)")
        create_trigger(c, "kept", env.url("/ok"), table="t2", update=None, delete=None)
        env.sidecar.stop()
        env.sidecar = None
        # more orphans than a batch, ahead of the live event in the queue
        c.psql("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 20) g")
        c.psql("DELETE FROM hasura_events.event_triggers WHERE name = 'gone'")
        c.psql("INSERT INTO t2 VALUES (1)")
        env.sidecar = Sidecar(c)
        wait_for(lambda: all_delivered(c, "kept", 1), what="the live event delivered")
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE trigger_name = 'gone' AND NOT delivered") == "20"


@test
def launcher_and_dispatcher_come_back_after_termination():
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "back", env.url("/ok"))
        launcher = c.scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'hasura_events launcher'")
        c.psql(f"SELECT pg_terminate_backend({launcher})")
        wait_for(lambda: c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                  f"'hasura_events launcher' AND pid <> {launcher}") == "1",
                 timeout=30, what="a new launcher")
        dispatcher = c.scalar("SELECT dispatcher_pid FROM hasura_events.worker_status WHERE database = 'postgres'")
        c.psql(f"SELECT pg_terminate_backend({dispatcher})")
        wait_for(lambda: c.scalar("SELECT count(*) FROM hasura_events.worker_status WHERE database = 'postgres' "
                                  f"AND dispatcher_pid IS NOT NULL AND dispatcher_pid <> {dispatcher}") == "1",
                 timeout=30, what="a new dispatcher started by the new launcher")
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: all_delivered(c, "back", 1), what="delivery after both restarts")


@test
def a_backlog_behind_many_databases_is_found_at_start():
    # More databases than dispatcher slots (64), the one with the extension last: at start the
    # launcher must look at every database, not only at the first 64, and find its backlog
    # without waiting for a new event there.
    with Env() as env:
        c = env.cluster
        c.psql("".join(f"CREATE DATABASE plain{i};\n" for i in range(70)))
        c.psql("CREATE DATABASE late")
        setup_db(c, "late")
        create_trigger(c, "late", env.url("/ok"), db="late")
        c.psql("ALTER SYSTEM SET hasura_events.paused = on; SELECT pg_reload_conf()")
        time.sleep(0.5)
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 5) g", "late")
        c.psql("ALTER SYSTEM RESET hasura_events.paused")
        c.stop()
        c.start()
        wait_for(lambda: all_delivered(c, "late", 5, "late"), timeout=60, what="the backlog of the 72nd database")
        log = c.server_log()
        assert "dispatcher slots are taken" not in log, "a slot shortage was reported for databases without the extension"
        # the look at every database is done a few at a time: it leaves worker processes to others
        assert "could not start a dispatcher" not in log, log[-3000:]


@test
def a_database_that_found_every_slot_taken_is_served_when_one_frees():
    # 64 databases with the extension hold every dispatcher slot. Two more, looked at before and
    # found without the extension, get it and events: each is told once that it waits (WARNING).
    # One of them is dropped while it waits; the other is served once a slot frees up (here by
    # DROP DATABASE), without a new event, and the dropped one takes no slot for good.
    with Env(["max_worker_processes = 80"]) as env:
        c = env.cluster
        # before the others: the look at start reaches them first
        c.psql("CREATE DATABASE gone; CREATE DATABASE late;")
        c.psql("CREATE EXTENSION hasura_events", "template1")
        c.psql("".join(f"CREATE DATABASE full{i};\n" for i in range(64)))
        c.psql("DROP EXTENSION hasura_events", "template1")
        c.stop()
        c.start()
        # 64 dispatchers that stay: every slot is taken, so the looks at the others are over
        wait_for(lambda: c.scalar("SELECT count(*) FROM hasura_events.worker_status WHERE dispatcher_pid IS NOT NULL",
                                  "full0") == "64", timeout=60, what="64 dispatchers")
        for db in ("gone", "late"):
            p = subprocess.run(c.psql_command(db), capture_output=True, text=True,
                               input="CREATE EXTENSION hasura_events; CREATE TABLE t (id int PRIMARY KEY, name text, note text);")
            assert p.returncode == 0, p.stderr
            assert "all 64 dispatcher slots are taken" in p.stderr, p.stderr
            create_trigger(c, db, env.url("/ok"), db=db)
            p = subprocess.run(c.psql_command(db), capture_output=True, text=True,
                               input="INSERT INTO t SELECT g, 'n' FROM generate_series(1, 3) g")
            assert p.returncode == 0 and "slots are taken" not in p.stderr, "warned again: " + p.stderr
        time.sleep(1.0)
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered", "late") == "0"
        c.psql("DROP DATABASE gone")
        c.psql("DROP DATABASE full0")
        wait_for(lambda: all_delivered(c, "late", 3, "late"), timeout=30, what="the waiting database served")
        assert c.scalar("SELECT count(*) FROM hasura_events.worker_status", "late") == "64"
        # the next free slot goes to the dropped database, which still waits: the launcher must
        # free it again instead of starting a dispatcher there (which would fail at every
        # restart and keep the slot), so that a database created now is served
        c.psql("DROP DATABASE full1")
        c.psql("CREATE DATABASE fresh")
        setup_db(c, "fresh")
        create_trigger(c, "fresh", env.url("/ok"), db="fresh")
        c.psql("INSERT INTO t VALUES (1, 'a')", "fresh")
        wait_for(lambda: all_delivered(c, "fresh", 1, "fresh"), what="a database created after the others")
        assert "does not exist" not in c.server_log(), "a dispatcher was started for the dropped database"


@test
def extension_in_template_does_not_block_create_database():
    with Env(sidecar=False) as env:
        c = env.cluster
        c.psql("CREATE EXTENSION hasura_events", "template1")
        time.sleep(1.5)  # a dispatcher asked for at that commit must not stay connected to template1
        c.psql("CREATE DATABASE from_template")
        assert c.scalar("SELECT count(*) FROM hasura_events.event_triggers", "from_template") == "0"


def main(argv):
    return run_suite("integration", TESTS, argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
