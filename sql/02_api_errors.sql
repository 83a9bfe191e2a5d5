-- 02_api_errors: every refusal of the API, with its SQLSTATE, message and hint. After each
-- failure the counts show that nothing was written.
SET TimeZone = 'UTC';

CREATE TABLE public.err_tbl (id int PRIMARY KEY, a text, b int);
CREATE VIEW public.err_view AS SELECT * FROM public.err_tbl;
CREATE SEQUENCE public.err_seq;
CREATE SCHEMA "Other Schema";
CREATE TABLE "Other Schema"."Mixed" (id int);

-- A valid create request patched by a test: keys of patch replace the base ones, keys in drop
-- are removed.
CREATE FUNCTION public.mk(patch jsonb DEFAULT '{}', drop_keys text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_build_object('type', 'pg_create_event_trigger', 'args',
        ('{"name": "err_ok", "table": {"schema": "public", "name": "err_tbl"}, "webhook": "http://h/",
           "insert": {"columns": "*"}}'::jsonb || patch) - drop_keys)
$$;

-- fails: the error of a request, then the state the tests check is unchanged.
CREATE FUNCTION public.fails(request jsonb) RETURNS text
LANGUAGE sql AS $$
    SELECT public.try_md(request) || E'\n-- state: '
        || (SELECT count(*) FROM hasura_events.event_triggers) || ' event triggers, '
        || (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure) || ' pg triggers, '
        || (SELECT count(*) FROM hdb_catalog.event_log) || ' events'
$$;

-- The state before: what 01_api_create left.
SELECT (SELECT count(*) FROM hasura_events.event_triggers) AS event_triggers,
       (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure) AS pg_triggers,
       (SELECT count(*) FROM hdb_catalog.event_log) AS events;

-- The base request is valid (checked in a rolled-back transaction).
BEGIN;
SELECT hasura_events.metadata(mk());
ROLLBACK;

\pset format unaligned
\pset tuples_only on

\echo '== request envelope'
SELECT fails('[]');
SELECT fails('"pg_create_event_trigger"');
SELECT fails(NULL);
SELECT fails('{"args": {}}');
SELECT fails('{"type": null, "args": {}}');
SELECT fails('{"type": 42, "args": {}}');
SELECT fails('{"type": "pg_drop_everything", "args": {}}');
SELECT fails('{"type": "run_sql", "args": {"sql": "select 1"}}');
SELECT fails('{"type": "pg_create_event_trigger", "args": {}, "extra": 1}');
SELECT fails('{"type": "pg_create_event_trigger"}');
SELECT fails('{"type": "pg_create_event_trigger", "args": [1]}');
SELECT fails('{"type": "bulk", "args": {"type": "pg_get_event_logs"}}');
SELECT fails('{"type": "bulk", "args": [{"type": "nope"}]}');

\echo '== the order and wording of Hasura (tests-py create_trigger_operation_specs_not_provided_err.yaml, create_trigger_illegal_name_err.yaml)'
-- no operation is refused for that, before the webhook (there is none) and the table are looked at
SELECT fails('{"type": "pg_create_event_trigger", "args": {"name": "t1_1", "table": {"schema": "public", "name": "err_tbl"}}}');
SELECT fails('{"type": "pg_create_event_trigger", "args": {"name": "t1_1", "table": {"schema": "public", "name": "no_such_table"}}}');
-- an illegal name is refused for that, before the webhook (there is none)
SELECT fails('{"type": "pg_create_event_trigger", "args": {"name": "bad''name", "table": {"schema": "public", "name": "err_tbl"}, "enable_manual": true}}');
-- the pattern is checked before the length
SELECT fails(mk('{"name": "A234567890123456789012345678901234567890123."}'));
-- the webhook before the column lists, the column lists' form before the table
SELECT fails(mk('{"update": {"columns": []}}', '{webhook}'));
SELECT fails(mk('{"update": {"columns": []}, "table": "no_such_table"}'));

\echo '== name'
SELECT fails(mk('{"name": ""}'));
SELECT fails(mk('{"name": "A234567890123456789012345678901234567890123"}'));
SELECT fails(mk('{"name": "1orders"}'));
SELECT fails(mk('{"name": "_orders"}'));
SELECT fails(mk('{"name": "orders trigger"}'));
SELECT fails(mk('{"name": "orders.trigger"}'));
SELECT fails(mk('{"name": "ordérs"}'));
SELECT fails(mk('{"name": 42}'));
SELECT fails(mk('{"name": null}'));
SELECT fails(mk('{}', '{name}'));

\echo '== table'
SELECT fails(mk('{"table": {"schema": "public", "name": "no_such_table"}}'));
SELECT fails(mk('{"table": {"schema": "no_such_schema", "name": "err_tbl"}}'));
SELECT fails(mk('{"table": "ERR_TBL"}'));
SELECT fails(mk('{"table": {"schema": "other schema", "name": "Mixed"}}'));
SELECT fails(mk('{"table": "err_view"}'));
SELECT fails(mk('{"table": "err_seq"}'));
SELECT fails(mk('{"table": {"schema": "pg_catalog", "name": "pg_class"}}'));
-- the extension's own tables: a trigger there would turn every delivery into new events
SELECT fails(mk('{"table": {"schema": "hdb_catalog", "name": "event_log"}}'));
SELECT fails(mk('{"table": {"schema": "hdb_catalog", "name": "event_invocation_logs"}}'));
SELECT fails(mk('{"table": {"schema": "hasura_events", "name": "event_triggers"}}'));
SELECT fails(mk('{"table": 42}'));
SELECT fails(mk('{"table": ["public", "err_tbl"]}'));
SELECT fails(mk('{"table": {"schema": "public"}}'));
SELECT fails(mk('{"table": {"schema": 1, "name": "err_tbl"}}'));
SELECT fails(mk('{"table": {"schema": "public", "name": "err_tbl", "tablename": "x"}}'));
SELECT fails(mk('{}', '{table}'));
SELECT fails(mk('{"table": null}'));

\echo '== source'
SELECT fails(mk('{"source": 1}'));

\echo '== webhook and webhook_from_env'
SELECT fails(mk('{}', '{webhook}'));
SELECT fails(mk('{"webhook_from_env": "HOOK"}'));
SELECT fails(mk('{"webhook": null, "webhook_from_env": null}'));
SELECT fails(mk('{"webhook": 42}'));
SELECT fails(mk('{"webhook": ""}'));
SELECT fails(mk('{"webhook": "ftp://example.com/x"}'));
SELECT fails(mk('{"webhook": "example.com/hook"}'));
SELECT fails(mk('{"webhook": "http://"}'));
SELECT fails(mk('{"webhook": "http://example.com/a b"}'));
SELECT fails(mk('{"webhook": "http://example.com/\nx"}'));
SELECT fails(mk('{"webhook": "{{BASE_URL/hook"}'));
SELECT fails(mk('{"webhook": "http://{{HOST}}/{{PATH"}'));
SELECT fails(mk('{"webhook": "http://example.com/}}"}'));
SELECT fails(mk('{"webhook": "{{}}/hook"}'));
SELECT fails(mk('{"webhook": "{{1HOST}}/hook"}'));
SELECT fails(mk('{"webhook": "{{HASURA_GRAPHQL_ADMIN_SECRET}}"}'));
-- at most 8192 bytes (a URL of 8193 and one of 1 MiB)
SELECT fails(mk(jsonb_build_object('webhook', 'http://example.com/' || repeat('a', 8193 - 19))));
SELECT fails(mk(jsonb_build_object('webhook', 'http://example.com/' || repeat('a', 1048576))));
SELECT fails(mk('{"webhook_from_env": "", "webhook": null}'));
SELECT fails(mk('{"webhook_from_env": "1HOOK", "webhook": null}'));
SELECT fails(mk('{"webhook_from_env": "MY-HOOK", "webhook": null}'));
SELECT fails(mk('{"webhook_from_env": "HASURA_GRAPHQL_DATABASE_URL", "webhook": null}'));
SELECT fails(mk('{"webhook_from_env": ["HOOK"], "webhook": null}'));

\echo '== operations'
SELECT fails(mk('{}', '{insert}'));
SELECT fails(mk('{"insert": null, "update": null, "delete": null, "enable_manual": false}'));
SELECT fails(mk('{"insert": true}'));
SELECT fails(mk('{"insert": "*"}'));
SELECT fails(mk('{"insert": {}}'));
SELECT fails(mk('{"insert": {"payload": "*"}}'));
SELECT fails(mk('{"insert": {"columns": "*", "filter": {}}}'));
SELECT fails(mk('{"update": {"columns": []}}'));
SELECT fails(mk('{"update": {"columns": "*", "payload": []}}'));
SELECT fails(mk('{"update": {"columns": "id"}}'));
SELECT fails(mk('{"update": {"columns": "all"}}'));
SELECT fails(mk('{"update": {"columns": {"a": 1}}}'));
SELECT fails(mk('{"update": {"columns": [1]}}'));
SELECT fails(mk('{"update": {"columns": [null]}}'));
SELECT fails(mk('{"update": {"columns": ["a", "nope"]}}'));
SELECT fails(mk('{"update": {"columns": ["A"]}}'));
SELECT fails(mk('{"delete": {"columns": "*", "payload": ["id", "nope"]}}'));
SELECT fails(mk('{"update": {"columns": ["a", "b", "a"]}}'));
SELECT fails(mk('{"update": {"columns": "*", "payload": ["id", "id"]}}'));
SELECT fails(mk('{"update": {"columns": ["ctid"]}}'));
SELECT fails(mk('{"update": {"columns": ["........pg.dropped.2........"]}}'));

\echo '== enable_manual, replace, trigger_on_replication'
SELECT fails(mk('{"enable_manual": "true"}'));
SELECT fails(mk('{"enable_manual": 1}'));
SELECT fails(mk('{"replace": "yes"}'));
SELECT fails(mk('{"trigger_on_replication": 1}'));

\echo '== retry_conf'
SELECT fails(mk('{"retry_conf": 3}'));
SELECT fails(mk('{"retry_conf": [3]}'));
SELECT fails(mk('{"retry_conf": {"num_retries": "3"}}'));
SELECT fails(mk('{"retry_conf": {"num_retries": -1}}'));
SELECT fails(mk('{"retry_conf": {"num_retries": 1.5}}'));
SELECT fails(mk('{"retry_conf": {"num_retries": 2147483648}}'));
SELECT fails(mk('{"retry_conf": {"num_retries": true}}'));
SELECT fails(mk('{"retry_conf": {"interval_sec": -5}}'));
SELECT fails(mk('{"retry_conf": {"interval_sec": "10"}}'));
SELECT fails(mk('{"retry_conf": {"timeout_sec": 0}}'));
SELECT fails(mk('{"retry_conf": {"num_retries": 1, "retries": 2}}'));
SELECT fails(mk('{"retry_conf": {"tolerance_sec": 21600}}'));

\echo '== headers'
SELECT fails(mk('{"headers": {"name": "X-A", "value": "1"}}'));
SELECT fails(mk('{"headers": "X-A: 1"}'));
SELECT fails(mk('{"headers": ["X-A"]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value": "1", "value_from_env": "A"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A"}]}'));
SELECT fails(mk('{"headers": [{"value": "1"}]}'));
SELECT fails(mk('{"headers": [{"name": "", "value": "1"}]}'));
SELECT fails(mk('{"headers": [{"name": "X A", "value": "1"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A:", "value": "1"}]}'));
SELECT fails(mk('{"headers": [{"name": 7, "value": "1"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value": 1}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value": null}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value": "a\r\nX-Injected: 1"}]}'));
SELECT fails(mk('{"headers": [{"name": "Host", "value": "evil.example"}]}'));
SELECT fails(mk(jsonb_build_object('headers', jsonb_build_array(jsonb_build_object('name', 'X-A', 'value', repeat('v', 8193))))));
SELECT fails(mk('{"headers": [{"name": "content-length", "value": "0"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value_from_env": "HASURA_GRAPHQL_ADMIN_SECRET"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value_from_env": "A B"}]}'));
SELECT fails(mk('{"headers": [{"name": "X-A", "value": "1"}, {"name": "X-B", "valeu": "2"}]}'));

\echo '== unknown and not yet supported arguments'
SELECT fails(mk('{"nmae": "x"}'));
SELECT fails(mk('{"cascade": true}'));
SELECT fails(mk('{"request_transform": {"template_engine": "Kriti", "body": "{{$body}}"}}'));
SELECT fails(mk('{"response_transform": {"body": "{{$body}}"}}'));
SELECT fails(mk('{"cleanup_config": {"schedule": "0 0 * * *", "clear_older_than": 168}}'));
SELECT fails(mk('{"cleanup_config": {}}'));

\echo '== existing trigger: duplicate name, replace onto another table'
SELECT hasura_events.metadata(mk('{"name": "err_exists"}'));
SELECT fails(mk('{"name": "err_exists"}'));
SELECT fails(mk('{"name": "err_exists", "replace": false}'));
SELECT fails(mk('{"name": "err_exists", "replace": true, "table": {"schema": "Other Schema", "name": "Mixed"}}'));
-- the name is case-sensitive: Err_Exists is another trigger
SELECT try_md(mk('{"name": "Err_Exists"}'));
-- a failed replace leaves the old definition and its pg trigger in place
SELECT fails(mk('{"name": "err_exists", "replace": true, "update": {"columns": ["nope"]}}'));
SELECT name, insert_spec, update_spec FROM hasura_events.event_triggers WHERE name = 'err_exists';
SELECT tgname FROM pg_trigger WHERE tgrelid = 'err_tbl'::regclass AND NOT tgisinternal ORDER BY 1;

\echo '== the other requests'
SELECT fails('{"type": "pg_delete_event_trigger", "args": {"name": "no_such"}}');
SELECT fails('{"type": "pg_delete_event_trigger", "args": {}}');
SELECT fails('{"type": "pg_delete_event_trigger", "args": {"name": "err_exists", "cascade": true}}');
SELECT fails('{"type": "pg_delete_event_trigger", "args": "err_exists"}');
SELECT fails('{"type": "pg_invoke_event_trigger", "args": {"name": "err_exists", "payload": {"id": 1}}}');
SELECT fails('{"type": "pg_invoke_event_trigger", "args": {"name": "no_such", "payload": {"id": 1}}}');
SELECT fails('{"type": "pg_invoke_event_trigger", "args": {"name": "err_exists"}}');
SELECT fails('{"type": "pg_invoke_event_trigger", "args": {"name": "err_exists", "payload": {}, "op": "INSERT"}}');
SELECT fails('{"type": "pg_redeliver_event", "args": {"event_id": "00000000-0000-0000-0000-000000000000"}}');
SELECT fails('{"type": "pg_redeliver_event", "args": {"event_id": 1}}');
SELECT fails('{"type": "pg_redeliver_event", "args": {"id": "x"}}');
SELECT fails('{"type": "pg_get_event_by_id", "args": {"event_id": "no-such-event"}}');
SELECT fails('{"type": "pg_get_event_by_id", "args": {"event_id": "x", "invocation_log_limit": -1}}');
SELECT fails('{"type": "pg_get_event_by_id", "args": {"event_id": "x", "limit": 1}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "no_such"}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "status": "failed"}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "status": 1}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "limit": -1}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "limit": "10"}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "offset": 0.5}}');
SELECT fails('{"type": "pg_get_event_logs", "args": {"name": "err_exists", "page": 2}}');
SELECT fails('{"type": "pg_get_event_invocation_logs", "args": {"name": "no_such"}}');
SELECT fails('{"type": "pg_get_event_invocation_logs", "args": {"name": "err_exists", "offset": -3}}');
SELECT fails('{"type": "pg_get_event_invocation_logs", "args": {"name": "err_exists", "status": "all"}}');

\echo '== the plain functions refuse the same way'
SELECT try_sql($$SELECT hasura_events.create_event_trigger('{"name": "9x", "table": "err_tbl", "webhook": "http://h/", "insert": {"columns": "*"}}')::text$$);
SELECT try_sql($$SELECT hasura_events.create_event_trigger(NULL)::text$$);
SELECT try_sql($$SELECT hasura_events.delete_event_trigger('no_such')::text$$);
SELECT try_sql($$SELECT hasura_events.invoke_event_trigger('err_exists', '{}')::text$$);
SELECT try_sql($$SELECT hasura_events.redeliver_event('no-such-event')::text$$);
SELECT try_sql($$SELECT hasura_events.get_event_by_id('no-such-event')::text$$);
SELECT try_sql($$SELECT hasura_events.get_event_logs('no_such')::text$$);
SELECT try_sql($$SELECT hasura_events.get_event_logs('err_exists', 'done')::text$$);
SELECT try_sql($$SELECT hasura_events.get_event_invocation_logs('no_such')::text$$);
SELECT try_sql($$SELECT hasura_events.get_event_invocation_logs('err_exists', -1)::text$$);

\pset format aligned
\pset tuples_only off

-- Clean up what this file created.
SELECT hasura_events.delete_event_trigger('err_exists'), hasura_events.delete_event_trigger('Err_Exists');
SELECT (SELECT count(*) FROM hasura_events.event_triggers) AS event_triggers,
       (SELECT count(*) FROM pg_trigger WHERE tgfoid = 'hasura_events.capture()'::regprocedure) AS pg_triggers,
       (SELECT count(*) FROM hdb_catalog.event_log) AS events;
