-- 00_install: the extension, its catalog and how it is registered.
SET client_min_messages = warning;
CREATE EXTENSION hasura_events;
RESET client_min_messages;

SELECT extname, extversion, extnamespace::regnamespace AS schema, extrelocatable
FROM pg_extension WHERE extname = 'hasura_events';

-- Hasura's catalog, created_at as timestamptz.
\d hdb_catalog.event_log
\d hdb_catalog.event_invocation_logs
\d hasura_events.event_triggers

-- Every index of the extension's tables.
SELECT tablename, indexname, indexdef
FROM pg_indexes WHERE schemaname IN ('hdb_catalog', 'hasura_events')
ORDER BY tablename, indexname;

-- Included in pg_dump: the definitions, the events and the invocation logs.
SELECT c::regclass AS config_table, cond
FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(c, cond)
WHERE e.extname = 'hasura_events'
ORDER BY 1::text;

-- The event triggers (DDL) the extension installs.
SELECT evtname, evtevent, evtenabled, evtfoid::regproc, evttags
FROM pg_event_trigger ORDER BY evtname;

-- The admin role exists.
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = 'hasura_events_admin';

-- Helpers used by the later tests: run a statement or a metadata request and show what it
-- answered or the error's SQLSTATE, message, detail and hint (no volatile values).
CREATE FUNCTION public.try_sql(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    st text; msg text; det text; hnt text; r text;
BEGIN
    EXECUTE stmt INTO r;
    RETURN 'OK ' || coalesce(r, '<null>');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                            hnt = PG_EXCEPTION_HINT;
    RETURN 'ERROR ' || st || ': ' || msg
        || CASE WHEN det <> '' THEN E'\nDETAIL: ' || det ELSE '' END
        || CASE WHEN hnt <> '' THEN E'\nHINT: ' || hnt ELSE '' END;
END
$$;

CREATE FUNCTION public.try_md(request jsonb) RETURNS text
LANGUAGE sql AS $$
    SELECT public.try_sql(format('SELECT hasura_events.metadata(%L)::text', request))
$$;
GRANT EXECUTE ON FUNCTION public.try_sql(text), public.try_md(jsonb) TO PUBLIC;
