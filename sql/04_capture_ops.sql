-- 04_capture_ops: which row changes produce events, and the event object's fields.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- ev: the events of one trigger in a stable order (op, then the row's id, then the text).
CREATE FUNCTION public.ev(trigger text)
RETURNS TABLE (op text, data jsonb, session_variables jsonb, trace_context jsonb, table_ref text)
LANGUAGE sql AS $$
    SELECT e.payload->>'op', e.payload->'data', e.payload->'session_variables', e.payload->'trace_context',
           format('%I.%I', e.schema_name, e.table_name)
    FROM hdb_catalog.event_log e WHERE e.trigger_name = trigger
    ORDER BY e.payload->>'op',
             coalesce(e.payload->'data'->'new'->>'id', e.payload->'data'->'old'->>'id'),
             e.payload::text
$$;

CREATE TABLE public.items (id int PRIMARY KEY, name text, qty int, note text);
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "items_tr", "table": "items",
  "webhook": "http://h/", "insert": {"columns": "*"}, "update": {"columns": ["name", "qty"]},
  "delete": {"columns": "*", "payload": ["id", "name"]}}}');

-- The shape of each operation: old is null for INSERT, new is null for DELETE.
BEGIN;
INSERT INTO items VALUES (1, 'apple', 5, 'n1');
UPDATE items SET qty = 6 WHERE id = 1;
DELETE FROM items WHERE id = 1;
SELECT count(*) AS events, bool_and(created_at = now()) AS created_in_this_transaction
FROM hdb_catalog.event_log WHERE trigger_name = 'items_tr';
COMMIT;
SELECT jsonb_pretty(e.payload) FROM hdb_catalog.event_log e WHERE e.trigger_name = 'items_tr'
ORDER BY CASE e.payload->>'op' WHEN 'INSERT' THEN 1 WHEN 'UPDATE' THEN 2 ELSE 3 END;
SELECT schema_name, table_name, trigger_name, delivered, error, archived, tries, locked, next_retry_at,
       id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS id_is_uuid_v7
FROM hdb_catalog.event_log WHERE trigger_name = 'items_tr' ORDER BY payload->>'op';
TRUNCATE hdb_catalog.event_log;

-- UPDATE events only when a listened column (name, qty) changed.
INSERT INTO items VALUES (1, 'apple', 5, 'n1'), (2, 'pear', NULL, 'n2'), (3, NULL, 1, 'n3');
TRUNCATE hdb_catalog.event_log;
UPDATE items SET note = 'changed';                      -- not listened: no event
UPDATE items SET name = name, qty = qty;                -- no-op: no event
UPDATE items SET qty = 5 WHERE id = 1;                  -- same value: no event
UPDATE items SET name = 'apple', note = 'x' WHERE id = 1; -- same listened value, other column changed: no event
UPDATE items SET id = id;                               -- key rewritten to itself: no event
SELECT count(*) AS events_so_far FROM hdb_catalog.event_log;
UPDATE items SET qty = 7 WHERE id = 2;                  -- NULL -> 7
UPDATE items SET name = NULL WHERE id = 1;              -- 'apple' -> NULL
UPDATE items SET name = '' WHERE id = 3;                -- NULL -> '' (not the same)
UPDATE items SET id = 30 WHERE id = 3;                  -- unlisted column only: no event
SELECT op, data FROM ev('items_tr');
TRUNCATE hdb_catalog.event_log;

-- The delete payload list: only id and name in old.
DELETE FROM items WHERE id = 2;
SELECT op, data FROM ev('items_tr');
TRUNCATE hdb_catalog.event_log;

-- Multi-row statements: 3000 rows cross the internal flush of 1000 events several times.
INSERT INTO items SELECT g, 'item ' || g, g, NULL FROM generate_series(1001, 4000) g;
SELECT count(*) AS events, count(DISTINCT payload->'data'->'new'->>'id') AS distinct_rows,
       min((payload->'data'->'new'->>'id')::int), max((payload->'data'->'new'->>'id')::int),
       bool_and(payload->'data'->'new' = to_jsonb(i.*)) AS all_rows_exact
FROM hdb_catalog.event_log e JOIN items i ON i.id = (e.payload->'data'->'new'->>'id')::int
WHERE e.trigger_name = 'items_tr';
TRUNCATE hdb_catalog.event_log;
-- an UPDATE of 3000 rows where only every third changes a listened column
UPDATE items SET qty = CASE WHEN id % 3 = 0 THEN qty + 1 ELSE qty END, note = 'bulk' WHERE id > 1000;
SELECT count(*) AS events, bool_and((payload->'data'->'new'->>'id')::int % 3 = 0) AS only_changed_rows,
       bool_and((payload->'data'->'new'->>'qty')::int = (payload->'data'->'old'->>'qty')::int + 1) AS pairs_match
FROM hdb_catalog.event_log WHERE trigger_name = 'items_tr';
TRUNCATE hdb_catalog.event_log;
DELETE FROM items WHERE id > 1000;
SELECT count(*) AS events, count(DISTINCT payload->'data'->'old'->>'id') AS distinct_rows
FROM hdb_catalog.event_log WHERE trigger_name = 'items_tr';
TRUNCATE hdb_catalog.event_log;

-- Event rows are written in batches (table_multi_insert); a trigger someone put on event_log
-- makes capture insert them row by row instead, and it fires for every event. Here it writes to
-- a table with an event trigger of its own, so an event insert also runs inside another one (the
-- inner one prepares its own index predicates).
CREATE TABLE event_log_audit (id text);
SELECT hasura_events.create_event_trigger('{"name": "audit_tr", "table": "event_log_audit",
    "webhook": "http://127.0.0.1:1/", "insert": {"columns": "*"}}');
CREATE FUNCTION audit_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO event_log_audit VALUES (NEW.id); RETURN NULL; END $$;
CREATE TRIGGER audit AFTER INSERT ON hdb_catalog.event_log
    FOR EACH ROW WHEN (NEW.trigger_name = 'items_tr') EXECUTE FUNCTION audit_event();
INSERT INTO items SELECT g, 'item ' || g, g, NULL FROM generate_series(5001, 5300) g;
SELECT count(*) AS events, count(a.id) AS audited,
       bool_and(e.payload->'data'->'new' = to_jsonb(i.*)) AS all_rows_exact
FROM hdb_catalog.event_log e
JOIN items i ON i.id = (e.payload->'data'->'new'->>'id')::int
LEFT JOIN event_log_audit a ON a.id = e.id
WHERE e.trigger_name = 'items_tr';
SELECT trigger_name, count(*) FROM hdb_catalog.event_log GROUP BY 1 ORDER BY 1;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
-- through the claim index (pending events) and the trigger-name index (none: all pending)
SELECT jsonb_array_length(hasura_events.get_event_logs('audit_tr', 'pending', 1000)) AS audit_pending,
       jsonb_array_length(hasura_events.get_event_logs('items_tr', 'pending', 1000)) AS items_pending,
       jsonb_array_length(hasura_events.get_event_logs('items_tr', 'processed', 1000)) AS items_processed;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP TRIGGER audit ON hdb_catalog.event_log;
DROP FUNCTION audit_event();
SELECT hasura_events.delete_event_trigger('audit_tr');
DROP TABLE event_log_audit;
DELETE FROM items WHERE id > 5000;
TRUNCATE hdb_catalog.event_log;

-- Index predicates and expressions are prepared once and kept from statement to statement; an
-- index created or replaced in the middle of a session is written as its own definition says.
INSERT INTO items VALUES (6001, 'x', 1, NULL);
CREATE INDEX event_log_test_idx ON hdb_catalog.event_log (created_at) WHERE tries > 100;
INSERT INTO items SELECT g, 'y', g, NULL FROM generate_series(6002, 6004) g;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
-- read through the partial index alone (its predicate implies the WHERE clause): no entry
EXPLAIN (COSTS OFF) SELECT count(*) FROM hdb_catalog.event_log WHERE tries > 100;
SELECT count(*) AS entries_over_100 FROM hdb_catalog.event_log WHERE tries > 100;
DROP INDEX hdb_catalog.event_log_test_idx;
CREATE INDEX event_log_test_idx ON hdb_catalog.event_log (lower(trigger_name)) WHERE tries = 0;
INSERT INTO items SELECT g, 'z', g, NULL FROM generate_series(6005, 6006) g;
EXPLAIN (COSTS OFF) SELECT count(*) FROM hdb_catalog.event_log WHERE lower(trigger_name) = 'items_tr' AND tries = 0;
SELECT count(*) AS entries_for_items_tr FROM hdb_catalog.event_log WHERE lower(trigger_name) = 'items_tr' AND tries = 0;
SELECT jsonb_array_length(hasura_events.get_event_logs('items_tr', 'pending', 1000)) AS items_pending;
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX hdb_catalog.event_log_test_idx;
-- An index over a function of the whole row is not kept (a whole-row reference keeps memory of
-- the statement, and a function call checks permissions): each statement prepares it.
CREATE FUNCTION event_key(e hdb_catalog.event_log) RETURNS text LANGUAGE plpgsql IMMUTABLE
    AS $$ BEGIN RETURN e.trigger_name || '/' || e.tries; END $$;
CREATE INDEX event_log_test_row_idx ON hdb_catalog.event_log (event_key(event_log));
INSERT INTO items VALUES (6007, 'w', 1, NULL);
INSERT INTO items VALUES (6008, 'w', 1, NULL);
INSERT INTO items SELECT g, 'w', g, NULL FROM generate_series(6009, 6100) g;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) AS by_row_key FROM hdb_catalog.event_log e WHERE event_key(e) = 'items_tr/0';
RESET enable_seqscan;
RESET enable_bitmapscan;
DROP INDEX hdb_catalog.event_log_test_row_idx;
DROP FUNCTION event_key(hdb_catalog.event_log);
DELETE FROM items WHERE id > 6000;
TRUNCATE hdb_catalog.event_log;

-- INSERT ... ON CONFLICT DO UPDATE: an INSERT event for new rows, an UPDATE event for the
-- conflicting ones whose listened columns changed; DO NOTHING skips silently.
INSERT INTO items VALUES (1, 'a', 1, NULL), (50, 'fifty', 50, NULL), (2, 'pear', 7, NULL)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, qty = excluded.qty;
INSERT INTO items VALUES (50, 'other', 0, NULL) ON CONFLICT DO NOTHING;
SELECT op, data FROM ev('items_tr');
TRUNCATE hdb_catalog.event_log;

-- COPY and a writable CTE produce events like any other statement.
COPY items (id, name, qty) FROM stdin;
60	copied	6
61	copied too	\N
\.
WITH moved AS (DELETE FROM items WHERE id = 60 RETURNING *)
INSERT INTO items SELECT id + 100, name, qty, 'via cte' FROM moved;
SELECT op, data FROM ev('items_tr');
TRUNCATE hdb_catalog.event_log;

-- session_variables from hasura.user, trace_context from hasura.tracecontext. USER is a
-- reserved word, so SET needs it quoted (hasura."user"); set_config('hasura.user', ...) is what
-- applications (and Hasura) usually call.
BEGIN;
SET LOCAL hasura."user" = '{"x-hasura-role": "admin", "x-hasura-user-id": "42"}';
SET LOCAL hasura.tracecontext = '{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}';
INSERT INTO items VALUES (70, 'with session', 1, NULL);
COMMIT;
-- SET LOCAL is gone after the commit
INSERT INTO items VALUES (71, 'without session', 1, NULL);
-- an empty setting is null too
BEGIN;
SET LOCAL hasura."user" = '';
SET LOCAL hasura.tracecontext = '';
INSERT INTO items VALUES (72, 'empty settings', 1, NULL);
COMMIT;
-- set_config, transaction-local, and a session-level setting
BEGIN;
SELECT set_config('hasura.user', '{"x-hasura-role": "editor", "x-hasura-org": "ünï"}', true) IS NOT NULL AS set;
INSERT INTO items VALUES (73, 'set_config', 1, NULL);
COMMIT;
SET hasura."user" = '{"x-hasura-role": "user"}';
INSERT INTO items VALUES (74, 'session-level', 1, NULL);
RESET hasura."user";
INSERT INTO items VALUES (75, 'after reset', 1, NULL);
SELECT data->'new'->>'id' AS id, session_variables, trace_context FROM ev('items_tr');
TRUNCATE hdb_catalog.event_log;

-- Invalid JSON in the settings is refused with the write, with a clear message.
BEGIN;
SET LOCAL hasura."user" = '{x-hasura-role: admin}';
SELECT try_sql($$INSERT INTO items VALUES (80, 'bad', 1, NULL) RETURNING id$$);
SET LOCAL hasura."user" = '';
SET LOCAL hasura.tracecontext = 'not json';
SELECT try_sql($$UPDATE items SET qty = 99 WHERE id = 73 RETURNING id$$);
COMMIT;
SELECT count(*) AS events, (SELECT qty FROM items WHERE id = 73) AS qty_73,
       (SELECT count(*) FROM items WHERE id = 80) AS rows_80 FROM hdb_catalog.event_log;

-- A rolled-back transaction leaves no event.
BEGIN;
INSERT INTO items VALUES (90, 'rolled back', 1, NULL);
UPDATE items SET qty = 1000;
DELETE FROM items;
ROLLBACK;
SELECT count(*) AS events_after_rollback FROM hdb_catalog.event_log;

-- ROLLBACK TO SAVEPOINT drops the events of the rolled-back subtransaction only.
BEGIN;
INSERT INTO items VALUES (91, 'kept 1', 1, NULL);
SAVEPOINT s1;
INSERT INTO items VALUES (92, 'rolled back', 1, NULL);
UPDATE items SET qty = 2 WHERE id = 91;
SAVEPOINT s2;
INSERT INTO items VALUES (93, 'rolled back nested', 1, NULL);
ROLLBACK TO SAVEPOINT s1;
INSERT INTO items VALUES (94, 'kept 2', 1, NULL);
SAVEPOINT s3;
UPDATE items SET name = 'kept 2, renamed' WHERE id = 94;
RELEASE SAVEPOINT s3;
COMMIT;
SELECT op, data FROM ev('items_tr');
-- and a statement that fails inside a PL/pgSQL exception block leaves no event either
DO $$
BEGIN
    INSERT INTO items VALUES (95, 'will fail', 1, NULL), (95, 'duplicate', 1, NULL);
EXCEPTION WHEN unique_violation THEN
    RAISE NOTICE 'caught unique_violation';
END
$$;
SELECT count(*) AS events_for_95 FROM hdb_catalog.event_log WHERE payload->'data'->'new'->>'id' = '95';
TRUNCATE hdb_catalog.event_log;

-- Several event triggers on the same table, each with its own columns and payload.
SELECT hasura_events.metadata('{"type": "bulk", "args": [
  {"type": "pg_create_event_trigger", "args": {"name": "items_qty", "table": "items", "webhook": "http://h/",
     "update": {"columns": ["qty"], "payload": ["id", "qty"]}}},
  {"type": "pg_create_event_trigger", "args": {"name": "items_note", "table": "items", "webhook": "http://h/",
     "update": {"columns": ["note"]}, "insert": {"columns": "*", "payload": ["id"]}}}]}');
INSERT INTO items VALUES (100, 'multi', 1, NULL);
UPDATE items SET qty = 2 WHERE id = 100;
UPDATE items SET note = 'noted' WHERE id = 100;
UPDATE items SET name = 'renamed' WHERE id = 100;
SELECT trigger_name, payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log
ORDER BY trigger_name, op, payload::text;
TRUNCATE hdb_catalog.event_log;

-- Quoted, mixed-case and non-ASCII table and column names.
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Order Items" ("ID" int PRIMARY KEY, "ünïcode" text, "Mixed Case" int, "a""quote" text);
CREATE TABLE public."Ünïcödé_表" (id int, "列" text);
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "order_items",
  "table": {"schema": "Sales Dept", "name": "Order Items"}, "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": ["ünïcode", "a\"quote"], "payload": ["ID", "ünïcode", "a\"quote"]}}}');
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "unicode_table",
  "table": "Ünïcödé_表", "webhook": "http://h/", "insert": {"columns": "*"}, "update": {"columns": ["列"]}}}');
INSERT INTO "Sales Dept"."Order Items" VALUES (1, 'ä', 1, 'q');
UPDATE "Sales Dept"."Order Items" SET "Mixed Case" = 2;
UPDATE "Sales Dept"."Order Items" SET "a""quote" = 'q2';
INSERT INTO public."Ünïcödé_表" VALUES (1, '值');
UPDATE public."Ünïcödé_表" SET "列" = '新值';
SELECT trigger_name, schema_name, table_name, payload->>'op' AS op, payload->'data' AS data
FROM hdb_catalog.event_log ORDER BY trigger_name, op;
SELECT tgrelid::regclass, tgname FROM pg_trigger
WHERE tgfoid = 'hasura_events.capture()'::regprocedure AND tgrelid IN ('"Sales Dept"."Order Items"'::regclass, '"Ünïcödé_表"'::regclass)
ORDER BY 2;
TRUNCATE hdb_catalog.event_log;

-- A table in another schema, with the same name as one in public.
CREATE SCHEMA other;
CREATE TABLE other.items (id int PRIMARY KEY, name text);
SELECT hasura_events.create_event_trigger('{"name": "other_items", "table": {"schema": "other", "name": "items"},
  "webhook": "http://h/", "insert": {"columns": "*"}}');
INSERT INTO other.items VALUES (1, 'other');
INSERT INTO public.items VALUES (200, 'public', 1, NULL);
SELECT trigger_name, schema_name, table_name, payload->'data'->'new' AS new FROM hdb_catalog.event_log
ORDER BY trigger_name;
TRUNCATE hdb_catalog.event_log;

-- Partitioned tables: events name the parent, whichever partition the row is in and whether
-- the statement names the parent or the partition.
CREATE TABLE public.measures (id int, region text, v int) PARTITION BY LIST (region);
CREATE TABLE public.measures_eu PARTITION OF measures FOR VALUES IN ('eu');
CREATE TABLE public.measures_us PARTITION OF measures FOR VALUES IN ('us');
SELECT hasura_events.create_event_trigger('{"name": "measures_tr", "table": "measures", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": ["v", "region"]}, "delete": {"columns": "*"}}');
-- row-level pg triggers on the parent, cloned onto the partitions
SELECT tgrelid::regclass, tgname, tgtype & 1 = 1 AS row_level, tgparentid <> 0 AS cloned FROM pg_trigger
WHERE tgname LIKE 'hasura_events_measures_tr%' ORDER BY 1::text, 2;
INSERT INTO measures VALUES (1, 'eu', 10), (2, 'us', 20);
INSERT INTO measures_eu VALUES (3, 'eu', 30);
UPDATE measures SET v = 11 WHERE id = 1;
UPDATE measures_us SET v = 21 WHERE id = 2;
UPDATE measures SET v = v WHERE id = 3;
-- a partition attached after the event trigger was created fires too
CREATE TABLE public.measures_asia (id int, region text, v int);
ALTER TABLE measures ATTACH PARTITION measures_asia FOR VALUES IN ('asia');
INSERT INTO measures VALUES (4, 'asia', 40);
INSERT INTO measures_asia VALUES (5, 'asia', 50);
-- and so does one created with PARTITION OF
CREATE TABLE public.measures_af PARTITION OF measures FOR VALUES IN ('af');
INSERT INTO measures VALUES (6, 'af', 60);
DELETE FROM measures_eu WHERE id = 3;
SELECT op, data, table_ref FROM ev('measures_tr');
TRUNCATE hdb_catalog.event_log;
-- A cross-partition UPDATE: Postgres runs it as a DELETE from the old partition and an INSERT
-- into the new one and fires no row-level UPDATE trigger, so it gives a DELETE and an INSERT
-- event (as in Hasura, whose triggers are row-level too).
UPDATE measures SET region = 'us' WHERE id = 1;
SELECT op, data, table_ref FROM ev('measures_tr');
TRUNCATE hdb_catalog.event_log;

-- An event trigger created on a partition itself names that partition, and fires also when
-- the statement names the parent.
SELECT hasura_events.create_event_trigger('{"name": "measures_us_tr", "table": "measures_us", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "measures_eu_repl", "table": "measures_eu", "webhook": "http://h/",
  "insert": {"columns": "*"}, "trigger_on_replication": true}');
INSERT INTO measures VALUES (7, 'us', 70), (8, 'eu', 80);
INSERT INTO measures_us VALUES (9, 'us', 90);
UPDATE measures SET v = 71 WHERE id = 7;
SELECT trigger_name, table_name, payload->>'op' AS op, payload->'data'->'new'->>'id' AS id
FROM hdb_catalog.event_log ORDER BY trigger_name, op, id;
TRUNCATE hdb_catalog.event_log;
-- A table with a statement-level event trigger that becomes a partition later gets row-level
-- pg triggers, so rows routed through the parent are captured.
CREATE TABLE public.measures_sa (id int, region text, v int);
SELECT hasura_events.create_event_trigger('{"name": "measures_sa_tr", "table": "measures_sa", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
SELECT tgname, tgtype & 1 = 1 AS row_level FROM pg_trigger WHERE tgname = 'hasura_events_measures_sa_tr_insert';
ALTER TABLE measures ATTACH PARTITION measures_sa FOR VALUES IN ('sa');
SELECT tgname, tgtype & 1 = 1 AS row_level FROM pg_trigger WHERE tgname = 'hasura_events_measures_sa_tr_insert';
INSERT INTO measures VALUES (10, 'sa', 100);
INSERT INTO measures_sa VALUES (11, 'sa', 110);
SELECT trigger_name, table_name, payload->'data'->'new'->>'id' AS id FROM hdb_catalog.event_log
ORDER BY trigger_name, id;
TRUNCATE hdb_catalog.event_log;

-- Inheritance: an event trigger on a child fires when the statement names the parent.
CREATE TABLE public.inh_parent (id int, v text);
CREATE TABLE public.inh_child () INHERITS (inh_parent);
SELECT hasura_events.create_event_trigger('{"name": "inh_child_tr", "table": "inh_child", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}, "delete": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "inh_parent_tr", "table": "inh_parent", "webhook": "http://h/",
  "update": {"columns": "*"}}');
INSERT INTO inh_child VALUES (1, 'a');
UPDATE inh_parent SET v = 'b';
DELETE FROM inh_parent;
SELECT trigger_name, table_name, payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log
ORDER BY trigger_name, op;
TRUNCATE hdb_catalog.event_log;

-- Foreign-key cascades are row changes like any other.
CREATE TABLE public.fk_parent (id int PRIMARY KEY);
CREATE TABLE public.fk_child (id int PRIMARY KEY, parent_id int REFERENCES fk_parent ON DELETE CASCADE ON UPDATE CASCADE);
SELECT hasura_events.create_event_trigger('{"name": "fk_child_tr", "table": "fk_child", "webhook": "http://h/",
  "update": {"columns": ["parent_id"]}, "delete": {"columns": "*"}}');
INSERT INTO fk_parent VALUES (1), (2);
INSERT INTO fk_child VALUES (10, 1), (11, 1), (20, 2);
UPDATE fk_parent SET id = 3 WHERE id = 2;
DELETE FROM fk_parent WHERE id = 1;
SELECT op, data FROM ev('fk_child_tr');
TRUNCATE hdb_catalog.event_log;

-- TRUNCATE is not a row change: no event (as in Hasura).
TRUNCATE items;
SELECT count(*) AS events_after_truncate FROM hdb_catalog.event_log;
