-- 01_api_create: pg_create_event_trigger and the other plain API functions, success paths.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE TABLE public.orders (id int PRIMARY KEY, status text, amount numeric, note text);
CREATE TABLE public.customers (id int PRIMARY KEY, name text);

-- The pg triggers of a table: name, level, operation, enabled state, arguments.
CREATE FUNCTION public.pg_triggers_of(tbl regclass)
RETURNS TABLE (tgname name, level text, op text, tgenabled "char", args text)
LANGUAGE sql AS $$
    SELECT tg.tgname,
           CASE WHEN tg.tgtype & 1 = 1 THEN 'ROW' ELSE 'STATEMENT' END,
           CASE WHEN tg.tgtype & 4 = 4 THEN 'INSERT' WHEN tg.tgtype & 8 = 8 THEN 'DELETE'
                WHEN tg.tgtype & 16 = 16 THEN 'UPDATE' END,
           tg.tgenabled,
           replace(encode(tg.tgargs, 'escape'), '\000', ' | ')
    FROM pg_trigger tg WHERE tg.tgrelid = tbl AND NOT tg.tgisinternal ORDER BY tg.tgname
$$;

-- Every argument: table as an object, webhook with a template, all three operations,
-- column lists and payload lists, enable_manual, explicit retry_conf, headers of both kinds.
SELECT hasura_events.metadata($$
{"type": "pg_create_event_trigger",
 "args": {"name": "orders_all",
          "table": {"schema": "public", "name": "orders"},
          "source": "default",
          "webhook": "https://{{ORDERS_HOST}}/hook",
          "insert": {"columns": "*"},
          "update": {"columns": ["status", "amount"], "payload": ["id", "status"]},
          "delete": {"columns": "*", "payload": "*"},
          "enable_manual": true,
          "retry_conf": {"num_retries": 3, "interval_sec": 15, "timeout_sec": 30},
          "headers": [{"name": "X-Api-Key", "value": "secret"},
                      {"name": "Authorization", "value_from_env": "ORDERS_TOKEN"}],
          "replace": false,
          "trigger_on_replication": false}}
$$);

-- The stored definition, normalized (payload defaults to "*", retry_conf complete).
SELECT name, schema_name, table_name, source, webhook, webhook_from_env, insert_spec, update_spec,
       delete_spec, enable_manual, num_retries, interval_sec, timeout_sec, headers, trigger_on_replication
FROM hasura_events.event_triggers WHERE name = 'orders_all';
SELECT jsonb_pretty(definition) FROM hasura_events.event_triggers WHERE name = 'orders_all';
SELECT * FROM pg_triggers_of('orders');

-- Table as a bare string (schema public), webhook_from_env, retry_conf defaults, one operation.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "customers-insert", "table": "customers", "webhook_from_env": "CUSTOMERS_WEBHOOK",
           "insert": {"columns": "*"}}}');
SELECT name, schema_name, table_name, webhook, webhook_from_env, num_retries, interval_sec, timeout_sec, headers,
       definition
FROM hasura_events.event_triggers WHERE name = 'customers-insert';
SELECT * FROM pg_triggers_of('customers');

-- Null-valued optional arguments are the same as missing ones; retry_conf partly given.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "customers_nulls", "table": {"name": "customers"}, "webhook": "http://localhost:8080/x",
           "webhook_from_env": null, "update": {"columns": ["name"], "payload": null}, "delete": null,
           "headers": null, "retry_conf": {"num_retries": 5}, "enable_manual": null,
           "request_transform": null, "cleanup_config": null}}');
SELECT definition FROM hasura_events.event_triggers WHERE name = 'customers_nulls';

-- Only enable_manual: no pg trigger at all.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "manual_only", "table": "customers", "webhook": "http://localhost/m", "enable_manual": true}}');
SELECT * FROM pg_triggers_of('customers');

-- replace: queued events stay; operations removed from the definition stop firing.
INSERT INTO orders VALUES (1, 'new', 10, 'a');
UPDATE orders SET status = 'paid' WHERE id = 1;
SELECT payload->>'op' AS op, count(*) FROM hdb_catalog.event_log WHERE trigger_name = 'orders_all'
GROUP BY 1 ORDER BY 1;
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "orders_all", "table": {"schema": "public", "name": "orders"}, "webhook": "https://example.com/v2",
           "insert": {"columns": "*"}, "replace": true}}');
SELECT webhook, update_spec, delete_spec, enable_manual, num_retries, headers
FROM hasura_events.event_triggers WHERE name = 'orders_all';
SELECT * FROM pg_triggers_of('orders');
UPDATE orders SET status = 'shipped' WHERE id = 1;
DELETE FROM orders WHERE id = 1;
INSERT INTO orders VALUES (2, 'new', 20, 'b');
-- the two events from before the replace are still queued, and only the INSERT fired since
SELECT payload->>'op' AS op, count(*), bool_and(NOT archived AND NOT delivered) AS queued
FROM hdb_catalog.event_log WHERE trigger_name = 'orders_all' GROUP BY 1 ORDER BY 1;

-- replace of a trigger that does not exist yet simply creates it.
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "orders_new", "table": "orders", "webhook": "https://example.com/n",
           "delete": {"columns": "*"}, "replace": true}}');
SELECT * FROM pg_triggers_of('orders');

-- trigger_on_replication: row-level pg triggers set ENABLE ALWAYS (tgenabled = 'A').
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "orders_repl", "table": "orders", "webhook": "https://example.com/r",
           "insert": {"columns": "*"}, "update": {"columns": "*"}, "trigger_on_replication": true}}');
SELECT * FROM pg_triggers_of('orders') WHERE tgname LIKE '%repl%';
-- and replacing it without trigger_on_replication goes back to ordinary statement-level triggers
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "orders_repl", "table": "orders", "webhook": "https://example.com/r",
           "insert": {"columns": "*"}, "replace": true}}');
SELECT * FROM pg_triggers_of('orders') WHERE tgname LIKE '%repl%';

-- source: any string is accepted and stored (one database is one source).
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger",
  "args": {"name": "orders_src", "table": "orders", "source": "my_source", "webhook": "https://example.com/s",
           "insert": {"columns": "*"}}}');
SELECT name, source, definition->'source' FROM hasura_events.event_triggers WHERE name = 'orders_src';

-- Longest allowed name: 42 characters; its pg trigger names fit in 63 bytes.
SELECT hasura_events.metadata(jsonb_build_object('type', 'pg_create_event_trigger', 'args',
  jsonb_build_object('name', 'A' || repeat('b', 40) || 'Z', 'table', 'orders', 'webhook', 'http://h/',
                     'update', '{"columns": "*"}'::jsonb)));
SELECT tgname, length(tgname) FROM pg_triggers_of('orders') WHERE tgname LIKE '%Abbb%';

-- bulk: one answer per request, in order; nested bulk works too.
SELECT jsonb_pretty(hasura_events.metadata('{"type": "bulk", "args": [
  {"type": "pg_create_event_trigger", "args": {"name": "bulk_a", "table": "customers",
     "webhook": "http://h/a", "delete": {"columns": "*"}}},
  {"type": "pg_create_event_trigger", "args": {"name": "bulk_b", "table": "customers",
     "webhook": "http://h/b", "delete": {"columns": "*"}}},
  {"type": "bulk", "args": [{"type": "pg_delete_event_trigger", "args": {"name": "bulk_a"}}]},
  {"type": "pg_get_event_logs", "args": {"name": "bulk_b"}}
]}'));
SELECT name FROM hasura_events.event_triggers WHERE name LIKE 'bulk%' ORDER BY name;
-- bulk is atomic: one failing request undoes the ones before it.
SELECT try_md('{"type": "bulk", "args": [
  {"type": "pg_create_event_trigger", "args": {"name": "bulk_c", "table": "customers",
     "webhook": "http://h/c", "delete": {"columns": "*"}}},
  {"type": "pg_delete_event_trigger", "args": {"name": "no_such_trigger"}}]}');
SELECT count(*) AS bulk_c_exists FROM hasura_events.event_triggers WHERE name = 'bulk_c';
-- An empty bulk answers an empty array; the metadata envelope's version/source keys are accepted.
SELECT hasura_events.metadata('{"type": "bulk", "args": []}');
SELECT hasura_events.metadata('{"type": "pg_delete_event_trigger", "version": 1, "source": "default",
                                "resource_version": 7, "args": {"name": "bulk_b", "source": "default"}}');

-- The plain functions behind metadata().
SELECT hasura_events.create_event_trigger('{"name": "plain_fn", "table": "customers", "webhook": "http://h/p",
                                            "insert": {"columns": "*"}, "enable_manual": true}');
INSERT INTO customers VALUES (1, 'Ann');
SELECT jsonb_array_length(hasura_events.get_event_logs('plain_fn')) AS all_events,
       jsonb_array_length(hasura_events.get_event_logs('plain_fn', 'pending')) AS pending,
       jsonb_array_length(hasura_events.get_event_logs('plain_fn', 'processed')) AS processed,
       hasura_events.get_event_invocation_logs('plain_fn') AS invocations;
SELECT hasura_events.invoke_event_trigger('plain_fn', '{"id": 99}') ? 'event_id' AS answers_event_id;
SELECT hasura_events.redeliver_event(e.id) FROM hdb_catalog.event_log e
WHERE e.trigger_name = 'plain_fn' AND e.payload->>'op' = 'INSERT';
SELECT (hasura_events.get_event_by_id(e.id) -> 'event' ->> 'trigger_name') AS by_id FROM hdb_catalog.event_log e
WHERE e.trigger_name = 'plain_fn' AND e.payload->>'op' = 'MANUAL';
SELECT hasura_events.delete_event_trigger('plain_fn');
-- delete: the definition and its pg triggers are gone, its events are archived, not deleted
SELECT count(*) AS definitions FROM hasura_events.event_triggers WHERE name = 'plain_fn';
SELECT * FROM pg_triggers_of('customers') WHERE tgname LIKE '%plain%';
SELECT payload->>'op' AS op, archived FROM hdb_catalog.event_log WHERE trigger_name = 'plain_fn' ORDER BY 1;
-- and a trigger of the same name can be created again (its new events are not archived)
SELECT hasura_events.create_event_trigger('{"name": "plain_fn", "table": "customers", "webhook": "http://h/p",
                                            "insert": {"columns": "*"}}');
INSERT INTO customers VALUES (2, 'Bob');
SELECT payload->'data'->'new'->>'name' AS name, archived FROM hdb_catalog.event_log
WHERE trigger_name = 'plain_fn' AND payload->>'op' = 'INSERT' ORDER BY 1;

-- Overview of everything defined so far.
SELECT name, schema_name, table_name, insert_spec IS NOT NULL AS ins, update_spec IS NOT NULL AS upd,
       delete_spec IS NOT NULL AS del, enable_manual, trigger_on_replication
FROM hasura_events.event_triggers ORDER BY name;
