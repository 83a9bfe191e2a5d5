-- 06_privileges: who may create event triggers and call the API; writers of a table with an
-- event trigger need no rights on the catalog; search_path cannot redirect capture.
SET TimeZone = 'UTC';
TRUNCATE hdb_catalog.event_log;

CREATE ROLE regress_he_owner LOGIN;          -- owns a table, not an admin
CREATE ROLE regress_he_admin_owner LOGIN;    -- owns a table, granted hasura_events_admin
CREATE ROLE regress_he_admin LOGIN;          -- admin, owns nothing
CREATE ROLE regress_he_writer LOGIN;         -- may write a table, nothing else
GRANT hasura_events_admin TO regress_he_admin_owner, regress_he_admin;
GRANT CREATE ON SCHEMA public TO regress_he_owner, regress_he_admin_owner;

-- Nothing is open to PUBLIC: schemas, tables, functions.
SELECT n.nspname, a.privilege_type,
       CASE WHEN a.grantee = n.nspowner THEN '(schema owner)' ELSE a.grantee::regrole::text END AS grantee
FROM pg_namespace n, aclexplode(n.nspacl) a
WHERE n.nspname IN ('hdb_catalog', 'hasura_events') ORDER BY 1, 3, 2;
SELECT count(*) AS public_table_grants
FROM pg_class c, aclexplode(c.relacl) a
WHERE c.relnamespace IN ('hdb_catalog'::regnamespace, 'hasura_events'::regnamespace) AND a.grantee = 0;
SELECT count(*) AS public_function_grants
FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
WHERE p.pronamespace = 'hasura_events'::regnamespace AND a.grantee = 0;
SELECT has_table_privilege('regress_he_writer', 'hdb_catalog.event_log', 'SELECT') AS writer_select,
       has_table_privilege('regress_he_writer', 'hdb_catalog.event_log', 'INSERT') AS writer_insert,
       has_schema_privilege('regress_he_writer', 'hdb_catalog', 'USAGE') AS writer_usage,
       has_function_privilege('regress_he_writer', 'hasura_events.metadata(jsonb)', 'EXECUTE') AS writer_execute,
       has_table_privilege('regress_he_admin', 'hdb_catalog.event_log', 'SELECT') AS admin_select,
       has_function_privilege('regress_he_admin', 'hasura_events.metadata(jsonb)', 'EXECUTE') AS admin_execute;

SET ROLE regress_he_owner;
CREATE TABLE public.priv_owner_tbl (id int PRIMARY KEY, v text);
RESET ROLE;
SET ROLE regress_he_admin_owner;
CREATE TABLE public.priv_admin_tbl (id int PRIMARY KEY, v text);
GRANT INSERT, UPDATE, SELECT ON public.priv_admin_tbl TO regress_he_writer;
RESET ROLE;

-- The owner of a table without the admin role cannot call the API at all.
SET ROLE regress_he_owner;
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_owner", "table": "priv_owner_tbl",
  "webhook": "http://h/", "insert": {"columns": "*"}}}');
SELECT try_sql($$SELECT hasura_events.create_event_trigger('{}')::text$$);
SELECT try_sql($$SELECT count(*) FROM hdb_catalog.event_log$$);
RESET ROLE;

-- An admin who does not own the table cannot create an event trigger on it.
SET ROLE regress_he_admin;
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_not_owner", "table": "priv_owner_tbl",
  "webhook": "http://h/", "insert": {"columns": "*"}}}');
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_not_owner", "table": "priv_admin_tbl",
  "webhook": "http://h/", "insert": {"columns": "*"}}}');
RESET ROLE;
SELECT count(*) AS event_triggers FROM hasura_events.event_triggers WHERE name LIKE 'priv%';

-- An admin who owns the table can, with every option.
SET ROLE regress_he_admin_owner;
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_admin",
  "table": "priv_admin_tbl", "webhook": "http://h/", "insert": {"columns": "*"}, "update": {"columns": ["v"]},
  "enable_manual": true}}');
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_admin_repl",
  "table": "priv_admin_tbl", "webhook": "http://h/", "delete": {"columns": "*"}, "trigger_on_replication": true}}');
SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger", "args": {"name": "priv_admin", "payload": {"by": "admin"}}}') ? 'event_id' AS invoked;
RESET ROLE;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'priv_admin_tbl'::regclass AND NOT tgisinternal ORDER BY 1;

-- Another admin cannot delete it (dropping the pg triggers needs the table's owner).
SET ROLE regress_he_admin;
SELECT try_md('{"type": "pg_delete_event_trigger", "args": {"name": "priv_admin_repl"}}');
RESET ROLE;

-- A plain writer of the table writes events without any right on hdb_catalog.
SET ROLE regress_he_writer;
INSERT INTO priv_admin_tbl VALUES (1, 'by writer');
UPDATE priv_admin_tbl SET v = 'updated by writer';
SELECT try_sql($$SELECT count(*) FROM hdb_catalog.event_log$$);
SELECT try_sql($$INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload) VALUES ('a', 'b', 'c', '{}') RETURNING id$$);
SELECT try_sql($$SELECT hasura_events.capture()::text$$);
RESET ROLE;
SELECT trigger_name, payload->>'op' AS op, payload->'data'->'new' AS new FROM hdb_catalog.event_log ORDER BY 1, 2;
TRUNCATE hdb_catalog.event_log;

-- A malicious search_path does not affect capture: a user-defined unnest, a look-alike
-- event_log and jsonb functions earlier in the path are never used.
CREATE SCHEMA evil AUTHORIZATION regress_he_writer;
SET ROLE regress_he_writer;
CREATE FUNCTION evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'evil.unnest called'; END $$;
CREATE FUNCTION evil.row_to_json(record) RETURNS json LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'evil.row_to_json called'; END $$;
CREATE FUNCTION evil.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT '00000000-0000-0000-0000-000000000000'::uuid $$;
CREATE TABLE evil.event_log (id text, schema_name text, table_name text, trigger_name text, payload jsonb);
GRANT USAGE ON SCHEMA evil TO PUBLIC;
GRANT ALL ON evil.event_log TO PUBLIC;
RESET ROLE;
SET ROLE regress_he_writer;
SET search_path = evil, pg_temp, public, pg_catalog;
CREATE TEMP TABLE event_log (id text, schema_name text, table_name text, trigger_name text, payload jsonb);
INSERT INTO priv_admin_tbl VALUES (2, 'with evil path');
INSERT INTO priv_admin_tbl SELECT g, 'bulk ' || g FROM generate_series(3, 1502) g;
SELECT (SELECT count(*) FROM evil.event_log) AS evil_rows, (SELECT count(*) FROM pg_temp.event_log) AS temp_rows;
RESET search_path;
RESET ROLE;
SELECT count(*) AS events, count(*) FILTER (WHERE id = '00000000-0000-0000-0000-000000000000') AS fake_ids,
       count(DISTINCT id) AS distinct_ids
FROM hdb_catalog.event_log WHERE trigger_name = 'priv_admin';
SELECT payload FROM hdb_catalog.event_log WHERE payload->'data'->'new'->>'id' = '2';
TRUNCATE hdb_catalog.event_log;

-- The admin role can be granted to others, and revoked.
GRANT hasura_events_admin TO regress_he_owner;
SET ROLE regress_he_owner;
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_owner", "table": "priv_owner_tbl",
  "webhook": "http://h/", "insert": {"columns": "*"}}}');
RESET ROLE;
REVOKE hasura_events_admin FROM regress_he_owner;
-- without the role the owner cannot use the API any more, but writing the table still records events
SET ROLE regress_he_owner;
SELECT try_md('{"type": "pg_get_event_logs", "args": {"name": "priv_owner"}}');
INSERT INTO priv_owner_tbl VALUES (1, 'after revoke');
-- and a non-admin owner can still drop or rename the table (the DDL hooks run as the extension owner)
ALTER TABLE priv_owner_tbl RENAME TO priv_owner_renamed;
RESET ROLE;
SELECT name, table_name FROM hasura_events.event_triggers WHERE name = 'priv_owner';
SET ROLE regress_he_owner;
DROP TABLE priv_owner_renamed;
RESET ROLE;
SELECT count(*) AS definitions_left FROM hasura_events.event_triggers WHERE name = 'priv_owner';
SELECT trigger_name, archived, payload->'data'->'new' AS new FROM hdb_catalog.event_log;
TRUNCATE hdb_catalog.event_log;

-- Clean up (priv_admin_tbl and its owner stay for the last test file).
DROP SCHEMA evil CASCADE;
