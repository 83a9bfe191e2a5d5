-- extension/sql/delivery.sql
--
-- Second part of the install script (appended to hasura_events.sql by the build): what the
-- delivery side and its operators need in SQL: queue figures, the dead-letter view and the
-- state of the background workers and sidecars.

-- _queue_stats: per trigger, the undelivered events (pending, of which waiting for a retry,
-- age of the oldest) and the dead ones. Written in C (status.cpp): it walks the claim and
-- dead-event partial indexes, so its cost follows the backlog, never the delivered history,
-- whatever the planner's statistics say. Sent to sidecars for their metrics.
CREATE FUNCTION hasura_events._queue_stats(
    OUT name text, OUT pending bigint, OUT oldest_pending_age_sec float8, OUT retries_scheduled bigint,
    OUT errored bigint)
RETURNS SETOF record
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'hasura_events_queue_stats';

-- trigger_status: one row per event trigger. Both views read as their caller (security_invoker),
-- so that row-level security shows each role its own triggers' rows only.
CREATE VIEW hasura_events.trigger_status WITH (security_invoker = true) AS
SELECT q.name AS trigger_name,
       t.schema_name, t.table_name,
       q.pending,
       q.retries_scheduled AS retrying,
       q.errored,
       (SELECT pg_catalog.count(*) FROM hdb_catalog.event_log e
         WHERE e.trigger_name = q.name AND e.created_at > pg_catalog.now() - interval '1 hour'
           AND e.delivered) AS delivered_last_hour,
       CASE WHEN q.pending > 0 THEN pg_catalog.make_interval(secs => q.oldest_pending_age_sec) END AS oldest_pending_age
FROM hasura_events._queue_stats() q
JOIN hasura_events.event_triggers t ON t.name = q.name;
COMMENT ON VIEW hasura_events.trigger_status IS
    'Per event trigger: pending (undelivered) events, of which waiting for a retry, dead events, events created in the last hour and delivered, age of the oldest pending event.';

-- dead_events: events whose retries are exhausted, with their last attempt.
CREATE VIEW hasura_events.dead_events WITH (security_invoker = true) AS
SELECT e.id AS event_id, e.trigger_name, e.schema_name, e.table_name, e.tries, e.created_at,
       i.created_at AS last_attempt_at,
       i.status AS last_status,
       COALESCE(i.response -> 'data' ->> 'message', i.response -> 'data' ->> 'body') AS last_error,
       e.payload
FROM hdb_catalog.event_log e
LEFT JOIN LATERAL (SELECT l.created_at, l.status, l.response FROM hdb_catalog.event_invocation_logs l
                   WHERE l.event_id = e.id ORDER BY l.created_at DESC LIMIT 1) i ON true
WHERE e.error AND NOT e.archived;
COMMENT ON VIEW hasura_events.dead_events IS
    'Events whose retries are exhausted (error = true), with the last attempt''s status and error; redeliver with pg_redeliver_event.';

CREATE FUNCTION hasura_events._worker_status(
    OUT database_oid oid, OUT database text, OUT dispatcher_pid integer, OUT started_at timestamptz,
    OUT restarts bigint, OUT sidecars integer, OUT inflight bigint, OUT events_fetched bigint, OUT fetches bigint,
    OUT last_fetch_at timestamptz, OUT delivered bigint, OUT failed_attempts bigint, OUT launcher_pid integer)
RETURNS SETOF record
LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_worker_status';

-- worker_status: the dispatcher of every database using the extension, and its sidecars.
CREATE VIEW hasura_events.worker_status AS SELECT * FROM hasura_events._worker_status();
COMMENT ON VIEW hasura_events.worker_status IS
    'Dispatchers of the cluster (one per database with the extension): pid, restarts since the server started, connected sidecars, events in flight, fetch statistics and attempt counts since the dispatcher started.';

REVOKE ALL ON ALL TABLES IN SCHEMA hasura_events FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA hasura_events FROM PUBLIC;
GRANT SELECT ON hasura_events.trigger_status, hasura_events.dead_events, hasura_events.worker_status
    TO hasura_events_admin;
GRANT EXECUTE ON FUNCTION hasura_events._queue_stats(), hasura_events._worker_status() TO hasura_events_admin;

-- The launcher starts this database's dispatcher when the creating transaction commits.
SELECT hasura_events._wake();
