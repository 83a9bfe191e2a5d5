-- 07_capture_ddl: DDL on tables with event triggers, and dropping the extension (last file).
SET TimeZone = 'UTC';
TRUNCATE hdb_catalog.event_log;

-- Dropping a table removes its event-trigger definitions and archives their events.
CREATE TABLE public.ddl_drop (id int PRIMARY KEY, v text);
SELECT hasura_events.create_event_trigger('{"name": "ddl_drop_a", "table": "ddl_drop", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "ddl_drop_b", "table": "ddl_drop", "webhook": "http://h/",
  "insert": {"columns": "*"}, "enable_manual": true}');
INSERT INTO ddl_drop VALUES (1, 'a'), (2, 'b');
SELECT trigger_name, count(*), bool_or(archived) AS any_archived FROM hdb_catalog.event_log GROUP BY 1 ORDER BY 1;
DROP TABLE ddl_drop;
SELECT count(*) AS definitions FROM hasura_events.event_triggers WHERE name LIKE 'ddl_drop%';
SELECT trigger_name, count(*), bool_and(archived) AS all_archived FROM hdb_catalog.event_log GROUP BY 1 ORDER BY 1;
SELECT try_md('{"type": "pg_invoke_event_trigger", "args": {"name": "ddl_drop_b", "payload": {}}}');
-- ... also when the whole schema is dropped, and in a transaction that is rolled back nothing changes
CREATE SCHEMA ddl_s;
CREATE TABLE ddl_s.t1 (id int);
SELECT hasura_events.create_event_trigger('{"name": "ddl_s_t1", "table": {"schema": "ddl_s", "name": "t1"},
  "webhook": "http://h/", "insert": {"columns": "*"}}');
INSERT INTO ddl_s.t1 VALUES (1);
BEGIN;
DROP SCHEMA ddl_s CASCADE;
ROLLBACK;
SELECT name, (SELECT bool_and(NOT archived) FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_s_t1') AS events_live
FROM hasura_events.event_triggers WHERE name = 'ddl_s_t1';
DROP SCHEMA ddl_s CASCADE;
SELECT count(*) AS definitions FROM hasura_events.event_triggers WHERE name = 'ddl_s_t1';
SELECT bool_and(archived) AS archived FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_s_t1';
-- a temporary table of the same name as a listened table does not touch its definitions
CREATE TABLE public.ddl_keep (id int);
SELECT hasura_events.create_event_trigger('{"name": "ddl_keep", "table": "ddl_keep", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
CREATE TEMP TABLE ddl_keep (id int);
DROP TABLE pg_temp.ddl_keep;
SELECT name FROM hasura_events.event_triggers WHERE name = 'ddl_keep';
-- dropping a partition keeps the parent's event triggers
CREATE TABLE public.ddl_parts (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE public.ddl_parts_1 PARTITION OF ddl_parts FOR VALUES FROM (0) TO (10);
CREATE TABLE public.ddl_parts_2 PARTITION OF ddl_parts FOR VALUES FROM (10) TO (20);
SELECT hasura_events.create_event_trigger('{"name": "ddl_parts", "table": "ddl_parts", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
DROP TABLE ddl_parts_1;
ALTER TABLE ddl_parts DETACH PARTITION ddl_parts_2;
INSERT INTO ddl_parts_2 VALUES (1, 15);
CREATE TABLE public.ddl_parts_3 PARTITION OF ddl_parts FOR VALUES FROM (20) TO (30);
INSERT INTO ddl_parts VALUES (2, 25);
SELECT name FROM hasura_events.event_triggers WHERE name = 'ddl_parts';
SELECT tgrelid::regclass, tgname FROM pg_trigger WHERE tgname LIKE 'hasura_events_ddl_parts%' ORDER BY 1::text;
SELECT table_name, payload->'data'->'new' AS new, archived FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_parts';
TRUNCATE hdb_catalog.event_log;

-- Renames: the definition follows the table (RENAME, SET SCHEMA, and renaming the schema).
CREATE TABLE public.ddl_old_name (id int PRIMARY KEY, v text);
SELECT hasura_events.create_event_trigger('{"name": "ddl_rename", "table": "ddl_old_name", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": ["v"]}}');
ALTER TABLE ddl_old_name RENAME TO "DDL New Name";
SELECT schema_name, table_name, definition->'table' AS def_table FROM hasura_events.event_triggers WHERE name = 'ddl_rename';
CREATE SCHEMA ddl_moved;
ALTER TABLE "DDL New Name" SET SCHEMA ddl_moved;
SELECT schema_name, table_name, definition->'table' AS def_table FROM hasura_events.event_triggers WHERE name = 'ddl_rename';
ALTER SCHEMA ddl_moved RENAME TO "DDL Moved";
SELECT schema_name, table_name, definition->'table' AS def_table FROM hasura_events.event_triggers WHERE name = 'ddl_rename';
INSERT INTO "DDL Moved"."DDL New Name" VALUES (1, 'x');
UPDATE "DDL Moved"."DDL New Name" SET v = 'y';
DELETE FROM "DDL Moved"."DDL New Name";
SELECT schema_name, table_name, payload->>'op' AS op, payload->'data'->'new' AS new
FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_rename' ORDER BY created_at, id;
-- replace works against the new name (and refuses the old one)
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "ddl_rename", "table": "ddl_old_name",
  "webhook": "http://h/", "insert": {"columns": "*"}, "replace": true}}');
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "ddl_rename",
  "table": {"schema": "DDL Moved", "name": "DDL New Name"}, "webhook": "http://h/", "insert": {"columns": "*"},
  "update": {"columns": ["v"]}, "replace": true}}');
TRUNCATE hdb_catalog.event_log;

-- Dependent columns: a column an event trigger names (update.columns, or any payload list)
-- cannot be dropped (Hasura: dependency-error), also with CASCADE, through DROP TYPE ... CASCADE
-- and with session_replication_role = replica; "*" lists follow the table. RENAME COLUMN is
-- followed by the definitions and their pg triggers; ALTER COLUMN TYPE keeps working. No write
-- of the table fails at any point.
CREATE FUNCTION public.try_ddl(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text;
BEGIN
    EXECUTE stmt;
    RETURN 'OK';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
    RETURN 'ERROR ' || st || ': ' || msg
        || CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
        || CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END
$$;
-- writes: an INSERT, an UPDATE of every row and a DELETE of one row of ddl_cols; any failure shows
CREATE FUNCTION public.ddl_cols_writes(new_id int) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('INSERT INTO ddl_cols (id) VALUES (%s)', new_id);
    EXECUTE format('UPDATE ddl_cols SET id = id + 100 WHERE id = %s', new_id);
    EXECUTE 'UPDATE ddl_cols SET id = id';
    EXECUTE format('DELETE FROM ddl_cols WHERE id = %s', new_id + 100);
    RETURN 'writes OK';
END
$$;
CREATE TABLE public.ddl_cols (id int PRIMARY KEY, a text, b text, c text, d text, e text);
SELECT hasura_events.create_event_trigger('{"name": "ddl_cols", "table": "ddl_cols", "webhook": "http://h/",
  "insert": {"columns": "*", "payload": ["id", "a"]}, "update": {"columns": ["b"]},
  "delete": {"columns": "*", "payload": ["id", "d"]}}');
SELECT hasura_events.create_event_trigger('{"name": "ddl_cols_all", "table": "ddl_cols", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}, "delete": {"columns": "*"}}');
INSERT INTO ddl_cols VALUES (1, 'a', 'b', 'c', 'd', 'e');
\pset format unaligned
\pset tuples_only on
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN b');
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN a');
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN d CASCADE');
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN a, DROP COLUMN b, DROP COLUMN d');
CREATE DOMAIN public.ddl_dom AS text;
ALTER TABLE ddl_cols ADD COLUMN f ddl_dom;
SELECT hasura_events.create_event_trigger('{"name": "ddl_cols_f", "table": "ddl_cols", "webhook": "http://h/",
  "update": {"columns": ["f"]}}')::text;
SELECT try_ddl('DROP DOMAIN ddl_dom CASCADE');
SET session_replication_role = replica;
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN b');
RESET session_replication_role;
SELECT ddl_cols_writes(2);
-- a column no list names can be dropped: "*" lists follow the table
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN c');
SELECT hasura_events.delete_event_trigger('ddl_cols_f')::text;
SELECT try_ddl('DROP DOMAIN ddl_dom CASCADE');
SELECT ddl_cols_writes(3);
-- renames are followed: the definition, its normalized copy and the pg triggers' arguments
SELECT try_ddl('ALTER TABLE ddl_cols RENAME COLUMN b TO b_renamed');
SELECT try_ddl('ALTER TABLE ddl_cols RENAME COLUMN a TO "A Renamed"');
SELECT try_ddl('ALTER TABLE ddl_cols RENAME d TO d2');
SELECT name, insert_spec, update_spec, delete_spec,
       definition->'insert' = insert_spec AND definition->'update' = update_spec AND definition->'delete' = delete_spec
FROM hasura_events.event_triggers WHERE name LIKE 'ddl_cols%' ORDER BY name;
SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'ddl_cols'::regclass AND tgname LIKE 'hasura_events_ddl_cols\_%' ORDER BY tgname;
SELECT ddl_cols_writes(4);
UPDATE ddl_cols SET b_renamed = 'b2' WHERE id = 1;
-- the renamed columns still cannot be dropped
SELECT try_ddl('ALTER TABLE ddl_cols DROP COLUMN b_renamed');
-- ALTER COLUMN TYPE keeps working, also for a listed column
SELECT try_ddl('ALTER TABLE ddl_cols ALTER COLUMN id TYPE bigint, ALTER COLUMN b_renamed TYPE varchar(20)');
SELECT try_ddl('ALTER TABLE ddl_cols ALTER COLUMN "A Renamed" TYPE int USING length("A Renamed")');
SELECT ddl_cols_writes(5);
\pset format aligned
\pset tuples_only off
-- the events of those writes, with the names of the time
SELECT trigger_name, payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log
WHERE trigger_name = 'ddl_cols' ORDER BY created_at, id;
SELECT payload->>'op' AS op, count(*) FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_cols_all' GROUP BY 1 ORDER BY 1;
TRUNCATE hdb_catalog.event_log;
-- inheritance: a rename on the parent reaches the event trigger of the child; a drop is refused
CREATE TABLE public.ddl_par (id int, x text);
CREATE TABLE public.ddl_chi () INHERITS (ddl_par);
SELECT hasura_events.create_event_trigger('{"name": "ddl_chi", "table": "ddl_chi", "webhook": "http://h/",
  "update": {"columns": ["x"], "payload": ["x"]}}');
INSERT INTO ddl_chi VALUES (1, 'x1');
ALTER TABLE ddl_par RENAME COLUMN x TO y;
SELECT update_spec FROM hasura_events.event_triggers WHERE name = 'ddl_chi';
\pset format unaligned
\pset tuples_only on
SELECT try_ddl('ALTER TABLE ddl_par DROP COLUMN y');
\pset format aligned
\pset tuples_only off
UPDATE ddl_par SET y = 'y1';
SELECT payload->'data' AS data FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_chi';
TRUNCATE hdb_catalog.event_log;
-- a table owner who is not a superuser: the same refusal, the same renames
SET ROLE regress_he_admin_owner;
CREATE TABLE public.ddl_owned (id int PRIMARY KEY, v text, w text);
SELECT hasura_events.create_event_trigger('{"name": "ddl_owned", "table": "ddl_owned", "webhook": "http://h/",
  "update": {"columns": ["v"]}}');
\pset format unaligned
\pset tuples_only on
SELECT try_ddl('ALTER TABLE ddl_owned DROP COLUMN v');
SELECT try_ddl('ALTER TABLE ddl_owned RENAME COLUMN v TO v2');
SELECT try_ddl('ALTER TABLE ddl_owned DROP COLUMN w');
SELECT try_ddl('ALTER TABLE ddl_owned RENAME TO ddl_owned2');
\pset format aligned
\pset tuples_only off
INSERT INTO ddl_owned2 VALUES (1, 'a');
UPDATE ddl_owned2 SET v2 = 'b';
RESET ROLE;
SELECT table_name, payload->'data' AS data FROM hdb_catalog.event_log WHERE trigger_name = 'ddl_owned';
SELECT hasura_events.delete_event_trigger('ddl_owned');
DROP TABLE ddl_owned2, ddl_chi, ddl_par;
TRUNCATE hdb_catalog.event_log;

-- DROP EXTENSION without CASCADE is refused while event triggers exist.
\set VERBOSITY terse
DROP EXTENSION hasura_events;
\set VERBOSITY default
SELECT count(*) > 0 AS pg_triggers_exist FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure;

-- DROP EXTENSION CASCADE removes everything it made: pg triggers, schemas, DDL hooks.
SET client_min_messages = warning;
DROP EXTENSION hasura_events CASCADE;
RESET client_min_messages;
SELECT count(*) AS pg_triggers_left FROM pg_trigger WHERE tgname LIKE 'hasura_events\_%';
-- Both schemas are gone: the install script creates them, so they are members of the extension.
SELECT n.nspname, (SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid)
                  + (SELECT count(*) FROM pg_proc p WHERE p.pronamespace = n.oid)
                  + (SELECT count(*) FROM pg_type t WHERE t.typnamespace = n.oid) AS objects
FROM pg_namespace n WHERE n.nspname IN ('hasura_events', 'hdb_catalog') ORDER BY 1;
SELECT count(*) AS ddl_hooks_left FROM pg_event_trigger WHERE evtname LIKE 'hasura_events%';
SELECT count(*) AS functions_left FROM pg_proc WHERE proname IN ('capture', '_on_sql_drop', '_on_ddl_end', 'metadata');
-- the tables themselves stay and can be written, dropped and renamed without the extension
INSERT INTO items VALUES (1000, 'after drop extension', 1, NULL);
UPDATE priv_admin_tbl SET v = 'after drop extension';
ALTER TABLE ddl_cols RENAME TO ddl_cols_renamed;
DROP TABLE ddl_keep, ddl_cols_renamed;
-- the admin role is cluster-wide and outlives the extension (drop it by hand if unused)
SELECT rolname FROM pg_roles WHERE rolname = 'hasura_events_admin';

-- The extension can be created again, empty.
SET client_min_messages = warning;
CREATE EXTENSION hasura_events;
RESET client_min_messages;
SELECT (SELECT count(*) FROM hasura_events.event_triggers) AS event_triggers,
       (SELECT count(*) FROM hdb_catalog.event_log) AS events;
SELECT hasura_events.create_event_trigger('{"name": "again", "table": "items", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
INSERT INTO items VALUES (1001, 'after create extension', 1, NULL);
SELECT trigger_name, payload->'data'->'new'->>'id' AS id FROM hdb_catalog.event_log;

-- Clean up roles (their objects first).
DROP EXTENSION hasura_events CASCADE;
DROP OWNED BY regress_he_owner, regress_he_admin_owner, regress_he_admin, regress_he_writer;
DROP ROLE regress_he_owner, regress_he_admin_owner, regress_he_admin, regress_he_writer;
