#!/usr/bin/env python3
"""tests/integration/test_privileges.py

End to end with two non-superuser members of hasura_events_admin, each the owner of one table,
and a writer of both tables that has no right on the catalog: events of each table reach that
table's webhook (with its value_from_env header), each admin sees only its own triggers, events
and invocation logs, and an admin cannot redirect or read the other's trigger (the attack of
issue 19: a plain UPDATE of hasura_events.event_triggers). The fine-grained refusals (every API
function, every catalog table, their SQLSTATEs) are in sql/06_privileges.sql.
Each test prints PASS/FAIL; the last line is "privileges: N passed, N failed".
Run one test: test_privileges.py NAME [NAME...].
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import run_suite, wait_for  # noqa: E402
from test_delivery import Env  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def as_role(cluster, role, sql):
    """Runs sql as role (SET ROLE in one session); the rows, or the error text of a refusal."""
    try:
        return cluster.psql(f"SET ROLE {role};\n{sql}")
    except AssertionError as e:
        return str(e)


def setup_two_admins(env):
    c = env.cluster
    c.psql("CREATE EXTENSION hasura_events;"
           "CREATE ROLE role_a; CREATE ROLE role_b; CREATE ROLE writer;"
           "GRANT hasura_events_admin TO role_a, role_b;"
           "GRANT CREATE ON SCHEMA public TO role_a, role_b;")
    for role, table, path in (("role_a", "tbl_a", "/ok?to=a"), ("role_b", "tbl_b", "/ok?to=b")):
        req = json.dumps({"type": "pg_create_event_trigger", "args": {
            "name": f"trg_{role}", "table": table, "webhook": env.url(path), "insert": {"columns": "*"},
            "headers": [{"name": "X-Secret", "value_from_env": "HE_PRIV_SECRET"}]}})
        rows = as_role(c, role, f"CREATE TABLE {table} (id int PRIMARY KEY, v text);"
                                f"GRANT INSERT ON {table} TO writer;"
                                f"SELECT hasura_events.metadata($${req}$$::jsonb);")
        assert rows == [['{"message": "success"}']], rows


def delivered(cluster, n):
    return cluster.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered") == str(n)


@test
def two_admins_each_deliver_and_see_only_their_own():
    with Env(sidecar_env={"HE_PRIV_SECRET": "s3cret"}) as env:
        c = env.cluster
        setup_two_admins(env)
        # the writer records events in both tables without any right on the catalog
        assert as_role(c, "writer", "INSERT INTO tbl_a VALUES (1, 'a1'), (2, 'a2');"
                                    "INSERT INTO tbl_b VALUES (1, 'b1');") == []
        wait_for(lambda: delivered(c, 3), what="3 deliveries")
        reqs = env.receiver.requests()
        by_path = sorted((r["path"], r["body"]["event"]["data"]["new"]["v"]) for r in reqs)
        assert by_path == [("/ok?to=a", "a1"), ("/ok?to=a", "a2"), ("/ok?to=b", "b1")], by_path
        assert all(r["headers"]["X-Secret"] == "s3cret" for r in reqs)

        seen = as_role(c, "role_a", "SELECT (SELECT string_agg(name, ',') FROM hasura_events.event_triggers),"
                                    " (SELECT count(*) FROM hdb_catalog.event_log),"
                                    " (SELECT count(*) FROM hdb_catalog.event_invocation_logs),"
                                    " (SELECT string_agg(trigger_name || '=' || pending, ',')"
                                    "  FROM hasura_events.trigger_status);")
        assert seen == [["trg_role_a", "2", "2", "trg_role_a=0"]], seen
        seen = as_role(c, "role_b", "SELECT count(*) FROM hdb_catalog.event_log;")
        assert seen == [["1"]], seen
        refused = as_role(c, "role_a", "SELECT hasura_events.metadata("
                                       "'{\"type\": \"pg_get_event_logs\", \"args\": {\"name\": \"trg_role_b\"}}');")
        assert 'event trigger "trg_role_b" does not exist' in refused, refused


@test
def an_admin_cannot_redirect_another_admins_trigger():
    with Env(sidecar_env={"HE_PRIV_SECRET": "s3cret"}) as env:
        c = env.cluster
        setup_two_admins(env)
        # the attack of issue 19: a plain UPDATE of the other role's trigger, then of the webhook
        # through the API (replace)
        refused = as_role(c, "role_a", f"UPDATE hasura_events.event_triggers SET webhook = '{env.url('/ok?to=attacker')}'"
                                       " WHERE name = 'trg_role_b';")
        assert "permission denied for table event_triggers" in refused, refused
        req = json.dumps({"type": "pg_create_event_trigger", "args": {
            "name": "trg_role_b", "table": "tbl_a", "webhook": env.url("/ok?to=attacker"), "insert": {"columns": "*"},
            "replace": True}})
        refused = as_role(c, "role_a", f"SELECT hasura_events.metadata($${req}$$::jsonb);")
        assert 'event trigger "trg_role_b" already exists' in refused, refused
        refused = as_role(c, "role_a", "DELETE FROM hdb_catalog.event_log;")
        assert "permission denied for table event_log" in refused, refused
        # B's next rows still go to B's webhook
        assert as_role(c, "writer", "INSERT INTO tbl_b VALUES (2, 'b2');") == []
        wait_for(lambda: delivered(c, 1), what="1 delivery")
        paths = [r["path"] for r in env.receiver.requests()]
        assert paths == ["/ok?to=b"], paths
        assert c.scalar("SELECT webhook FROM hasura_events.event_triggers WHERE name = 'trg_role_b'") == env.url("/ok?to=b")


def main(argv):
    return run_suite("privileges", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
