-- 09_metadata: Hasura's whole-metadata requests (export_metadata, replace_metadata,
-- reload_metadata, clear_metadata) and the v1/query names, in a database of their own (a
-- replace_metadata replaces every event trigger of its database).
SET client_min_messages = warning;
CREATE DATABASE md_regress;
\c md_regress
SET client_min_messages = warning;
CREATE EXTENSION hasura_events;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE FUNCTION try_md(request jsonb) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text; r text;
BEGIN
    r := hasura_events.metadata(request)::text;
    RETURN 'OK ' || r;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
    RETURN 'ERROR ' || st || ': ' || msg
        || CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
        || CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END
$$;
-- the state a refused request must leave as it was
CREATE FUNCTION md_state() RETURNS text
LANGUAGE sql AS $$
    SELECT (SELECT count(*) FROM hasura_events.event_triggers) || ' event triggers ('
        || coalesce((SELECT string_agg(name || ':' || table_name, ',' ORDER BY name) FROM hasura_events.event_triggers), '')
        || '), ' || (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure) || ' pg triggers, '
        || (SELECT count(*) FROM hdb_catalog.event_log WHERE archived) || ' archived events'
$$;
CREATE FUNCTION export() RETURNS jsonb
LANGUAGE sql AS $$ SELECT hasura_events.metadata('{"type": "export_metadata", "args": {}}') $$;

CREATE TABLE md_users (id int PRIMARY KEY, email text, name text);
CREATE TABLE md_orders (id int PRIMARY KEY, user_id int REFERENCES md_users (id), status text, total numeric);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int PRIMARY KEY, amount numeric);

-- No event triggers: no sources.
SELECT export();

-- export_metadata shows each trigger as Hasura exports it: an operation's payload only when one
-- was given; retry_conf complete when none was given, timeout_sec left out when a retry_conf
-- without it was given; headers only when there are any; trigger_on_replication only when true;
-- enable_manual always (pg_create_event_trigger sets it). Sources, tables and triggers sorted.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {
    "name": "orders_changed", "table": {"schema": "public", "name": "md_orders"}, "webhook": "https://example.com/orders",
    "insert": {"columns": "*"}, "update": {"columns": ["status"], "payload": ["id", "status"]}, "delete": {"columns": "*", "payload": "*"},
    "headers": [{"name": "X-Key", "value_from_env": "ORDERS_KEY"}, {"name": "X-Plain", "value": "v"}],
    "retry_conf": {"num_retries": 2, "interval_sec": 15}}}');
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {
    "name": "a_signup", "table": "md_users", "webhook_from_env": "SIGNUP_URL", "insert": {"columns": "*"}, "headers": []}}');
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {
    "name": "invoice_manual", "table": {"schema": "billing", "name": "invoices"}, "source": "billing_db",
    "webhook": "https://example.com/inv", "enable_manual": true, "trigger_on_replication": true,
    "retry_conf": {"num_retries": 0, "interval_sec": 10, "timeout_sec": 5}}}');
SELECT jsonb_pretty(export());

-- Round trip: what export_metadata answers, applied with replace_metadata, changes nothing and
-- exports the same (the triggers are left as they are: not even recreated).
CREATE TEMP TABLE before AS SELECT name, updated_at FROM hasura_events.event_triggers;
SELECT hasura_events.metadata(jsonb_build_object('type', 'replace_metadata', 'args', export())) AS answer;
SELECT export() = (SELECT hasura_events.metadata(jsonb_build_object('type', 'export_metadata', 'args', '{}'::jsonb))) AS same,
       (SELECT bool_and(b.updated_at = t.updated_at) FROM before b JOIN hasura_events.event_triggers t USING (name)) AS untouched;

-- replace_metadata makes the database match: triggers not in the metadata are deleted (their
-- events archived), changed ones replaced (their events kept), new ones created. The parts it
-- has no use for are accepted and named in "ignored".
INSERT INTO md_orders VALUES (1, NULL, 'new', 1);
INSERT INTO billing.invoices VALUES (1, 10);
SELECT hasura_events.invoke_event_trigger('invoice_manual', '{"id": 1}') IS NOT NULL AS invoked;
SELECT trigger_name, count(*), bool_or(archived) AS archived FROM hdb_catalog.event_log GROUP BY 1 ORDER BY 1;
SELECT jsonb_pretty(hasura_events.metadata('{"type": "replace_metadata", "args": {
  "version": 3,
  "sources": [{"name": "default", "kind": "postgres",
    "configuration": {"connection_info": {"database_url": {"from_env": "HASURA_GRAPHQL_DATABASE_URL"}}},
    "tables": [
      {"table": {"schema": "public", "name": "md_orders"},
       "object_relationships": [{"name": "user", "using": {"foreign_key_constraint_on": "user_id"}}],
       "select_permissions": [{"role": "user", "permission": {"columns": ["id"], "filter": {}}}],
       "event_triggers": [{"name": "orders_changed", "definition": {"enable_manual": false, "update": {"columns": "*"}},
                           "retry_conf": {"num_retries": 1, "interval_sec": 3, "timeout_sec": 9},
                           "webhook": "https://example.com/orders2"}]},
      {"table": "md_users",
       "array_relationships": [{"name": "orders", "using": {"foreign_key_constraint_on": {"column": "user_id", "table": "md_orders"}}}],
       "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": ["email"]}},
                           "retry_conf": {"num_retries": 0, "interval_sec": 10}, "webhook": "https://example.com/u"}]}]}],
  "actions": [{"name": "a", "definition": {"handler": "http://x"}}],
  "remote_schemas": [],
  "cron_triggers": [{"name": "c", "webhook": "http://x", "schedule": "* * * * *"}]
}}'));
SELECT md_state();
SELECT trigger_name, count(*), bool_or(archived) AS archived FROM hdb_catalog.event_log GROUP BY 1 ORDER BY 1;
-- an imported definition without enable_manual is exported without it, as Hasura does
SELECT jsonb_pretty(export());
SELECT tgname, tgrelid::regclass FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure ORDER BY 1;

-- Version 1 and 2 metadata (tables at the top, one source "default") are taken too.
SELECT hasura_events.metadata('{"type": "replace_metadata", "args": {"version": 2, "tables": [
    {"table": {"schema": "public", "name": "md_users"},
     "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": ["email"]}},
                         "retry_conf": {"num_retries": 0, "interval_sec": 10}, "webhook": "https://example.com/u"}]}]}}');
SELECT md_state();

-- The {"metadata", "allow_inconsistent_metadata"} form. With allow_inconsistent_metadata a trigger
-- that cannot be created is left out and listed; the others are applied.
SELECT jsonb_pretty(hasura_events.metadata('{"type": "replace_metadata", "version": 2, "args": {
  "allow_inconsistent_metadata": true,
  "metadata": {"version": 3, "sources": [{"name": "default", "kind": "postgres", "tables": [
    {"table": {"schema": "public", "name": "md_users"},
     "event_triggers": [{"name": "new_user", "definition": {"enable_manual": false, "insert": {"columns": "*"}},
                         "retry_conf": {"num_retries": 0, "interval_sec": 10, "timeout_sec": 60}, "webhook": "https://example.com/u"}]},
    {"table": {"schema": "public", "name": "gone"},
     "event_triggers": [{"name": "on_gone", "definition": {"enable_manual": false, "insert": {"columns": "*"}},
                         "retry_conf": {"num_retries": 0, "interval_sec": 10, "timeout_sec": 60}, "webhook": "https://example.com/g"}]}]}]}}}'));
SELECT md_state();
-- without it, the same form answers as version 1 does
SELECT hasura_events.metadata(jsonb_build_object('type', 'replace_metadata', 'args',
    jsonb_build_object('allow_inconsistent_metadata', false, 'metadata', export())));

-- Refused requests change nothing and say why; a bad trigger in an import is named.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "keep_me", "table": "md_orders",
    "webhook": "https://example.com/k", "delete": {"columns": "*"}}}');
SELECT md_state();
SELECT try_md('{"type": "import_everything", "args": {}}');
SELECT try_md('{"type": "replace_metadata", "args": []}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 4, "sources": []}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": {}}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [], "graphql_engine": {}}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [{"event_triggers": []}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]},
    {"table": "md_orders", "event_triggers": [{"name": "bad one", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}');
SELECT md_state();
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]},
    {"table": {"schema": "public", "name": "missing_table"},
     "event_triggers": [{"name": "on_missing", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": ["nope"]}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/",
      "request_transform": {"version": 2, "template_engine": "Kriti", "url": "{{$base_url}}/x"}}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "new_user", "definition": {"insert": {"columns": "*"}, "truncate": {}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
    {"table": "md_users", "event_triggers": [{"name": "twice", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]},
    {"table": "md_orders", "event_triggers": [{"name": "twice", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [
    {"name": "default", "tables": [{"table": "md_users", "event_triggers": [{"name": "e1", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]},
    {"name": "analytics", "tables": [{"table": "md_orders", "event_triggers": [{"name": "e2", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"version": 3, "sources": [
    {"name": "mssql", "kind": "mssql", "tables": [{"table": {"schema": "dbo", "name": "t"}, "event_triggers": [{"name": "e3", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}');
SELECT try_md('{"type": "replace_metadata", "args": {"metadata": {"version": 3, "sources": []}, "allow_inconsistent_metadata": "yes"}}');
SELECT try_md('{"type": "export_metadata", "version": 2, "args": {}}');
SELECT try_md('{"type": "export_metadata", "args": {"all": true}}');
SELECT md_state();

-- A source with tables but no event triggers in another database is fine (nothing to do there).
SELECT hasura_events.metadata('{"type": "replace_metadata", "args": {"version": 3, "sources": [
    {"name": "default", "tables": [{"table": "md_orders", "event_triggers": [{"name": "keep_me", "definition": {"enable_manual": false, "delete": {"columns": "*"}},
       "retry_conf": {"num_retries": 0, "interval_sec": 10, "timeout_sec": 60}, "webhook": "https://example.com/k"}]}]},
    {"name": "reporting", "kind": "mssql", "tables": [{"table": {"schema": "dbo", "name": "r"}, "select_permissions": [{"role": "r", "permission": {}}]}]}]}}');
SELECT md_state();

-- reload_metadata: the pg triggers recreated from the definitions; the answer as Hasura's.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "new_user", "table": "md_users",
    "webhook": "https://example.com/u", "insert": {"columns": "*"}}}');
DROP TRIGGER hasura_events_new_user_insert ON md_users;
SELECT hasura_events.metadata('{"type": "reload_metadata", "args": {}}');
SELECT count(*) AS insert_trigger FROM pg_trigger WHERE tgname = 'hasura_events_new_user_insert';
SELECT hasura_events.metadata('{"type": "reload_metadata", "args": {"recreate_event_triggers": ["elsewhere"]}}');
SELECT count(*) AS insert_trigger FROM pg_trigger WHERE tgname = 'hasura_events_new_user_insert';
SELECT hasura_events.metadata('{"type": "reload_metadata", "args": {"reload_remote_schemas": true, "reload_sources": false, "recreate_event_triggers": true}}');
SELECT count(*) AS insert_trigger FROM pg_trigger WHERE tgname = 'hasura_events_new_user_insert';
INSERT INTO md_users VALUES (1, 'a@example.com', 'A');
SELECT count(*) AS new_user_events FROM hdb_catalog.event_log WHERE trigger_name = 'new_user';
SELECT try_md('{"type": "reload_metadata", "args": {"recreate_event_triggers": "yes"}}');
SELECT try_md('{"type": "reload_metadata", "args": {"recreate_triggers": true}}');

-- The v1/query names: the pg_ requests without source (v1 knows one database).
SELECT hasura_events.metadata('{"type": "create_event_trigger", "args": {"name": "v1_trigger", "table": {"schema": "public", "name": "md_users"},
    "webhook": "https://example.com/v1", "update": {"columns": ["name"]}, "enable_manual": true, "replace": false}}');
SELECT jsonb_pretty(hasura_events._export_trigger(t)) FROM hasura_events.event_triggers t WHERE name = 'v1_trigger';
SELECT try_md('{"type": "create_event_trigger", "args": {"name": "v1_other", "table": "md_users", "source": "default",
    "webhook": "https://example.com/v1", "insert": {"columns": "*"}}}');
SELECT try_md('{"type": "create_event_trigger", "args": {"name": "v1_other", "table": "md_users", "trigger_on_replication": true,
    "webhook": "https://example.com/v1", "insert": {"columns": "*"}}}');
SELECT (hasura_events.metadata('{"type": "invoke_event_trigger", "args": {"name": "v1_trigger", "payload": {"id": 7}}}') ->> 'event_id') IS NOT NULL AS invoked;
SELECT payload FROM hdb_catalog.event_log WHERE trigger_name = 'v1_trigger';
SELECT try_md('{"type": "invoke_event_trigger", "args": {"name": "v1_trigger", "payload": {}, "source": "default"}}');
UPDATE hdb_catalog.event_log SET error = true, tries = 1 WHERE trigger_name = 'v1_trigger';
SELECT hasura_events.metadata(jsonb_build_object('type', 'redeliver_event', 'args',
    jsonb_build_object('event_id', (SELECT id FROM hdb_catalog.event_log WHERE trigger_name = 'v1_trigger'))));
SELECT error, tries FROM hdb_catalog.event_log WHERE trigger_name = 'v1_trigger';
SELECT try_md('{"type": "redeliver_event", "args": {"event_id": "no-such-event"}}');
SELECT hasura_events.metadata('{"type": "delete_event_trigger", "args": {"name": "v1_trigger"}}');
SELECT try_md('{"type": "delete_event_trigger", "args": {"name": "v1_trigger"}}');
SELECT try_md('{"type": "delete_event_trigger", "args": {"name": "keep_me", "source": "default"}}');

-- clear_metadata: every event trigger deleted, their events archived (kept).
SELECT md_state();
SELECT hasura_events.metadata('{"type": "clear_metadata", "args": {}}');
SELECT md_state();
SELECT count(*) FILTER (WHERE NOT archived) AS not_archived FROM hdb_catalog.event_log;
SELECT export();
SELECT try_md('{"type": "clear_metadata", "args": {"sources": []}}');

-- Everything in one bulk request is all or nothing too.
SELECT try_md('{"type": "bulk", "args": [
    {"type": "pg_create_event_trigger", "args": {"name": "in_bulk", "table": "md_users", "webhook": "https://example.com/b", "insert": {"columns": "*"}}},
    {"type": "replace_metadata", "args": {"version": 3, "sources": [{"name": "default", "tables": [
        {"table": "no_table", "event_triggers": [{"name": "x", "definition": {"insert": {"columns": "*"}}, "webhook": "http://x/"}]}]}]}}]}');
SELECT md_state();
