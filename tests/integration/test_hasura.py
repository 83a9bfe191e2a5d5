#!/usr/bin/env python3
"""tests/integration/test_hasura.py

A Hasura user's database and metadata carried over: a Hasura project's metadata export
(tests/fixtures/hasura_metadata.json, with relationships, permissions, actions, cron triggers
and two event triggers with headers, retry_conf and webhook_from_env) applied with
replace_metadata gives the same triggers, delivering Hasura's payloads, and export then replace
round-trips exactly; a database Hasura v2 used (tests/fixtures/hasura_v2_catalog.sql: its
catalog, pg triggers, history and a backlog, some of it locked) is taken over by CREATE
EXTENSION, and its backlog delivered once the triggers are imported. The last line is
"hasura: N passed, N failed". Run one test: test_hasura.py NAME [NAME...].
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Receiver, Sidecar, wait_for, run_suite, print_log_tails  # noqa: E402

TESTS = []
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
METADATA = json.load(open(os.path.join(FIXTURES, "hasura_metadata.json")))
CATALOG_SQL = open(os.path.join(FIXTURES, "hasura_v2_catalog.sql")).read()

# What replace_metadata of the fixture reports as accepted and not used.
FIXTURE_IGNORED = ["actions", "allowlist", "cron_triggers", "custom_types", "query_collections",
                   "sources[].configuration", "sources[].tables[].array_relationships",
                   "sources[].tables[].insert_permissions", "sources[].tables[].object_relationships",
                   "sources[].tables[].select_permissions", "sources[].tables[].update_permissions"]

APP_TABLES_SQL = """
CREATE TABLE public.users (id integer PRIMARY KEY, email text NOT NULL, name text,
                           created_at timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
CREATE TABLE public.orders (id integer PRIMARY KEY, user_id integer NOT NULL REFERENCES public.users (id),
                            status text NOT NULL, total numeric(10, 2) NOT NULL, note text);
"""


def test(fn):
    TESTS.append(fn)
    return fn


def metadata(c, request, db="postgres"):
    return json.loads(c.scalar(f"SELECT hasura_events.metadata($req${json.dumps(request)}$req$::jsonb)", db))


def event_triggers_only(md):
    """The fixture as export_metadata shows it: sources with kind, tables with event triggers only."""
    return {"version": 3, "sources": [
        {"name": s["name"], "kind": s.get("kind", "postgres"),
         "tables": [{"table": t["table"], "event_triggers": t["event_triggers"]}
                    for t in s["tables"] if t.get("event_triggers")]}
        for s in md["sources"]]}


def sidecar_env(receiver):
    return {"ORDERS_WEBHOOK_BASE": receiver.base + "/ok", "ORDERS_API_KEY": "orders-key",
            "SIGNUP_WEBHOOK_URL": receiver.base + "/ok/signup", "SIGNUP_SECRET": "signup-secret"}


class Env:
    def __init__(self):
        self.cluster = Cluster()
        self.receiver = Receiver()
        self.sidecar = None

    def start_sidecar(self):
        self.sidecar = Sidecar(self.cluster, sidecar_env(self.receiver))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print_log_tails(self.cluster, self.sidecar)
        if self.sidecar:
            self.sidecar.stop()
        self.receiver.stop()
        self.cluster.destroy()


def delivered_ids(receiver):
    return sorted(r["body"]["id"] for r in receiver.requests())


@test
def hasura_export_applied_delivers_as_hasura_and_round_trips():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE EXTENSION hasura_events;" + APP_TABLES_SQL)
        answer = metadata(c, {"type": "replace_metadata", "args": METADATA})
        assert answer == {"message": "success", "ignored": FIXTURE_IGNORED}, answer
        exported = metadata(c, {"type": "export_metadata", "args": {}})
        assert exported == event_triggers_only(METADATA), json.dumps(exported, indent=1)
        # export, then replace with it: nothing changes, the export is the same
        before = c.psql("SELECT name, updated_at FROM hasura_events.event_triggers ORDER BY name")
        assert metadata(c, {"type": "replace_metadata", "args": exported}) == {"message": "success"}
        assert metadata(c, {"type": "export_metadata", "args": {}}) == exported
        assert c.psql("SELECT name, updated_at FROM hasura_events.event_triggers ORDER BY name") == before
        # the {"metadata": ...} form of the same
        again = metadata(c, {"type": "replace_metadata", "version": 2,
                             "args": {"allow_inconsistent_metadata": True, "metadata": METADATA}})
        assert again == {"is_consistent": True, "inconsistent_objects": [], "ignored": FIXTURE_IGNORED}, again

        env.start_sidecar()
        c.psql("INSERT INTO users VALUES (1, 'ada@example.com', 'Ada');"
               "INSERT INTO orders VALUES (10, 1, 'new', 12.50, NULL);"
               "UPDATE orders SET note = 'no event: only status is listened to' WHERE id = 10;"
               "UPDATE orders SET status = 'paid' WHERE id = 10;"
               "DELETE FROM orders WHERE id = 10;")
        wait_for(lambda: len(env.receiver.requests()) == 4, what="4 deliveries")
        reqs = sorted(env.receiver.requests(), key=lambda r: r["body"]["created_at"] + r["body"]["event"]["op"])
        by = {(r["body"]["trigger"]["name"], r["body"]["event"]["op"]): r for r in reqs}
        assert sorted(by) == [("order_events", "DELETE"), ("order_events", "INSERT"), ("order_events", "UPDATE"),
                              ("user_signup", "INSERT")], sorted(by)
        signup = by[("user_signup", "INSERT")]
        assert signup["path"] == "/ok/signup", signup["path"]
        assert signup["headers"]["X-Signup-Secret"] == "signup-secret" and signup["headers"]["X-Source"] == "hasura"
        # the payload lists only the columns the definition's payload names
        assert signup["body"]["event"]["data"] == {"old": None, "new": {"id": 1, "email": "ada@example.com",
                                                                       "name": "Ada"}}, signup["body"]
        assert signup["body"]["delivery_info"] == {"max_retries": 3, "current_retry": 0}
        upd = by[("order_events", "UPDATE")]
        assert upd["path"] == "/ok/orders" and upd["headers"]["X-Api-Key"] == "orders-key"
        assert upd["body"]["event"]["data"]["old"] == {"id": 10, "user_id": 1, "status": "new", "total": 12.50,
                                                       "note": "no event: only status is listened to"}
        assert upd["body"]["event"]["data"]["new"]["status"] == "paid"
        assert upd["body"]["table"] == {"schema": "public", "name": "orders"}
        assert upd["body"]["delivery_info"] == {"max_retries": 5, "current_retry": 0}

        # clear_metadata: the triggers are gone, their events archived
        assert metadata(c, {"type": "clear_metadata", "args": {}}) == {"message": "success"}
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE NOT archived") == "0"
        assert metadata(c, {"type": "export_metadata", "args": {}}) == {"version": 3, "sources": []}


# The columns, indexes and constraints of the two event tables, as a fresh install makes them.
TABLE_SHAPE_SQL = r"""
SELECT 'column ' || a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || coalesce(' collate ' || nullif(co.collname, 'default'), '') || ' notnull=' || a.attnotnull
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
 WHERE a.attrelid IN ('hdb_catalog.event_log'::regclass, 'hdb_catalog.event_invocation_logs'::regclass)
   AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid) || ' ' || coalesce(c.reloptions::text, '')
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid IN ('hdb_catalog.event_log'::regclass, 'hdb_catalog.event_invocation_logs'::regclass)
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
  FROM pg_constraint WHERE conrelid IN ('hdb_catalog.event_log'::regclass, 'hdb_catalog.event_invocation_logs'::regclass)
UNION ALL
SELECT 'table ' || c.oid::regclass || ' ' || coalesce(c.reloptions::text, '') || ' owner=' || pg_get_userbyid(c.relowner)
       || ' acl=' || coalesce(c.relacl::text, '-') || ' member=' || EXISTS (
          SELECT 1 FROM pg_depend dep JOIN pg_extension e ON e.oid = dep.refobjid
           WHERE dep.classid = 'pg_class'::regclass AND dep.objid = c.oid AND dep.deptype = 'e' AND e.extname = 'hasura_events')
  FROM pg_class c WHERE c.oid IN ('hdb_catalog.event_log'::regclass, 'hdb_catalog.event_invocation_logs'::regclass)
UNION ALL
SELECT 'dumped ' || x::regclass FROM pg_extension, unnest(extconfig) x WHERE extname = 'hasura_events'
ORDER BY 1
"""

# Hasura's objects the takeover must leave as they are.
HASURA_OBJECTS_SQL = r"""
SELECT c.relname || ' ' || c.relkind::text || ' acl=' || coalesce(c.relacl::text, '-') || ' owner=' || pg_get_userbyid(c.relowner)
  FROM pg_class c WHERE c.relnamespace = 'hdb_catalog'::regnamespace
   AND c.relname NOT LIKE 'event_log%' AND c.relname NOT LIKE 'event_invocation_logs%'
UNION ALL
SELECT 'function ' || p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'hdb_catalog'::regnamespace
   AND p.proname NOT LIKE 'notify_hasura_%'
UNION ALL SELECT 'metadata ' || resource_version || ' ' || metadata::text FROM hdb_catalog.hdb_metadata
UNION ALL SELECT 'version ' || version FROM hdb_catalog.hdb_version
UNION ALL SELECT 'source catalog ' || version FROM hdb_catalog.hdb_source_catalog_version
UNION ALL SELECT 'cron event ' || trigger_name || ' ' || status FROM hdb_catalog.hdb_cron_events
UNION ALL
SELECT 'member ' || pg_describe_object(d.classid, d.objid, 0) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE d.deptype = 'e' AND e.extname = 'hasura_events' AND d.classid = 'pg_namespace'::regclass
ORDER BY 1
"""

HISTORY = {"hasura-1": (True, False, 1), "hasura-2": (True, False, 1), "hasura-4": (False, True, 3)}
BACKLOG = ["hasura-3", "hasura-5", "hasura-6", "hasura-7", "hasura-8", "hasura-9"]


@test
def takeover_of_a_hasura_database_keeps_history_and_delivers_the_backlog():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE DATABASE fresh")
        c.psql("CREATE EXTENSION hasura_events", "fresh")
        c.psql(CATALOG_SQL)
        hasura_before = c.psql(HASURA_OBJECTS_SQL)
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE locked IS NOT NULL") == "2"
        c.psql("SET TimeZone = 'UTC'; CREATE EXTENSION hasura_events")

        # the tables are ours now, exactly as a fresh install makes them, with every row
        shape = c.psql(TABLE_SHAPE_SQL)
        assert shape == c.psql(TABLE_SHAPE_SQL, "fresh"), "\n".join(
            "-" + " ".join(r) for r in c.psql(TABLE_SHAPE_SQL, "fresh") if r not in shape) + "\n" + "\n".join(
            "+" + " ".join(r) for r in shape if r not in c.psql(TABLE_SHAPE_SQL, "fresh"))
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log") == "10"
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs") == "6"
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE locked IS NOT NULL") == "0"
        # Hasura's timestamps (UTC here) kept as the instants they were
        assert c.scalar("SELECT created_at = '2026-11-01 10:04:00+00' FROM hdb_catalog.event_log "
                        "WHERE id = 'hasura-4'") == "t"
        # Hasura's other objects as they were (the extension's own schema is the one new member)
        assert sorted(c.psql(HASURA_OBJECTS_SQL)) == sorted(hasura_before + [["member schema hasura_events"]]), \
            c.psql(HASURA_OBJECTS_SQL)

        # Hasura's pg triggers still record events until the triggers are imported
        c.psql("INSERT INTO orders VALUES (13, 1, 'new', 1.00, 'between takeover and import')")
        between = c.scalar("SELECT id FROM hdb_catalog.event_log WHERE payload -> 'data' -> 'new' ->> 'id' = '13'")
        assert between is not None

        env.start_sidecar()
        answer = metadata(c, {"type": "replace_metadata", "args": METADATA})
        assert answer == {"message": "success", "ignored": FIXTURE_IGNORED}, answer
        # Hasura's trigger functions and pg triggers gone, ours in their place
        assert c.psql("SELECT proname FROM pg_proc WHERE proname LIKE 'notify_hasura_%'") == []
        assert c.psql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1") == [
            ["hasura_events_order_events_delete"], ["hasura_events_order_events_insert"],
            ["hasura_events_order_events_update"], ["hasura_events_user_signup_insert"]]

        # the backlog, locked events too, delivered once each; history and archived events not
        expected = sorted(BACKLOG + [between])
        wait_for(lambda: delivered_ids(env.receiver) == expected, timeout=30,
                 what=f"the backlog delivered: {expected}")
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE id = ANY ('{%s}') AND delivered"
                                  % ",".join(expected)) == str(len(expected)), what="the backlog marked delivered")
        for r in env.receiver.requests():
            b = r["body"]
            if b["trigger"]["name"] == "user_signup":
                assert r["path"] == "/ok/signup" and r["headers"]["X-Signup-Secret"] == "signup-secret", r
            else:
                assert r["path"] == "/ok/orders" and r["headers"]["X-Api-Key"] == "orders-key", r
        retried = [r["body"] for r in env.receiver.requests() if r["body"]["id"] == "hasura-5"][0]
        assert retried["delivery_info"] == {"max_retries": 5, "current_retry": 1}, retried
        assert retried["created_at"].startswith("2026-11-01T10:05:00"), retried["created_at"]

        # new writes are ours, with the payload Hasura's triggers gave
        c.psql("INSERT INTO users VALUES (4, 'dee@example.com', 'Dee');"
               "INSERT INTO orders VALUES (14, 4, 'new', 7.00, NULL)")
        wait_for(lambda: len(env.receiver.requests()) == len(expected) + 2, what="two new deliveries")
        bodies = {r["body"]["id"]: r["body"] for r in env.receiver.requests()}
        hasura_signup = bodies["hasura-3"]["event"]["data"]["new"]
        hasura_order = bodies["hasura-8"]["event"]["data"]["new"]
        ours = [b for i, b in bodies.items() if i not in expected]
        ours_signup = [b for b in ours if b["trigger"]["name"] == "user_signup"][0]["event"]["data"]["new"]
        ours_order = [b for b in ours if b["trigger"]["name"] == "order_events"][0]["event"]["data"]["new"]
        assert sorted(ours_signup) == sorted(hasura_signup) == ["email", "id", "name"], (ours_signup, hasura_signup)
        assert sorted(ours_order) == sorted(hasura_order), (ours_order, hasura_order)
        assert {k: type(v) for k, v in ours_order.items()} == {k: type(v) for k, v in hasura_order.items()}

        # the history is readable through the API
        ev = metadata(c, {"type": "pg_get_event_by_id", "args": {"event_id": "hasura-4"}})
        assert (ev["event"]["delivered"], ev["event"]["error"], ev["event"]["tries"]) == HISTORY["hasura-4"]
        assert [i["id"] for i in ev["invocations"]] == ["inv-5", "inv-4", "inv-3"], ev["invocations"]
        assert ev["invocations"][0]["response"] == {"type": "client_error", "data": {"message": "boom"}, "version": "2"}
        processed = metadata(c, {"type": "pg_get_event_logs", "args": {"name": "user_signup", "status": "processed"}})
        ids = [e["id"] for e in processed]
        assert "hasura-1" in ids and "hasura-2" in ids and "hasura-3" in ids, ids
        inv = metadata(c, {"type": "pg_get_event_invocation_logs", "args": {"name": "order_events", "limit": 100}})
        assert {"inv-3", "inv-4", "inv-5", "inv-6"} <= {i["id"] for i in inv}, inv
        assert c.scalar("SELECT archived AND NOT delivered FROM hdb_catalog.event_log WHERE id = 'hasura-old'") == "t"
        # the taken-over tables go into pg_dump as ours do (registered, members)
        assert c.scalar("SELECT count(*) FROM pg_extension, unnest(extconfig) x WHERE extname = 'hasura_events' "
                        "AND x::regclass::text LIKE 'hdb_catalog.%'") == "2"


# The catalog of an early Hasura v2 source (as init_pg_source.sql first made it): one index per
# column instead of the claim index, invocation logs without trigger_name and with a foreign key
# to the events.
EARLY_CATALOG_SQL = """
CREATE SCHEMA hdb_catalog;
CREATE FUNCTION hdb_catalog.gen_hasura_uuid() RETURNS uuid LANGUAGE sql AS 'select gen_random_uuid()';
CREATE TABLE hdb_catalog.event_log (
    id TEXT DEFAULT hdb_catalog.gen_hasura_uuid() PRIMARY KEY, schema_name TEXT NOT NULL, table_name TEXT NOT NULL,
    trigger_name TEXT NOT NULL, payload JSONB NOT NULL, delivered BOOLEAN NOT NULL DEFAULT FALSE,
    error BOOLEAN NOT NULL DEFAULT FALSE, tries INTEGER NOT NULL DEFAULT 0, created_at TIMESTAMP DEFAULT NOW(),
    locked TIMESTAMPTZ, next_retry_at TIMESTAMP, archived BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX ON hdb_catalog.event_log (trigger_name);
CREATE INDEX ON hdb_catalog.event_log (locked);
CREATE INDEX ON hdb_catalog.event_log (delivered);
CREATE INDEX ON hdb_catalog.event_log (created_at);
CREATE TABLE hdb_catalog.event_invocation_logs (
    id TEXT DEFAULT hdb_catalog.gen_hasura_uuid() PRIMARY KEY, event_id TEXT, status INTEGER, request JSON,
    response JSON, created_at TIMESTAMP DEFAULT NOW(),
    FOREIGN KEY (event_id) REFERENCES hdb_catalog.event_log (id));
CREATE INDEX ON hdb_catalog.event_invocation_logs (event_id);
INSERT INTO hdb_catalog.event_log (id, schema_name, table_name, trigger_name, payload, created_at)
VALUES ('early-1', 'public', 'users', 'user_signup',
        '{"op": "INSERT", "data": {"old": null, "new": {"id": 9, "email": "e@example.com", "name": "E"}}}', NULL);
INSERT INTO hdb_catalog.event_invocation_logs (id, event_id, status) VALUES ('early-inv', 'early-1', 500);
"""


@test
def takeover_of_an_early_hasura_v2_catalog():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE DATABASE fresh")
        c.psql("CREATE EXTENSION hasura_events", "fresh")
        c.psql(EARLY_CATALOG_SQL + APP_TABLES_SQL)
        c.psql("CREATE EXTENSION hasura_events")
        # the same columns (trigger_name added last), indexes and constraints as a fresh install
        assert sorted(c.psql(TABLE_SHAPE_SQL)) == sorted(c.psql(TABLE_SHAPE_SQL, "fresh")), c.psql(TABLE_SHAPE_SQL)
        assert c.psql("SELECT id, created_at IS NOT NULL FROM hdb_catalog.event_log") == [["early-1", "t"]]
        assert c.psql("SELECT id, event_id, trigger_name FROM hdb_catalog.event_invocation_logs") == [
            ["early-inv", "early-1", ""]]
        env.start_sidecar()
        metadata(c, {"type": "replace_metadata", "args": METADATA})
        wait_for(lambda: delivered_ids(env.receiver) == ["early-1"], what="the early backlog delivered")
        c.psql("INSERT INTO users VALUES (1, 'a@example.com', 'A')")
        wait_for(lambda: len(env.receiver.requests()) == 2, what="a new event delivered")
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs "
                                  "WHERE trigger_name = 'user_signup'") == "2", what="their invocation logs")


@test
def takeover_refuses_a_catalog_it_cannot_convert():
    with Env() as env:
        c = env.cluster
        c.psql("CREATE SCHEMA hdb_catalog; CREATE VIEW hdb_catalog.event_log AS SELECT 1 AS id")
        p = subprocess.run(c.psql_command(), input="CREATE EXTENSION hasura_events", capture_output=True, text=True)
        assert p.returncode != 0 and "hdb_catalog.event_log exists and is not a table" in p.stderr, p.stderr
        assert c.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'hasura_events'") == "0"
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_log") == "1"


def main(argv):
    return run_suite("hasura", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
