-- Operator views: per-trigger status, dead events, and the workers.
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS hasura_events;
RESET client_min_messages;
CREATE TABLE status_t (id int PRIMARY KEY, v text);
SELECT hasura_events.create_event_trigger('{"name": "st_a", "table": "status_t", "webhook": "http://localhost/a",
                                            "insert": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "st_b", "table": "status_t", "webhook": "http://localhost/b",
                                            "delete": {"columns": "*"}}');
INSERT INTO status_t SELECT g, 'v' FROM generate_series(1, 5) g;

-- five pending events of st_a, none of st_b
SELECT trigger_name, schema_name, table_name, pending, retrying, errored, delivered_last_hour,
       oldest_pending_age IS NOT NULL AS has_age
FROM hasura_events.trigger_status ORDER BY trigger_name;

-- make the picture the dispatcher would: one delivered, one waiting for a retry, one dead with
-- its attempts logged
WITH ids AS (SELECT id, row_number() OVER (ORDER BY payload->'data'->'new'->>'id') AS n
             FROM hdb_catalog.event_log WHERE trigger_name = 'st_a')
UPDATE hdb_catalog.event_log e
   SET delivered = (ids.n = 1), tries = 1,
       next_retry_at = CASE WHEN ids.n = 2 THEN now() + interval '1 hour' END,
       error = (ids.n = 3)
  FROM ids WHERE e.id = ids.id AND ids.n <= 3;
INSERT INTO hdb_catalog.event_invocation_logs (event_id, trigger_name, status, request, response, created_at)
SELECT id, 'st_a', s.status, '{}', s.response::json, s.at
FROM hdb_catalog.event_log e,
     (VALUES (500, '{"type": "webhook_response", "data": {"body": "first failure", "status": 500}, "version": "2"}',
              now() - interval '1 minute'),
             (NULL, '{"type": "client_error", "data": {"message": "Timeout was reached"}, "version": "2"}', now()))
       AS s(status, response, at)
WHERE e.trigger_name = 'st_a' AND e.error;

SELECT trigger_name, pending, retrying, errored, delivered_last_hour FROM hasura_events.trigger_status
ORDER BY trigger_name;
SELECT trigger_name, schema_name, table_name, tries, last_status, last_error, payload->'data'->'new'->>'id' AS row_id
FROM hasura_events.dead_events;

-- an archived dead event (its trigger was deleted) is no longer listed
SELECT hasura_events.delete_event_trigger('st_a');
SELECT count(*) AS dead_listed FROM hasura_events.dead_events;
SELECT count(*) AS st_a_in_status FROM hasura_events.trigger_status WHERE trigger_name = 'st_a';

-- the dispatcher of this database runs (no sidecar is connected in the regression cluster);
-- the launcher started it when CREATE EXTENSION committed
DO $$
BEGIN
    FOR i IN 1..200 LOOP
        EXIT WHEN EXISTS (SELECT 1 FROM hasura_events.worker_status
                          WHERE database = current_database() AND dispatcher_pid IS NOT NULL);
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT database = current_database() AS this_db, dispatcher_pid IS NOT NULL AS running, sidecars, inflight,
       launcher_pid IS NOT NULL AS launcher_running
FROM hasura_events.worker_status WHERE database = current_database();

-- not for PUBLIC
CREATE ROLE status_nobody;
SET ROLE status_nobody;
SELECT * FROM hasura_events.trigger_status;
SELECT * FROM hasura_events.worker_status;
RESET ROLE;
DROP ROLE status_nobody;

-- Event ids are UUIDs version 7: ids made later sort later, within a statement and across them.
SELECT hasura_events.create_event_trigger('{"name": "st_c", "table": "status_t", "webhook": "http://localhost/c",
                                            "insert": {"columns": "*"}}');
INSERT INTO status_t SELECT g, 'w' FROM generate_series(100, 1099) g;
INSERT INTO status_t VALUES (2000, 'later');
SELECT count(*) AS events,
       bool_and(id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$') AS all_v7,
       bool_and(prev IS NULL OR prev < id) AS ids_increase
FROM (SELECT id, lag(id) OVER (ORDER BY (payload->'data'->'new'->>'id')::int) AS prev
      FROM hdb_catalog.event_log WHERE trigger_name = 'st_c') s;

-- An event_log altered by hand still records every event (through the general SQL path).
ALTER TABLE hdb_catalog.event_log ADD COLUMN note text DEFAULT 'added by hand';
INSERT INTO status_t VALUES (3000, 'after alter');
SELECT payload->'data'->'new'->>'id' AS row_id, note, delivered, tries
FROM hdb_catalog.event_log WHERE trigger_name = 'st_c' AND payload->'data'->'new'->>'id' = '3000';
ALTER TABLE hdb_catalog.event_log DROP COLUMN note;
INSERT INTO status_t VALUES (3001, 'after drop column');
SELECT count(*) AS recorded FROM hdb_catalog.event_log
WHERE trigger_name = 'st_c' AND payload->'data'->'new'->>'id' = '3001';

-- _queue_stats walks the claim and dead-event indexes itself (its cost must not follow the
-- delivered history, whatever the statistics say): its figures are those of a plain query over
-- the whole table, for events in every state, and stay so without the indexes (a table scan).
CREATE TEMP VIEW queue_by_sql AS
SELECT t.name,
       (SELECT count(*) FROM hdb_catalog.event_log e
         WHERE e.trigger_name = t.name AND NOT e.delivered AND NOT e.error AND NOT e.archived) AS pending,
       round(coalesce((SELECT date_part('epoch', now() - min(e.created_at)) FROM hdb_catalog.event_log e
                        WHERE e.trigger_name = t.name AND NOT e.delivered AND NOT e.error AND NOT e.archived),
                      0)::numeric, 3) AS oldest,
       (SELECT count(*) FROM hdb_catalog.event_log e
         WHERE e.trigger_name = t.name AND NOT e.delivered AND NOT e.error AND NOT e.archived
           AND e.next_retry_at > now()) AS retrying,
       (SELECT count(*) FROM hdb_catalog.event_log e
         WHERE e.trigger_name = t.name AND e.error AND NOT e.archived) AS errored
FROM hasura_events.event_triggers t;
CREATE TEMP VIEW queue_by_c AS
SELECT name, pending, round(oldest_pending_age_sec::numeric, 3) AS oldest, retries_scheduled AS retrying, errored
FROM hasura_events._queue_stats();
WITH ids AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM hdb_catalog.event_log WHERE trigger_name = 'st_c')
UPDATE hdb_catalog.event_log e
   SET delivered = ids.n % 7 = 0,
       next_retry_at = CASE WHEN ids.n % 7 = 1 THEN now() + interval '1 hour'
                            WHEN ids.n % 7 = 2 THEN now() - interval '1 minute' END,
       error = ids.n % 7 IN (3, 4),
       archived = ids.n % 7 = 4 OR ids.n % 11 = 0,
       created_at = now() - make_interval(secs => ids.n)
  FROM ids WHERE e.id = ids.id;
SELECT name, pending, retrying, errored, oldest BETWEEN 1003 AND 1100 AS oldest_ok FROM queue_by_c ORDER BY name;
(SELECT * FROM queue_by_c EXCEPT SELECT * FROM queue_by_sql)
UNION ALL (SELECT * FROM queue_by_sql EXCEPT SELECT * FROM queue_by_c);
BEGIN;
DROP INDEX hdb_catalog.event_log_claim_idx, hdb_catalog.event_log_dead_idx;
(SELECT * FROM queue_by_c EXCEPT SELECT * FROM queue_by_sql)
UNION ALL (SELECT * FROM queue_by_sql EXCEPT SELECT * FROM queue_by_c);
ROLLBACK;
-- it reads the log only through the two indexes, whatever the planner would choose (here it is
-- told to avoid index scans): no sequential scan of event_log, one scan of each index (the
-- statistics of this session are flushed to be read)
SET enable_indexscan = off;
SET enable_bitmapscan = off;
SET enable_indexonlyscan = off;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE scans_before AS
SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'hdb_catalog.event_log'::regclass) AS seq,
       (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'hdb_catalog.event_log_claim_idx'::regclass) AS claim,
       (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'hdb_catalog.event_log_dead_idx'::regclass) AS dead;
SELECT count(*) AS triggers, sum(pending) AS pending, sum(errored) AS errored FROM hasura_events._queue_stats();
SELECT pg_stat_force_next_flush();
SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'hdb_catalog.event_log'::regclass) - b.seq AS seq_scans,
       (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'hdb_catalog.event_log_claim_idx'::regclass) - b.claim
         AS claim_index_scans,
       (SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid = 'hdb_catalog.event_log_dead_idx'::regclass) - b.dead
         AS dead_index_scans
FROM scans_before b;
RESET enable_indexscan;
RESET enable_bitmapscan;
RESET enable_indexonlyscan;
-- a trigger created in the same transaction is listed, with nothing to count
BEGIN;
SELECT hasura_events.create_event_trigger('{"name": "st_d", "table": "status_t", "webhook": "http://localhost/d",
                                            "update": {"columns": "*"}}');
SELECT * FROM queue_by_c WHERE name = 'st_d';
ROLLBACK;

-- The trigger-name index holds only events that left the queue (delivered, dead, archived);
-- pending ones are found through the claim index. pg_get_event_logs gives, for every status,
-- limit and offset, exactly what a plain query over the whole table gives, in the same order
-- (newest first, then by id), with events in every state and created_at ties.
CREATE TABLE list_t (id int PRIMARY KEY, v text);
SELECT hasura_events.create_event_trigger('{"name": "list_tr", "table": "list_t", "webhook": "http://localhost/l",
                                            "insert": {"columns": "*"}}');
INSERT INTO list_t SELECT g, 'v' FROM generate_series(1, 40) g;
UPDATE hdb_catalog.event_log SET created_at = '2024-01-01'::timestamptz + ((payload->'data'->'new'->>'id')::int / 3) * interval '1 min'
WHERE trigger_name = 'list_tr';
UPDATE hdb_catalog.event_log SET delivered = true, tries = 1
WHERE trigger_name = 'list_tr' AND (payload->'data'->'new'->>'id')::int % 5 = 0;
UPDATE hdb_catalog.event_log SET error = true, tries = 3
WHERE trigger_name = 'list_tr' AND (payload->'data'->'new'->>'id')::int % 5 = 1;
UPDATE hdb_catalog.event_log SET tries = 1, next_retry_at = now() + interval '1 hour'
WHERE trigger_name = 'list_tr' AND (payload->'data'->'new'->>'id')::int % 5 = 2;
UPDATE hdb_catalog.event_log SET archived = true
WHERE trigger_name = 'list_tr' AND (payload->'data'->'new'->>'id')::int % 7 = 0;
SELECT count(*) FILTER (WHERE NOT delivered AND NOT error AND NOT archived) AS pending,
       count(*) FILTER (WHERE delivered OR error) AS processed,
       count(*) FILTER (WHERE archived AND NOT delivered AND NOT error) AS archived_only
FROM hdb_catalog.event_log WHERE trigger_name = 'list_tr';
CREATE FUNCTION list_by_sql(st text, lim int, off int) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(id ORDER BY created_at DESC, id), '{}') FROM (
        SELECT id, created_at FROM hdb_catalog.event_log
        WHERE trigger_name = 'list_tr'
          AND CASE st WHEN 'pending' THEN NOT delivered AND NOT error AND NOT archived
                      WHEN 'processed' THEN delivered OR error ELSE true END
        ORDER BY created_at DESC, id LIMIT lim OFFSET off) s $$;
CREATE FUNCTION list_by_api(st text, lim int, off int) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(e->>'id' ORDER BY n), '{}')
    FROM jsonb_array_elements(hasura_events.get_event_logs('list_tr', st, lim, off)) WITH ORDINALITY a(e, n) $$;
SELECT count(*) AS cases, count(*) FILTER (WHERE list_by_api(st, lim, off) = list_by_sql(st, lim, off)) AS equal,
       sum(cardinality(list_by_api(st, lim, off))) AS rows_compared
FROM unnest(ARRAY['all', 'pending', 'processed']) st, unnest(ARRAY[0, 1, 3, 7, 100]) lim,
     unnest(ARRAY[0, 1, 5, 13, 39, 40]) off;
-- the listings of events that left the queue, and archiving, never read the whole table: told to
-- avoid sequential scans, they still make none (a query whose WHERE clause did not imply the
-- index's predicate could not use it)
SET enable_seqscan = off;
SELECT pg_stat_force_next_flush();
CREATE TEMP TABLE list_scans_before AS
SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'hdb_catalog.event_log'::regclass;
SELECT cardinality(list_by_api('processed', 5, 2)) AS processed, cardinality(list_by_api('all', 5, 2)) AS all_events;
-- deleting the trigger archives every one of its events, pending and processed
SELECT hasura_events.delete_event_trigger('list_tr');
SELECT pg_stat_force_next_flush();
SELECT (SELECT seq_scan FROM pg_stat_user_tables WHERE relid = 'hdb_catalog.event_log'::regclass) - b.seq_scan AS seq_scans
FROM list_scans_before b;
RESET enable_seqscan;
SELECT count(*) AS events, bool_and(archived) AS all_archived FROM hdb_catalog.event_log WHERE trigger_name = 'list_tr';
