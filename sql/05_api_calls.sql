-- 05_api_calls: invoke, redeliver, and the read calls (event logs, invocation logs, by id).
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
TRUNCATE hdb_catalog.event_log, hdb_catalog.event_invocation_logs;

CREATE TABLE public.tickets (id int PRIMARY KEY, title text);
SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "tickets_tr",
  "table": "tickets", "webhook": "http://h/", "insert": {"columns": "*"}, "enable_manual": true,
  "retry_conf": {"num_retries": 2}}}');

-- masked: an answer's volatile top-level fields (ids, timestamps) replaced by placeholders.
CREATE FUNCTION public.masked(j jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT jsonb_object_agg(k, CASE WHEN k IN ('id', 'event_id') AND v <> 'null' THEN '"<id>"'::jsonb
                                    WHEN k IN ('created_at', 'locked', 'next_retry_at') AND v <> 'null' THEN '"<time>"'::jsonb
                                    ELSE v END)
    FROM jsonb_each(j) AS o(k, v)
$$;

-- pg_invoke_event_trigger: answers {"event_id"} of a MANUAL event with data {old: null, new: payload}.
BEGIN;
SELECT set_config('hasura.user', '{"x-hasura-role": "admin"}', true) IS NOT NULL AS set;
CREATE TEMP TABLE invoked ON COMMIT DROP AS
SELECT hasura_events.metadata('{"type": "pg_invoke_event_trigger", "source": "default",
  "args": {"name": "tickets_tr", "source": "default", "payload": {"id": 1, "title": "manual", "nested": [1, {"a": null}]}}}') AS answer;
SELECT masked(answer) AS answer, jsonb_object_keys(answer) AS keys FROM invoked;
SELECT e.schema_name, e.table_name, e.trigger_name, e.payload, e.delivered, e.error, e.tries, e.archived
FROM hdb_catalog.event_log e JOIN invoked i ON e.id = i.answer->>'event_id';
COMMIT;
-- Any JSON value is accepted as the payload (Hasura passes it through), including null.
SELECT masked(hasura_events.metadata('{"type": "pg_invoke_event_trigger", "args": {"name": "tickets_tr", "payload": [1, "two"]}}'));
SELECT masked(hasura_events.metadata('{"type": "pg_invoke_event_trigger", "args": {"name": "tickets_tr", "payload": null}}'));
SELECT payload FROM hdb_catalog.event_log WHERE payload->>'op' = 'MANUAL' ORDER BY payload::text;
-- invalid JSON in hasura.user is refused here too
BEGIN;
SELECT set_config('hasura.user', 'not json', true) IS NOT NULL AS set;
SELECT try_md('{"type": "pg_invoke_event_trigger", "args": {"name": "tickets_tr", "payload": {}}}');
ROLLBACK;

-- Some captured events with fixed, distinct creation times.
INSERT INTO tickets SELECT g, 'ticket ' || g FROM generate_series(1, 5) g;
DELETE FROM hdb_catalog.event_log WHERE payload->>'op' = 'MANUAL' AND payload->'data'->'new' IN ('[1, "two"]', 'null');
UPDATE hdb_catalog.event_log
   SET created_at = '2024-01-01 00:00:00+00'::timestamptz
                    + CASE payload->>'op' WHEN 'MANUAL' THEN 0 ELSE (payload->'data'->'new'->>'id')::int END
                      * interval '1 minute',
       id = CASE payload->>'op' WHEN 'MANUAL' THEN 'ev-0-manual' ELSE 'ev-' || (payload->'data'->'new'->>'id') || '-insert' END;
SELECT id, created_at, payload->>'op' AS op FROM hdb_catalog.event_log ORDER BY created_at;
-- states: 1 delivered, 2 errored after its retries, 3 waiting for a retry, 4 being delivered
UPDATE hdb_catalog.event_log SET delivered = true, tries = 1 WHERE id = 'ev-1-insert';
UPDATE hdb_catalog.event_log SET error = true, tries = 3 WHERE id = 'ev-2-insert';
UPDATE hdb_catalog.event_log SET tries = 1, next_retry_at = '2030-01-01 00:00:00+00' WHERE id = 'ev-3-insert';
UPDATE hdb_catalog.event_log SET locked = '2024-01-01 01:00:00+00' WHERE id = 'ev-4-insert';

-- pg_get_event_logs: newest first; status pending / processed / all; limit and offset.
SELECT jsonb_array_length(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr"}}')) AS all_default;
SELECT e->>'id' AS id, e->>'created_at' AS created_at, e->'delivered' AS delivered, e->'error' AS error,
       e->'tries' AS tries, e->>'next_retry_at' AS next_retry_at, e->>'locked' AS locked, e->'archived' AS archived
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "status": "all"}}'))
     WITH ORDINALITY AS a(e, n) ORDER BY n;
SELECT string_agg(e->>'id', ', ' ORDER BY n) AS pending
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "status": "pending"}}'))
     WITH ORDINALITY AS a(e, n);
SELECT string_agg(e->>'id', ', ' ORDER BY n) AS processed
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "status": "processed"}}'))
     WITH ORDINALITY AS a(e, n);
SELECT string_agg(e->>'id', ', ' ORDER BY n) AS limit_2_offset_1
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "limit": 2, "offset": 1}}'))
     WITH ORDINALITY AS a(e, n);
SELECT hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "limit": 0}}') AS limit_0,
       hasura_events.metadata('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "offset": 100}}') AS offset_past_end;
-- one full entry, as Hasura shapes it
SELECT jsonb_pretty(e) FROM jsonb_array_elements(hasura_events.metadata(
  '{"type": "pg_get_event_logs", "args": {"name": "tickets_tr", "status": "processed", "limit": 1}}')) AS e;

-- pg_redeliver_event: resets delivered, error, tries, next_retry_at and locked.
SELECT hasura_events.metadata('{"type": "pg_redeliver_event", "args": {"event_id": "ev-1-insert"}}');
SELECT hasura_events.metadata('{"type": "pg_redeliver_event", "args": {"event_id": "ev-2-insert"}}');
SELECT hasura_events.metadata('{"type": "pg_redeliver_event", "args": {"event_id": "ev-3-insert"}}');
SELECT id, delivered, error, tries, next_retry_at, locked, archived FROM hdb_catalog.event_log
WHERE id IN ('ev-1-insert', 'ev-2-insert', 'ev-3-insert') ORDER BY id;
-- an event being delivered right now (locked, not finished) is refused with 55006
SELECT try_md('{"type": "pg_redeliver_event", "args": {"event_id": "ev-4-insert"}}');
-- a locked event that already finished (delivered) can be redelivered
UPDATE hdb_catalog.event_log SET locked = now(), delivered = true WHERE id = 'ev-5-insert';
SELECT try_md('{"type": "pg_redeliver_event", "args": {"event_id": "ev-5-insert"}}');
SELECT id, delivered, locked FROM hdb_catalog.event_log WHERE id = 'ev-5-insert';
-- the event of a deleted trigger (archived) is refused with 55000
UPDATE hdb_catalog.event_log SET archived = true, delivered = true WHERE id = 'ev-0-manual';
SELECT try_md('{"type": "pg_redeliver_event", "args": {"event_id": "ev-0-manual"}}');
SELECT delivered, archived FROM hdb_catalog.event_log WHERE id = 'ev-0-manual';
-- an archived event is not pending any more; it still shows under "all"
SELECT string_agg(e->>'id', ', ' ORDER BY n) AS pending_now
FROM jsonb_array_elements(hasura_events.get_event_logs('tickets_tr', 'pending')) WITH ORDINALITY AS a(e, n);
SELECT string_agg(e->>'id', ', ' ORDER BY n) AS all_now
FROM jsonb_array_elements(hasura_events.get_event_logs('tickets_tr', 'all')) WITH ORDINALITY AS a(e, n);

-- Invocation logs, written by hand here (the sidecar writes them in real life).
INSERT INTO hdb_catalog.event_invocation_logs (id, trigger_name, event_id, status, request, response, created_at) VALUES
 ('inv-1', 'tickets_tr', 'ev-1-insert', 500, '{"payload": {"n": 1}, "headers": [], "version": "2"}',
  '{"type": "webhook_response", "data": {"body": "oops", "headers": [], "status": 500}, "version": "2"}', '2024-01-02 00:00:01+00'),
 ('inv-2', 'tickets_tr', 'ev-1-insert', 200, '{"payload": {"n": 2}, "headers": [], "version": "2"}',
  '{"type": "webhook_response", "data": {"body": "ok", "headers": [], "status": 200}, "version": "2"}', '2024-01-02 00:00:02+00'),
 ('inv-3', 'tickets_tr', 'ev-2-insert', NULL, '{"payload": {"n": 3}, "headers": [], "version": "2"}',
  '{"type": "client_error", "data": {"message": "connection refused"}, "version": "2"}', '2024-01-02 00:00:03+00'),
 ('inv-4', 'other_trigger', 'ev-x', 200, '{}', '{}', '2024-01-02 00:00:04+00');

-- pg_get_event_invocation_logs: this trigger's attempts, newest first, limit and offset.
SELECT jsonb_pretty(hasura_events.metadata('{"type": "pg_get_event_invocation_logs", "args": {"name": "tickets_tr", "limit": 1}}'));
SELECT string_agg(i->>'id', ', ' ORDER BY n) AS all_invocations
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_invocation_logs", "args": {"name": "tickets_tr"}}'))
     WITH ORDINALITY AS a(i, n);
SELECT string_agg(i->>'id', ', ' ORDER BY n) AS offset_1
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_invocation_logs", "args": {"name": "tickets_tr", "offset": 1}}'))
     WITH ORDINALITY AS a(i, n);

-- pg_get_event_by_id: {event, invocations}; invocation_log_limit/offset.
SELECT jsonb_pretty(hasura_events.metadata('{"type": "pg_get_event_by_id", "args": {"event_id": "ev-1-insert"}}'));
SELECT string_agg(i->>'id', ', ' ORDER BY n) AS limited
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_by_id",
  "args": {"event_id": "ev-1-insert", "invocation_log_limit": 1, "invocation_log_offset": 0}}') -> 'invocations')
     WITH ORDINALITY AS a(i, n);
SELECT string_agg(i->>'id', ', ' ORDER BY n) AS offset_1
FROM jsonb_array_elements(hasura_events.metadata('{"type": "pg_get_event_by_id",
  "args": {"event_id": "ev-1-insert", "invocation_log_offset": 1}}') -> 'invocations')
     WITH ORDINALITY AS a(i, n);
SELECT hasura_events.metadata('{"type": "pg_get_event_by_id", "args": {"event_id": "ev-5-insert"}}') -> 'invocations' AS none;
-- an archived event can still be read by id
SELECT hasura_events.metadata('{"type": "pg_get_event_by_id", "args": {"event_id": "ev-0-manual"}}') -> 'event' -> 'archived' AS archived;

-- Deleting the trigger archives its events and keeps the invocation logs.
SELECT hasura_events.metadata('{"type": "pg_delete_event_trigger", "args": {"name": "tickets_tr"}}');
SELECT count(*) AS events, count(*) FILTER (WHERE archived) AS archived FROM hdb_catalog.event_log;
SELECT count(*) AS invocation_logs FROM hdb_catalog.event_invocation_logs;
SELECT try_md('{"type": "pg_get_event_logs", "args": {"name": "tickets_tr"}}');
TRUNCATE hdb_catalog.event_log, hdb_catalog.event_invocation_logs;
