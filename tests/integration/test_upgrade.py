#!/usr/bin/env python3
"""tests/integration/test_upgrade.py

ALTER EXTENSION hasura_events UPDATE from the previous release: a database populated at 0.1.0
(trigger definitions, delivered events with their invocation logs, pending events) is upgraded,
keeps every row, delivers its backlog, and ends with exactly the objects a fresh install of the
current version has (functions, tables, columns, indexes, views, triggers, grants, policies).
The last line is "upgrade: N passed, N failed".
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import Cluster, Receiver, Sidecar, wait_for, run_suite  # noqa: E402

TESTS = []
PREVIOUS = "0.1.0"


def test(fn):
    TESTS.append(fn)
    return fn


def current_version(c):
    return c.scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'hasura_events'")


# The extension's objects, one line each, in a form that a fresh install and an upgraded one
# must share exactly.
OBJECTS_SQL = r"""
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'hasura_events'),
members AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
   WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'),
rels AS (SELECT c.oid, c.relkind FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid)
SELECT replace(line, E'\n', ' ') FROM (
  SELECT 'function ' || p.oid::regprocedure::text || ' ' || pg_get_functiondef(p.oid)
         || ' acl=' || coalesce(p.proacl::text, '-') AS line
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
   WHERE p.prokind IN ('f', 'p', 'w')
  UNION ALL
  SELECT 'aggregate ' || p.oid::regprocedure::text
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid WHERE p.prokind = 'a'
  UNION ALL
  SELECT 'relation ' || r.oid::regclass::text || ' kind=' || r.relkind::text || ' acl=' || coalesce(c.relacl::text, '-')
         || ' rls=' || c.relrowsecurity || ' ' || coalesce(c.reloptions::text, '')
    FROM rels r JOIN pg_class c ON c.oid = r.oid
  UNION ALL
  SELECT 'column ' || a.attrelid::regclass::text || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
         || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), '-')
         || ' acl=' || coalesce(a.attacl::text, '-') || ' num=' || a.attnum
    FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
    LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN rels r ON r.oid = i.indrelid
  UNION ALL
  SELECT 'constraint ' || con.conrelid::regclass::text || ' ' || con.conname || ' ' || pg_get_constraintdef(con.oid)
    FROM pg_constraint con JOIN rels r ON r.oid = con.conrelid
  UNION ALL
  SELECT 'view ' || r.oid::regclass::text || ' ' || pg_get_viewdef(r.oid) FROM rels r WHERE r.relkind IN ('v', 'm')
  UNION ALL
  SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
   WHERE NOT t.tgisinternal
  UNION ALL
  SELECT 'policy ' || pol.polrelid::regclass::text || ' ' || pol.polname || ' ' || pol.polcmd::text || ' '
         || coalesce(pg_get_expr(pol.polqual, pol.polrelid), '-') || ' '
         || coalesce(pg_get_expr(pol.polwithcheck, pol.polrelid), '-')
    FROM pg_policy pol JOIN rels r ON r.oid = pol.polrelid
  UNION ALL
  SELECT 'event trigger ' || e.evtname || ' ' || e.evtevent || ' ' || e.evtfoid::regproc::text || ' '
         || coalesce(e.evttags::text, '-') || ' ' || e.evtenabled::text
    FROM pg_event_trigger e JOIN members m ON m.classid = 'pg_event_trigger'::regclass AND m.objid = e.oid
  UNION ALL
  SELECT 'type ' || t.oid::regtype::text
    FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
  UNION ALL
  SELECT 'schema ' || n.nspname || ' acl=' || coalesce(n.nspacl::text, '-')
    FROM pg_namespace n JOIN members m ON m.classid = 'pg_namespace'::regclass AND m.objid = n.oid
  UNION ALL
  SELECT 'config ' || c.oid::regclass::text || ' ' || coalesce(cfg.cond, '')
    FROM pg_extension x, unnest(x.extconfig, x.extcondition) AS cfg(reloid, cond)
    JOIN pg_class c ON c.oid = cfg.reloid WHERE x.extname = 'hasura_events'
) o ORDER BY line
"""


def objects(c, db):
    return [r[0] for r in c.psql(OBJECTS_SQL, db)]


def populate(c, db, url):
    c.psql("CREATE TABLE orders (id int PRIMARY KEY, status text, note text);", db)
    for name, extra in (("orders_all", {"update": {"columns": ["status"]}, "delete": {"columns": "*"},
                                         "headers": [{"name": "X-Static", "value": "s"},
                                                     {"name": "X-Env", "value_from_env": "UPGRADE_TEST_SECRET"}],
                                         "retry_conf": {"num_retries": 2, "interval_sec": 1, "timeout_sec": 10}}),
                        ("orders_manual", {"enable_manual": True})):
        args = {"name": name, "table": {"schema": "public", "name": "orders"}, "webhook": url,
                "insert": {"columns": "*"}}
        args.update(extra)
        req = json.dumps({"type": "pg_create_event_trigger", "args": args})
        c.psql(f"SELECT hasura_events.metadata($${req}$$::jsonb)", db)


def snapshot(c, db):
    """Every row the upgrade must keep, as text."""
    return {
        "triggers": c.psql("SELECT to_jsonb(t) FROM hasura_events.event_triggers t ORDER BY name", db),
        "events": c.psql("SELECT id, trigger_name, payload::text, delivered, error, tries, archived, created_at "
                         "FROM hdb_catalog.event_log ORDER BY id", db),
        "invocations": c.psql("SELECT id, event_id, trigger_name, status, request::text, response::text, created_at "
                              "FROM hdb_catalog.event_invocation_logs ORDER BY id", db),
    }


@test
def upgrade_from_previous_release_keeps_everything_and_matches_a_fresh_install():
    c = Cluster()
    recv = Receiver()
    side = None
    try:
        version = current_version(c)
        assert version != PREVIOUS, f"the current version {version} must differ from {PREVIOUS}"
        c.psql("CREATE DATABASE fresh; CREATE DATABASE old;")
        c.psql("CREATE EXTENSION hasura_events", "fresh")
        c.psql(f"CREATE EXTENSION hasura_events VERSION '{PREVIOUS}'", "old")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'hasura_events'", "old") == PREVIOUS

        # history: delivered events with invocation logs
        populate(c, "old", recv.base + "/ok")
        side = Sidecar(c, env={"UPGRADE_TEST_SECRET": "secret"})
        c.psql("INSERT INTO orders SELECT g, 'new', 'n' FROM generate_series(1, 20) g;"
               "UPDATE orders SET status = 'paid' WHERE id <= 5;", "old")
        # 20 inserts for each of the two triggers and 5 updates of a listened column
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered", "old") == "45",
                 what="45 deliveries at the previous version")
        side.stop()
        side = None
        # a backlog: pending events and one dead event
        c.psql("INSERT INTO orders SELECT g, 'new', 'n' FROM generate_series(21, 40) g;"
               "DELETE FROM orders WHERE id = 1;"
               "UPDATE hdb_catalog.event_log SET error = true, tries = 3 "
               " WHERE id = (SELECT id FROM hdb_catalog.event_log WHERE NOT delivered ORDER BY id LIMIT 1);", "old")
        before = snapshot(c, "old")
        assert len(before["events"]) == 86 and len(before["invocations"]) == 45, \
            (len(before["events"]), len(before["invocations"]))

        c.psql("ALTER EXTENSION hasura_events UPDATE", "old")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'hasura_events'", "old") == version

        # nothing lost
        after = snapshot(c, "old")
        for key in ("events", "invocations"):
            assert after[key] == before[key], f"{key} changed by the upgrade"
        assert [json.loads(r[0])["name"] for r in after["triggers"]] == ["orders_all", "orders_manual"]
        for old_row, new_row in zip(before["triggers"], after["triggers"]):
            old_def, new_def = json.loads(old_row[0]), json.loads(new_row[0])
            for k, v in old_def.items():
                assert new_def.get(k) == v, (k, v, new_def.get(k))

        # the same objects as a fresh install
        fresh, upgraded = objects(c, "fresh"), objects(c, "old")
        missing = sorted(set(fresh) - set(upgraded))
        extra = sorted(set(upgraded) - set(fresh))
        assert not missing and not extra, "upgraded objects differ from a fresh install:\n  only fresh: " + \
            "\n  only fresh: ".join(missing) + "\n  only upgraded: " + "\n  only upgraded: ".join(extra)

        # the backlog and new writes are delivered after the upgrade
        side = Sidecar(c, env={"UPGRADE_TEST_SECRET": "secret"})
        c.psql("INSERT INTO orders VALUES (100, 'new', 'after upgrade')", "old")
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE NOT delivered AND NOT error",
                                  "old") == "0", timeout=30, what="the backlog delivered after the upgrade")
        ids = c.psql("SELECT id FROM hdb_catalog.event_log WHERE delivered", "old")
        assert len(ids) == 45 + 40 + 2, len(ids)  # history, the backlog but the dead one, the new row's 2
        received = {r["body"]["id"] for r in recv.requests()}
        assert {r[0] for r in ids} <= received
    finally:
        if side:
            side.stop()
        recv.stop()
        c.destroy()


if __name__ == "__main__":
    sys.exit(run_suite("upgrade", TESTS, sys.argv[1:]))
