-- extension/sql/hasura_events.sql
--
-- Install script of hasura_events (copied to hasura_events--<version>.sql by the build).
-- Creates Hasura's catalog tables (hdb_catalog.event_log, hdb_catalog.event_invocation_logs),
-- the table of event-trigger definitions, and the SQL API: hasura_events.metadata(request)
-- accepts Hasura metadata API request bodies verbatim; the plain functions behind it are
-- callable directly.
--
-- Wording: "event trigger" is Hasura's named webhook subscription; "pg trigger" is a Postgres
-- trigger object created for one of its operations.
--
-- Errors: every refusal carries a specific SQLSTATE:
--   22023 invalid_parameter_value  a malformed or invalid argument (Hasura: validation-failed)
--   0A000 feature_not_supported    an argument Hasura has and this version does not implement
--   42P01 undefined_table, 42703 undefined_column, 42809 wrong_object_type
--   42710 duplicate_object         a trigger of that name exists (Hasura: already-exists)
--   42704 undefined_object         no such trigger or event (Hasura: not-exists)
--   42501 insufficient_privilege   not the owner of the table
--   55000 object_not_in_prerequisite_state  e.g. invoke without enable_manual
--   55006 object_in_use            redeliver of an event being delivered right now

\echo Use "CREATE EXTENSION hasura_events" to load this file. \quit

CREATE SCHEMA hasura_events;
COMMENT ON SCHEMA hasura_events IS 'hasura_events: the SQL API and the event-trigger definitions';

CREATE FUNCTION hasura_events._assert_preloaded() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_assert_preloaded';
SELECT hasura_events._assert_preloaded();

-- hdb_catalog is Hasura's schema: a database Hasura used has it already (with Hasura's other
-- objects, which stay as they are); otherwise the extension creates it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'hdb_catalog') THEN
        CREATE SCHEMA hdb_catalog;
    END IF;
END
$$;

-- Event and invocation ids: UUIDs version 7 as text, time-ordered (see hasura_events_gen_id).
CREATE FUNCTION hasura_events.gen_id() RETURNS text
    LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'hasura_events_gen_id';
COMMENT ON FUNCTION hasura_events.gen_id() IS 'A new time-ordered UUID (version 7) as text: the default id of events and invocation logs.';

-- ---------------------------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------------------------

-- Taking over Hasura's catalog. A database Hasura v2 used holds hdb_catalog.event_log and
-- hdb_catalog.event_invocation_logs already, with its history and backlog: they are converted in
-- place to what the CREATE TABLE statements below define (those then skip them), keeping every
-- row, and become the extension's tables (members, dumped by pg_dump as ours are). What differs in
-- Hasura's: ids compare by the database collation, created_at and next_retry_at are timestamps
-- without time zone (read in the TimeZone of the session running CREATE EXTENSION: set it first
-- if Hasura's sessions used another), created_at may be null, the indexes (Hasura's claim index
-- costs every event an entry; ours are created below), ids default to Hasura's uuid function, and
-- older versions have no trigger_name in the invocation logs and a foreign key from them to the
-- events (ours have none: logs may outlive events). Events Hasura left claimed (locked) are
-- released: Hasura must be stopped before the extension takes over. Hasura's pg triggers keep
-- recording events until each trigger is imported (replace_metadata or pg_create_event_trigger
-- of the same name replaces them; see hasura_events._drop_hasura_pg_triggers).
DO $takeover$
DECLARE
    tbl text;
    r record;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['event_log', 'event_invocation_logs'] LOOP
        CONTINUE WHEN pg_catalog.to_regclass('hdb_catalog.' || tbl) IS NULL;
        IF (SELECT relkind FROM pg_catalog.pg_class WHERE oid = ('hdb_catalog.' || tbl)::regclass) <> 'r' THEN
            RAISE EXCEPTION USING ERRCODE = '42809', MESSAGE = pg_catalog.format('hdb_catalog.%s exists and is not a table', tbl),
                HINT = 'hasura_events takes over Hasura''s event tables only; move the object away first.';
        END IF;
        -- every index but the primary key's, and the foreign keys between the two tables
        FOR r IN SELECT c.conname FROM pg_catalog.pg_constraint c
                 WHERE c.conrelid = ('hdb_catalog.' || tbl)::regclass AND c.contype = 'f' LOOP
            EXECUTE pg_catalog.format('ALTER TABLE hdb_catalog.%I DROP CONSTRAINT %I', tbl, r.conname);
        END LOOP;
        FOR r IN SELECT i.indexrelid::regclass AS idx FROM pg_catalog.pg_index i
                 WHERE i.indrelid = ('hdb_catalog.' || tbl)::regclass AND NOT i.indisprimary LOOP
            EXECUTE pg_catalog.format('DROP INDEX %s', r.idx);
        END LOOP;
        EXECUTE pg_catalog.format('ALTER TABLE hdb_catalog.%I OWNER TO %I', tbl, current_user);
    END LOOP;

    IF pg_catalog.to_regclass('hdb_catalog.event_log') IS NOT NULL THEN
        UPDATE hdb_catalog.event_log SET locked = NULL
         WHERE locked IS NOT NULL AND NOT delivered AND NOT error AND NOT archived;
        -- the primary key is rebuilt by the type change (its collation changes), at this fillfactor
        SELECT c.relname AS pkey INTO r FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'hdb_catalog.event_log'::regclass AND i.indisprimary;
        IF FOUND THEN
            EXECUTE pg_catalog.format('ALTER INDEX hdb_catalog.%I SET (fillfactor = 50)', r.pkey);
        ELSE
            ALTER TABLE hdb_catalog.event_log ADD PRIMARY KEY (id) WITH (fillfactor = 50);
        END IF;
        ALTER TABLE hdb_catalog.event_log
            ALTER COLUMN id TYPE text COLLATE "C",
            ALTER COLUMN id SET DEFAULT hasura_events.gen_id(),
            ALTER COLUMN created_at TYPE timestamptz USING coalesce(created_at::timestamptz, pg_catalog.now()),
            ALTER COLUMN created_at SET DEFAULT pg_catalog.now(),
            ALTER COLUMN created_at SET NOT NULL,
            ALTER COLUMN next_retry_at TYPE timestamptz;
        ALTER EXTENSION hasura_events ADD TABLE hdb_catalog.event_log;
    END IF;
    IF pg_catalog.to_regclass('hdb_catalog.event_invocation_logs') IS NOT NULL THEN
        ALTER TABLE hdb_catalog.event_invocation_logs ADD COLUMN IF NOT EXISTS trigger_name text;
        ALTER TABLE hdb_catalog.event_invocation_logs
            ALTER COLUMN id TYPE text COLLATE "C",
            ALTER COLUMN id SET DEFAULT hasura_events.gen_id(),
            ALTER COLUMN event_id TYPE text COLLATE "C",
            ALTER COLUMN created_at TYPE timestamptz USING coalesce(created_at::timestamptz, pg_catalog.now()),
            ALTER COLUMN created_at SET DEFAULT pg_catalog.now(),
            ALTER COLUMN created_at SET NOT NULL;
        ALTER EXTENSION hasura_events ADD TABLE hdb_catalog.event_invocation_logs;
    END IF;
END
$takeover$;

CREATE TABLE IF NOT EXISTS hdb_catalog.event_log (
    -- ids compare bytewise (COLLATE "C"): the primary key is written and probed once per event
    -- and per outcome, and a linguistic collation only makes that slower. Its pages are filled
    -- to half (fillfactor 50): the outcome update gives every event a second entry next to its
    -- first (it is never HOT), and with room for it on the page the drain neither splits pages
    -- nor runs b-tree bottom-up deletion on them (dispatcher CPU -9 %; the index ends a drain no
    -- bigger than at the default 90, whose pages the drain splits to half anyway).
    id            text COLLATE "C" PRIMARY KEY WITH (fillfactor = 50) DEFAULT hasura_events.gen_id(),
    schema_name   text NOT NULL,
    table_name    text NOT NULL,
    trigger_name  text NOT NULL,
    payload       jsonb NOT NULL,
    delivered     boolean NOT NULL DEFAULT false,
    error         boolean NOT NULL DEFAULT false,
    tries         integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    locked        timestamptz,
    next_retry_at timestamptz,
    archived      boolean NOT NULL DEFAULT false
);
-- Every delivered event leaves one dead tuple (its outcome update): vacuum the log well before
-- the default 20 % of dead rows, so it does not bloat while events stream through.
ALTER TABLE hdb_catalog.event_log SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
                                       autovacuum_analyze_scale_factor = 0.02);
COMMENT ON TABLE hdb_catalog.event_log IS 'One row per event (Hasura''s event_log); payload is the event object.';

-- Lists of one trigger's events that have left the queue: delivered, dead or archived
-- (pg_get_event_logs, the trigger_status view, archiving). Events still to deliver are found
-- through the claim index instead, so a captured event gets no entry here: the update that
-- delivers it (or gives up on it) adds one, as every update of an event writes its index entries
-- anew (the claim index's predicate changes, so it is never a HOT update). That spares capture a
-- third of the cost of writing an event.
CREATE INDEX event_log_trigger_name_idx ON hdb_catalog.event_log (trigger_name, created_at)
    WHERE delivered OR error OR archived;

-- The claim index: only events still to deliver are in it, so claiming a batch costs the same
-- with a million delivered rows as with none. Ordered as the claim query reads it (a null
-- next_retry_at means due now): one range scan that stops at now(), fresh events in commit
-- order ahead of retries that came due. The id makes every key unique, so that a claim can go
-- on after the last event the previous one took instead of stepping over the events in flight.
CREATE INDEX event_log_claim_idx ON hdb_catalog.event_log
    ((COALESCE(next_retry_at, '-infinity'::timestamptz)), created_at, id)
    WHERE NOT delivered AND NOT error AND NOT archived;

-- Dead events (retries exhausted) per trigger: the dead-letter view and the error gauges read
-- only these rows. Rows enter it only when they die, so it costs nothing on the happy path.
CREATE INDEX event_log_dead_idx ON hdb_catalog.event_log (trigger_name, created_at)
    WHERE error AND NOT archived;

CREATE TABLE IF NOT EXISTS hdb_catalog.event_invocation_logs (
    id           text COLLATE "C" PRIMARY KEY DEFAULT hasura_events.gen_id(),
    trigger_name text,
    event_id     text COLLATE "C",
    status       integer,
    request      json,
    response     json,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE hdb_catalog.event_invocation_logs IS 'One row per delivery attempt (Hasura''s event_invocation_logs).';
CREATE INDEX event_invocation_logs_event_id_idx ON hdb_catalog.event_invocation_logs (event_id);

CREATE TABLE hasura_events.event_triggers (
    name                   text PRIMARY KEY,
    schema_name            text NOT NULL,
    table_name             text NOT NULL,
    source                 text NOT NULL DEFAULT 'default',
    webhook                text,
    webhook_from_env       text,
    insert_spec            jsonb,
    update_spec            jsonb,
    delete_spec            jsonb,
    enable_manual          boolean NOT NULL DEFAULT false,
    num_retries            integer NOT NULL DEFAULT 0 CHECK (num_retries >= 0),
    interval_sec           integer NOT NULL DEFAULT 10 CHECK (interval_sec >= 0),
    timeout_sec            integer NOT NULL DEFAULT 60 CHECK (timeout_sec > 0),
    headers                jsonb NOT NULL DEFAULT '[]',
    trigger_on_replication boolean NOT NULL DEFAULT false,
    definition             jsonb NOT NULL,
    created_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at             timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- optional parts of Hasura's form the trigger was defined without (see _export_omits)
    export_omits           text[] NOT NULL DEFAULT '{}',
    CHECK ((webhook IS NULL) <> (webhook_from_env IS NULL)),
    CHECK (insert_spec IS NOT NULL OR update_spec IS NOT NULL OR delete_spec IS NOT NULL OR enable_manual)
);
COMMENT ON TABLE hasura_events.event_triggers IS 'Event-trigger definitions (the pg_create_event_trigger args, normalized in "definition").';

-- pg_dump keeps definitions and events (the pg triggers are dumped with their tables).
SELECT pg_catalog.pg_extension_config_dump('hasura_events.event_triggers', '');
SELECT pg_catalog.pg_extension_config_dump('hdb_catalog.event_log', '');
SELECT pg_catalog.pg_extension_config_dump('hdb_catalog.event_invocation_logs', '');

-- ---------------------------------------------------------------------------------------------
-- C functions
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION hasura_events.capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_capture';
COMMENT ON FUNCTION hasura_events.capture() IS 'Trigger function of every event trigger; created by create_event_trigger, not by hand.';

CREATE FUNCTION hasura_events._value_problem(kind text, value text) RETURNS text
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'hasura_events_value_problem';

CREATE FUNCTION hasura_events._wake() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_wake';

-- ---------------------------------------------------------------------------------------------
-- Argument checking helpers
-- ---------------------------------------------------------------------------------------------

-- _fail: raises an error with the given SQLSTATE, message and (optional) hint.
CREATE FUNCTION hasura_events._fail(code text, message text, hint text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF hint IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message;
    END IF;
    RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, HINT = hint;
END
$$;

-- _json_kind: jsonb_typeof, with "integer" for integral numbers.
CREATE FUNCTION hasura_events._json_kind(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN v IS NULL THEN 'missing'
        WHEN pg_catalog.jsonb_typeof(v) = 'number' AND (v::text)::numeric = pg_catalog.trunc((v::text)::numeric) THEN 'integer'
        ELSE pg_catalog.jsonb_typeof(v)
    END
$$;

-- _expect: refuses a value of the wrong JSON type; path names it as the user wrote it.
CREATE FUNCTION hasura_events._expect(v jsonb, kind text, path text) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    actual text := hasura_events._json_kind(v);
BEGIN
    IF actual = kind OR (kind = 'number' AND actual = 'integer') THEN
        RETURN;
    END IF;
    PERFORM hasura_events._fail('22023',
        pg_catalog.format('%s must be %s %s, not %s', path,
            CASE WHEN kind IN ('object', 'array', 'integer') THEN 'an' ELSE 'a' END, kind,
            CASE actual WHEN 'missing' THEN 'missing' ELSE actual END));
END
$$;

-- _int_arg: an optional integer argument in [min_value, 2147483647], with its default.
CREATE FUNCTION hasura_events._int_arg(obj jsonb, key text, path text, default_value integer, min_value integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := obj -> key;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        RETURN default_value;
    END IF;
    PERFORM hasura_events._expect(v, 'integer', path || '.' || key);
    IF (v::text)::numeric < min_value OR (v::text)::numeric > 2147483647 THEN
        PERFORM hasura_events._fail('22023',
            pg_catalog.format('%s.%s must be between %s and 2147483647, not %s', path, key, min_value, v::text));
    END IF;
    RETURN (v::text)::integer;
END
$$;

-- _bool_arg: an optional boolean argument with its default.
CREATE FUNCTION hasura_events._bool_arg(obj jsonb, key text, path text, default_value boolean) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := obj -> key;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        RETURN default_value;
    END IF;
    PERFORM hasura_events._expect(v, 'boolean', path || '.' || key);
    RETURN v::text::boolean;
END
$$;

-- _text_arg: a string argument; required ones refuse null and missing.
CREATE FUNCTION hasura_events._text_arg(obj jsonb, key text, path text, required boolean) RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := obj -> key;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        IF required THEN
            PERFORM hasura_events._fail('22023', pg_catalog.format('%s.%s is required', path, key));
        END IF;
        RETURN NULL;
    END IF;
    PERFORM hasura_events._expect(v, 'string', path || '.' || key);
    RETURN v #>> '{}';
END
$$;

-- _check_keys: refuses arguments not in allowed; not_yet lists Hasura arguments this version
-- refuses as not supported rather than ignoring them.
CREATE FUNCTION hasura_events._check_keys(obj jsonb, allowed text[], path text, not_yet text[] DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    k text;
BEGIN
    FOR k IN SELECT pg_catalog.jsonb_object_keys(obj) LOOP
        IF k = ANY (not_yet) THEN
            IF obj -> k <> 'null' THEN
                PERFORM hasura_events._fail('0A000',
                    pg_catalog.format('%s.%s is not supported yet by hasura_events', path, k),
                    'Remove the argument; it would be ignored otherwise, and hasura_events refuses rather than ignore it.');
            END IF;
        ELSIF NOT k = ANY (allowed) THEN
            PERFORM hasura_events._fail('22023',
                pg_catalog.format('unknown argument %s.%s', path, k),
                'Allowed arguments: ' || pg_catalog.array_to_string(allowed, ', ') || '.');
        END IF;
    END LOOP;
END
$$;

-- _check_value: refuses a value the C++ validators find wrong (see extension/core/validation.cpp).
CREATE FUNCTION hasura_events._check_value(kind text, value text, path text, hint text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    problem text := hasura_events._value_problem(kind, value);
BEGIN
    IF problem IS NOT NULL THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('invalid %s: %s', path, problem), hint);
    END IF;
END
$$;

-- _column_list: checks a "columns"/"payload" value of an operation spec against the table;
-- returns "*" or a JSON array of names.
CREATE FUNCTION hasura_events._column_list(v jsonb, tbl regclass, path text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    col jsonb;
    seen text[] := '{}';
BEGIN
    IF v = '"*"' THEN
        RETURN v;
    END IF;
    IF pg_catalog.jsonb_typeof(v) <> 'array' THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s must be "*" or an array of column names, not %s', path, v::text));
    END IF;
    IF pg_catalog.jsonb_array_length(v) = 0 THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s is an empty list', path),
            'List at least one column, or use "*" for all columns.');
    END IF;
    FOR col IN SELECT pg_catalog.jsonb_array_elements(v) LOOP
        PERFORM hasura_events._expect(col, 'string', path || '[]');
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                       WHERE attrelid = tbl AND attname = col #>> '{}' AND attnum > 0 AND NOT attisdropped) THEN
            PERFORM hasura_events._fail('42703',
                pg_catalog.format('column "%s" of %s does not exist in table %s', col #>> '{}', path, tbl::text));
        END IF;
        IF (col #>> '{}') = ANY (seen) THEN
            PERFORM hasura_events._fail('22023', pg_catalog.format('column "%s" appears twice in %s', col #>> '{}', path));
        END IF;
        seen := seen || (col #>> '{}');
    END LOOP;
    RETURN v;
END
$$;

-- _operation_spec: validates insert/update/delete; returns the normalized spec or null.
CREATE FUNCTION hasura_events._operation_spec(v jsonb, tbl regclass, path text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF v IS NULL OR v = 'null' THEN
        RETURN NULL;
    END IF;
    PERFORM hasura_events._expect(v, 'object', path);
    PERFORM hasura_events._check_keys(v, '{columns,payload}', path);
    IF v -> 'columns' IS NULL OR v -> 'columns' = 'null' THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s.columns is required', path),
            'Use "columns": "*" to listen to every column.');
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'columns', hasura_events._column_list(v -> 'columns', tbl, path || '.columns'),
        'payload', CASE WHEN v -> 'payload' IS NULL OR v -> 'payload' = 'null' THEN '"*"'::jsonb
                        ELSE hasura_events._column_list(v -> 'payload', tbl, path || '.payload') END);
END
$$;

-- _headers: validates headers: [{name, value} | {name, value_from_env}].
CREATE FUNCTION hasura_events._headers(v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    h jsonb;
    i integer := 0;
    path text;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        RETURN '[]';
    END IF;
    PERFORM hasura_events._expect(v, 'array', 'args.headers');
    FOR h IN SELECT pg_catalog.jsonb_array_elements(v) LOOP
        path := pg_catalog.format('args.headers[%s]', i);
        PERFORM hasura_events._expect(h, 'object', path);
        PERFORM hasura_events._check_keys(h, '{name,value,value_from_env}', path);
        PERFORM hasura_events._check_value('header_name', hasura_events._text_arg(h, 'name', path, true), path || '.name');
        IF (h ? 'value') = (h ? 'value_from_env') THEN
            PERFORM hasura_events._fail('22023', pg_catalog.format('%s must have exactly one of value and value_from_env', path));
        END IF;
        IF h ? 'value' THEN
            PERFORM hasura_events._check_value('header_value', hasura_events._text_arg(h, 'value', path, true), path || '.value');
        ELSE
            PERFORM hasura_events._check_value('env_name', hasura_events._text_arg(h, 'value_from_env', path, true),
                path || '.value_from_env');
        END IF;
        i := i + 1;
    END LOOP;
    RETURN v;
END
$$;

-- _pg_trigger_name: the pg trigger of one operation of an event trigger (fits in 63 bytes).
CREATE FUNCTION hasura_events._pg_trigger_name(trigger_name text, op text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'hasura_events_' || trigger_name || '_' || pg_catalog.lower(op)
$$;

-- _pg_trigger_names: the names the pg triggers of an event trigger may have.
CREATE FUNCTION hasura_events._pg_trigger_names(trigger_name text) RETURNS name[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[hasura_events._pg_trigger_name(trigger_name, 'insert'),
                 hasura_events._pg_trigger_name(trigger_name, 'update'),
                 hasura_events._pg_trigger_name(trigger_name, 'delete')]::name[]
$$;

-- _drop_pg_triggers: drops the pg triggers of an event trigger, wherever its table now is.
CREATE FUNCTION hasura_events._drop_pg_triggers(trigger_name text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tg.tgname, tg.tgrelid::regclass AS tbl
             FROM pg_catalog.pg_trigger tg
             WHERE tg.tgfoid = 'hasura_events.capture()'::regprocedure AND tg.tgparentid = 0
               AND tg.tgname = ANY (hasura_events._pg_trigger_names(trigger_name))
    LOOP
        EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', t.tgname, t.tbl);
    END LOOP;
END
$$;

-- _create_pg_triggers: one pg trigger per operation. Plain tables get statement-level triggers
-- with transition tables (one call per statement); partitioned tables, and triggers that must
-- fire on logical-replication apply (which fires row triggers only), get row-level ones, which
-- Postgres clones onto every partition, present and future. So do partitions and inheritance
-- children: a statement-level trigger on them does not fire when the statement names the parent.
CREATE FUNCTION hasura_events._create_pg_triggers(def hasura_events.event_triggers) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    tbl regclass := pg_catalog.format('%I.%I', def.schema_name, def.table_name)::regclass;
    row_level boolean := def.trigger_on_replication
        OR (SELECT relkind = 'p' OR relispartition FROM pg_catalog.pg_class WHERE oid = tbl)
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits WHERE inhrelid = tbl);
    op text;
    spec jsonb;
    tgname text;
    transition text;
BEGIN
    FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
        spec := CASE op WHEN 'INSERT' THEN def.insert_spec WHEN 'UPDATE' THEN def.update_spec ELSE def.delete_spec END;
        CONTINUE WHEN spec IS NULL;
        tgname := hasura_events._pg_trigger_name(def.name, op);
        transition := CASE op
            WHEN 'INSERT' THEN 'REFERENCING NEW TABLE AS hasura_events_new'
            WHEN 'UPDATE' THEN 'REFERENCING OLD TABLE AS hasura_events_old NEW TABLE AS hasura_events_new'
            ELSE 'REFERENCING OLD TABLE AS hasura_events_old' END;
        EXECUTE pg_catalog.format(
            'CREATE TRIGGER %I AFTER %s ON %s %s FOR EACH %s EXECUTE FUNCTION hasura_events.capture(%L, %L, %L)',
            tgname, op, tbl, CASE WHEN row_level THEN '' ELSE transition END,
            CASE WHEN row_level THEN 'ROW' ELSE 'STATEMENT' END,
            def.name,
            CASE WHEN spec -> 'columns' = '"*"' THEN '*' ELSE (spec -> 'columns')::text END,
            CASE WHEN spec -> 'payload' = '"*"' THEN '*' ELSE (spec -> 'payload')::text END);
        IF def.trigger_on_replication THEN
            EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', tbl, tgname);
        END IF;
    END LOOP;
END
$$;

-- _resolve_table: the table argument ({schema, name} or a bare name in public) as a regclass,
-- checked to be a table the caller owns.
CREATE FUNCTION hasura_events._resolve_table(v jsonb, OUT tbl regclass, OUT schema_name text, OUT table_name text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    kind "char";
    owner oid;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        PERFORM hasura_events._fail('22023', 'args.table is required', 'Give the table as {"schema": "public", "name": "my_table"}.');
    END IF;
    IF pg_catalog.jsonb_typeof(v) = 'string' THEN
        schema_name := 'public';
        table_name := v #>> '{}';
    ELSE
        PERFORM hasura_events._expect(v, 'object', 'args.table');
        PERFORM hasura_events._check_keys(v, '{schema,name}', 'args.table');
        schema_name := coalesce(hasura_events._text_arg(v, 'schema', 'args.table', false), 'public');
        table_name := hasura_events._text_arg(v, 'name', 'args.table', true);
    END IF;
    SELECT c.oid, c.relkind, c.relowner INTO tbl, kind, owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = schema_name AND c.relname = table_name;
    IF tbl IS NULL THEN
        PERFORM hasura_events._fail('42P01', pg_catalog.format('table %I.%I does not exist', schema_name, table_name),
            'Schema and table names are case-sensitive and given unquoted, e.g. {"schema": "public", "name": "Orders"}.');
    END IF;
    IF kind NOT IN ('r', 'p') THEN
        PERFORM hasura_events._fail('42809', pg_catalog.format('%s is not a table', tbl::text),
            'Event triggers can be created on ordinary and partitioned tables only.');
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, owner, 'USAGE') THEN
        PERFORM hasura_events._fail('42501', pg_catalog.format('must be owner of table %s', tbl::text),
            'Only the owner of a table (or a superuser) can create event triggers on it.');
    END IF;
END
$$;

-- _event_row_json: an event_log row in the shape of Hasura's answers.
CREATE FUNCTION hasura_events._event_json(e hdb_catalog.event_log) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', e.id, 'schema_name', e.schema_name, 'table_name', e.table_name, 'trigger_name', e.trigger_name,
        'payload', e.payload, 'delivered', e.delivered, 'error', e.error, 'tries', e.tries,
        'created_at', e.created_at, 'locked', e.locked, 'next_retry_at', e.next_retry_at, 'archived', e.archived)
$$;

CREATE FUNCTION hasura_events._invocation_json(i hdb_catalog.event_invocation_logs) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.jsonb_build_object(
        'id', i.id, 'trigger_name', i.trigger_name, 'event_id', i.event_id, 'http_status', i.status,
        'status', i.status, 'request', i.request, 'response', i.response, 'created_at', i.created_at)
$$;

-- _existing_trigger: the definition of a trigger that must exist.
CREATE FUNCTION hasura_events._existing_trigger(trigger_name text) RETURNS hasura_events.event_triggers
LANGUAGE plpgsql STABLE AS $$
DECLARE
    def hasura_events.event_triggers;
BEGIN
    SELECT * INTO def FROM hasura_events.event_triggers WHERE name = trigger_name;
    IF NOT FOUND THEN
        PERFORM hasura_events._fail('42704', pg_catalog.format('event trigger "%s" does not exist', trigger_name),
            'SELECT name FROM hasura_events.event_triggers lists the event triggers of this database.');
    END IF;
    RETURN def;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- The API
-- ---------------------------------------------------------------------------------------------

-- create_event_trigger: Hasura's pg_create_event_trigger.
CREATE FUNCTION hasura_events.create_event_trigger(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    def hasura_events.event_triggers;
    old hasura_events.event_triggers;
    t record;
    retry jsonb;
    do_replace boolean;
BEGIN
    PERFORM hasura_events._expect(args, 'object', 'args');
    PERFORM hasura_events._check_keys(args,
        '{name,table,source,webhook,webhook_from_env,insert,update,delete,enable_manual,retry_conf,headers,replace,trigger_on_replication}',
        'args', '{request_transform,response_transform,cleanup_config}');

    def.name := hasura_events._text_arg(args, 'name', 'args', true);
    PERFORM hasura_events._check_value('trigger_name', def.name, 'args.name',
        'Trigger names match ^[A-Za-z]+[A-Za-z0-9_\-]*$ and have at most 42 characters.');
    t := hasura_events._resolve_table(args -> 'table');
    def.schema_name := t.schema_name;
    def.table_name := t.table_name;
    def.source := coalesce(hasura_events._text_arg(args, 'source', 'args', false), 'default');

    def.webhook := hasura_events._text_arg(args, 'webhook', 'args', false);
    def.webhook_from_env := hasura_events._text_arg(args, 'webhook_from_env', 'args', false);
    IF (def.webhook IS NULL) = (def.webhook_from_env IS NULL) THEN
        PERFORM hasura_events._fail('22023',
            CASE WHEN def.webhook IS NULL THEN 'neither args.webhook nor args.webhook_from_env is given'
                 ELSE 'both args.webhook and args.webhook_from_env are given' END,
            'Give exactly one: "webhook": "https://..." or "webhook_from_env": "VARIABLE_NAME".');
    END IF;
    IF def.webhook IS NOT NULL THEN
        PERFORM hasura_events._check_value('webhook', def.webhook, 'args.webhook');
    ELSE
        PERFORM hasura_events._check_value('env_name', def.webhook_from_env, 'args.webhook_from_env');
    END IF;

    def.insert_spec := hasura_events._operation_spec(args -> 'insert', t.tbl, 'args.insert');
    def.update_spec := hasura_events._operation_spec(args -> 'update', t.tbl, 'args.update');
    def.delete_spec := hasura_events._operation_spec(args -> 'delete', t.tbl, 'args.delete');
    def.enable_manual := hasura_events._bool_arg(args, 'enable_manual', 'args', false);
    IF def.insert_spec IS NULL AND def.update_spec IS NULL AND def.delete_spec IS NULL AND NOT def.enable_manual THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('event trigger "%s" has no operation', def.name),
            'Give at least one of "insert", "update", "delete", or "enable_manual": true.');
    END IF;

    retry := args -> 'retry_conf';
    IF retry IS NOT NULL AND retry <> 'null' THEN
        PERFORM hasura_events._expect(retry, 'object', 'args.retry_conf');
        PERFORM hasura_events._check_keys(retry, '{num_retries,interval_sec,timeout_sec}', 'args.retry_conf');
    ELSE
        retry := '{}';
    END IF;
    def.num_retries := hasura_events._int_arg(retry, 'num_retries', 'args.retry_conf', 0, 0);
    def.interval_sec := hasura_events._int_arg(retry, 'interval_sec', 'args.retry_conf', 10, 0);
    def.timeout_sec := hasura_events._int_arg(retry, 'timeout_sec', 'args.retry_conf', 60, 1);

    def.headers := hasura_events._headers(args -> 'headers');
    def.trigger_on_replication := hasura_events._bool_arg(args, 'trigger_on_replication', 'args', false);
    do_replace := hasura_events._bool_arg(args, 'replace', 'args', false);

    def.definition := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', def.name,
        'table', pg_catalog.jsonb_build_object('schema', def.schema_name, 'name', def.table_name),
        'source', def.source,
        'webhook', def.webhook, 'webhook_from_env', def.webhook_from_env,
        'insert', def.insert_spec, 'update', def.update_spec, 'delete', def.delete_spec,
        'enable_manual', def.enable_manual,
        'retry_conf', pg_catalog.jsonb_build_object('num_retries', def.num_retries, 'interval_sec', def.interval_sec,
                                                    'timeout_sec', def.timeout_sec),
        'headers', def.headers,
        'trigger_on_replication', def.trigger_on_replication));
    def.created_at := pg_catalog.now();
    def.updated_at := pg_catalog.now();

    SELECT * INTO old FROM hasura_events.event_triggers WHERE name = def.name FOR UPDATE;
    IF FOUND THEN
        IF NOT do_replace THEN
            PERFORM hasura_events._fail('42710', pg_catalog.format('event trigger "%s" already exists', def.name),
                'Add "replace": true to change its definition, or delete it first.');
        END IF;
        IF (old.schema_name, old.table_name) IS DISTINCT FROM (def.schema_name, def.table_name) THEN
            PERFORM hasura_events._fail('22023',
                pg_catalog.format('event trigger "%s" is on table %I.%I; replace cannot move it to %I.%I',
                    def.name, old.schema_name, old.table_name, def.schema_name, def.table_name),
                'Delete the event trigger and create it again on the other table.');
        END IF;
        PERFORM hasura_events._drop_pg_triggers(def.name);
        def.created_at := old.created_at;
        DELETE FROM hasura_events.event_triggers WHERE name = def.name;
    END IF;

    def.export_omits := hasura_events._export_omits(args);
    INSERT INTO hasura_events.event_triggers SELECT def.*;
    PERFORM hasura_events._create_pg_triggers(def);
    PERFORM hasura_events._drop_hasura_pg_triggers(def.name);
    RETURN '{"message": "success"}';
END
$$;

-- _archive_events: archives every event of these triggers, in two statements, each of which an
-- index serves: events that left the queue (trigger-name index), events still pending (claim
-- index).
CREATE FUNCTION hasura_events._archive_events(names text[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE hdb_catalog.event_log e SET archived = true
     WHERE e.trigger_name = ANY (names) AND (e.delivered OR e.error) AND NOT e.archived;
    UPDATE hdb_catalog.event_log e SET archived = true
     WHERE e.trigger_name = ANY (names) AND NOT e.delivered AND NOT e.error AND NOT e.archived;
$$;

-- delete_event_trigger: Hasura's pg_delete_event_trigger. Its events are archived, not deleted.
CREATE FUNCTION hasura_events.delete_event_trigger(name text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    def hasura_events.event_triggers := hasura_events._existing_trigger(name);
BEGIN
    PERFORM hasura_events._drop_pg_triggers(def.name);
    DELETE FROM hasura_events.event_triggers t WHERE t.name = def.name;
    PERFORM hasura_events._archive_events(ARRAY[def.name]);
    RETURN '{"message": "success"}';
END
$$;

-- redeliver_event: Hasura's pg_redeliver_event.
CREATE FUNCTION hasura_events.redeliver_event(event_id text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    e hdb_catalog.event_log;
BEGIN
    SELECT * INTO e FROM hdb_catalog.event_log WHERE id = event_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM hasura_events._fail('42704', pg_catalog.format('event "%s" does not exist', event_id));
    END IF;
    IF e.locked IS NOT NULL AND NOT e.delivered AND NOT e.error THEN
        PERFORM hasura_events._fail('55006', pg_catalog.format('event "%s" is being delivered right now', event_id),
            'Wait for the attempt to finish, then redeliver.');
    END IF;
    IF e.archived THEN
        PERFORM hasura_events._fail('55000', pg_catalog.format('event "%s" belongs to a deleted event trigger', event_id));
    END IF;
    UPDATE hdb_catalog.event_log
       SET delivered = false, error = false, tries = 0, next_retry_at = NULL, locked = NULL
     WHERE id = event_id;
    PERFORM hasura_events._wake();
    RETURN '{"message": "success"}';
END
$$;

-- invoke_event_trigger: Hasura's pg_invoke_event_trigger: a MANUAL event with the given row.
CREATE FUNCTION hasura_events.invoke_event_trigger(name text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    def hasura_events.event_triggers := hasura_events._existing_trigger(name);
    new_id text;
    session_variables jsonb;
BEGIN
    BEGIN
        session_variables := NULLIF(pg_catalog.current_setting('hasura.user', true), '')::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        PERFORM hasura_events._fail('22023', 'setting "hasura.user" is not valid JSON',
            'Set it to a JSON object, e.g. SELECT set_config(''hasura.user'', ''{"x-hasura-role": "user"}'', true), '
            'or to an empty string for null.');
    END;
    IF NOT def.enable_manual THEN
        PERFORM hasura_events._fail('55000',
            pg_catalog.format('event trigger "%s" does not allow manual invocation', def.name),
            'Create it again with "enable_manual": true and "replace": true.');
    END IF;
    IF payload IS NULL THEN
        PERFORM hasura_events._fail('22023', 'args.payload is required');
    END IF;
    INSERT INTO hdb_catalog.event_log (schema_name, table_name, trigger_name, payload)
    VALUES (def.schema_name, def.table_name, def.name,
            pg_catalog.jsonb_build_object('op', 'MANUAL',
                'data', pg_catalog.jsonb_build_object('old', NULL, 'new', payload),
                'session_variables', session_variables, 'trace_context', NULL))
    RETURNING id INTO new_id;
    PERFORM hasura_events._wake();
    RETURN pg_catalog.jsonb_build_object('event_id', new_id);
END
$$;

-- get_event_logs: Hasura's pg_get_event_logs; status pending, processed or all; newest first.
CREATE FUNCTION hasura_events.get_event_logs(name text, status text DEFAULT 'all', "limit" integer DEFAULT 100,
                                             "offset" integer DEFAULT 0) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    def hasura_events.event_triggers := hasura_events._existing_trigger(name);
BEGIN
    IF status IS NULL OR status NOT IN ('pending', 'processed', 'all') THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('invalid status "%s"', status),
            'status is one of "pending", "processed", "all".');
    END IF;
    IF "limit" < 0 OR "offset" < 0 THEN
        PERFORM hasura_events._fail('22023', 'limit and offset must not be negative');
    END IF;
    -- The newest limit + offset of each kind, merged. Each branch's WHERE clause names the index
    -- it reads: events that left the queue are in the trigger-name index (whose predicate must
    -- follow from the clause), pending ones in the claim index; the status skips a branch, or
    -- (processed) the archived events that were never delivered nor dead.
    RETURN coalesce((
        SELECT pg_catalog.jsonb_agg(hasura_events._event_json(e) ORDER BY e.created_at DESC, e.id)
        FROM (SELECT * FROM ((SELECT * FROM hdb_catalog.event_log e
                              WHERE status <> 'pending'
                                AND e.trigger_name = def.name AND (e.delivered OR e.error OR e.archived)
                                AND (status = 'all' OR e.delivered OR e.error)
                              ORDER BY e.created_at DESC, e.id LIMIT "limit"::bigint + "offset")
                             UNION ALL
                             (SELECT * FROM hdb_catalog.event_log e
                              WHERE status <> 'processed'
                                AND e.trigger_name = def.name AND NOT e.delivered AND NOT e.error AND NOT e.archived
                              ORDER BY e.created_at DESC, e.id LIMIT "limit"::bigint + "offset")) u
              ORDER BY u.created_at DESC, u.id LIMIT "limit" OFFSET "offset") e), '[]');
END
$$;

-- get_event_invocation_logs: Hasura's pg_get_event_invocation_logs; newest first.
CREATE FUNCTION hasura_events.get_event_invocation_logs(name text, "limit" integer DEFAULT 100,
                                                        "offset" integer DEFAULT 0) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    def hasura_events.event_triggers := hasura_events._existing_trigger(name);
BEGIN
    IF "limit" < 0 OR "offset" < 0 THEN
        PERFORM hasura_events._fail('22023', 'limit and offset must not be negative');
    END IF;
    RETURN coalesce((
        SELECT pg_catalog.jsonb_agg(hasura_events._invocation_json(i) ORDER BY i.created_at DESC, i.id)
        FROM (SELECT * FROM hdb_catalog.event_invocation_logs i WHERE i.trigger_name = def.name
              ORDER BY i.created_at DESC, i.id LIMIT "limit" OFFSET "offset") i), '[]');
END
$$;

-- get_event_by_id: Hasura's pg_get_event_by_id: {event, invocations}.
CREATE FUNCTION hasura_events.get_event_by_id(event_id text, invocation_log_limit integer DEFAULT 100,
                                              invocation_log_offset integer DEFAULT 0) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    e hdb_catalog.event_log;
BEGIN
    SELECT * INTO e FROM hdb_catalog.event_log WHERE id = event_id;
    IF NOT FOUND THEN
        PERFORM hasura_events._fail('42704', pg_catalog.format('event "%s" does not exist', event_id));
    END IF;
    IF invocation_log_limit < 0 OR invocation_log_offset < 0 THEN
        PERFORM hasura_events._fail('22023', 'invocation_log_limit and invocation_log_offset must not be negative');
    END IF;
    RETURN pg_catalog.jsonb_build_object(
        'event', hasura_events._event_json(e),
        'invocations', coalesce((
            SELECT pg_catalog.jsonb_agg(hasura_events._invocation_json(i) ORDER BY i.created_at DESC, i.id)
            FROM (SELECT * FROM hdb_catalog.event_invocation_logs i WHERE i.event_id = e.id
                  ORDER BY i.created_at DESC, i.id LIMIT invocation_log_limit OFFSET invocation_log_offset) i), '[]'));
END
$$;

-- metadata: a Hasura metadata API request body, verbatim: {"type": ..., "args": ...}.
CREATE FUNCTION hasura_events.metadata(request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    req_type text;
    args jsonb;
    results jsonb := '[]';
    r jsonb;
BEGIN
    PERFORM hasura_events._expect(request, 'object', 'request');
    PERFORM hasura_events._check_keys(request, '{type,args,version,resource_version,source}', 'request');
    req_type := hasura_events._text_arg(request, 'type', 'request', true);
    args := coalesce(request -> 'args', 'null');

    CASE req_type
    WHEN 'bulk', 'bulk_atomic' THEN
        PERFORM hasura_events._expect(args, 'array', 'args');
        FOR r IN SELECT pg_catalog.jsonb_array_elements(args) LOOP
            results := results || pg_catalog.jsonb_build_array(hasura_events.metadata(r));
        END LOOP;
        RETURN results;
    WHEN 'pg_create_event_trigger' THEN
        RETURN hasura_events.create_event_trigger(args);
    WHEN 'pg_delete_event_trigger' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name,source}', 'args');
        RETURN hasura_events.delete_event_trigger(hasura_events._text_arg(args, 'name', 'args', true));
    WHEN 'pg_redeliver_event' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{event_id,source}', 'args');
        RETURN hasura_events.redeliver_event(hasura_events._text_arg(args, 'event_id', 'args', true));
    WHEN 'pg_invoke_event_trigger' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name,payload,source}', 'args');
        IF args -> 'payload' IS NULL THEN
            PERFORM hasura_events._fail('22023', 'args.payload is required');
        END IF;
        RETURN hasura_events.invoke_event_trigger(hasura_events._text_arg(args, 'name', 'args', true), args -> 'payload');
    WHEN 'pg_get_event_logs' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name,status,limit,offset,source}', 'args');
        RETURN hasura_events.get_event_logs(hasura_events._text_arg(args, 'name', 'args', true),
            coalesce(hasura_events._text_arg(args, 'status', 'args', false), 'all'),
            hasura_events._int_arg(args, 'limit', 'args', 100, 0), hasura_events._int_arg(args, 'offset', 'args', 0, 0));
    WHEN 'pg_get_event_invocation_logs' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name,limit,offset,source}', 'args');
        RETURN hasura_events.get_event_invocation_logs(hasura_events._text_arg(args, 'name', 'args', true),
            hasura_events._int_arg(args, 'limit', 'args', 100, 0), hasura_events._int_arg(args, 'offset', 'args', 0, 0));
    WHEN 'export_metadata', 'replace_metadata', 'reload_metadata', 'clear_metadata', 'create_event_trigger',
         'delete_event_trigger', 'redeliver_event', 'invoke_event_trigger' THEN
        RETURN hasura_events._metadata_request(req_type, args, request);
    WHEN 'pg_get_event_by_id' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{event_id,invocation_log_limit,invocation_log_offset,source}', 'args');
        RETURN hasura_events.get_event_by_id(hasura_events._text_arg(args, 'event_id', 'args', true),
            hasura_events._int_arg(args, 'invocation_log_limit', 'args', 100, 0),
            hasura_events._int_arg(args, 'invocation_log_offset', 'args', 0, 0));
    ELSE
        PERFORM hasura_events._fail('22023', pg_catalog.format('unsupported request type "%s"', req_type),
            'Supported: pg_create_event_trigger, pg_delete_event_trigger, pg_redeliver_event, pg_invoke_event_trigger, '
            'pg_get_event_logs, pg_get_event_invocation_logs, pg_get_event_by_id, bulk, export_metadata, replace_metadata, '
            'reload_metadata, clear_metadata, create_event_trigger, delete_event_trigger, redeliver_event, invoke_event_trigger.');
    END CASE;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- DDL: dropped tables and renamed tables
-- ---------------------------------------------------------------------------------------------

-- _on_sql_drop: a dropped table takes its event triggers with it; their events are archived
-- (kept, never delivered), exactly as delete_event_trigger does.
CREATE FUNCTION hasura_events._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d record;
    gone text[];
BEGIN
    FOR d IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects()
             WHERE object_type = 'table' AND NOT is_temporary LOOP
        WITH g AS (
            DELETE FROM hasura_events.event_triggers t
            WHERE t.schema_name = d.schema_name AND t.table_name = d.object_name
            RETURNING t.name)
        SELECT pg_catalog.array_agg(g.name) INTO gone FROM g;
        IF gone IS NOT NULL THEN
            PERFORM hasura_events._archive_events(gone);
        END IF;
    END LOOP;
END
$$;

-- _on_ddl_end: keeps the table names of definitions right after ALTER TABLE ... RENAME or
-- SET SCHEMA, or ALTER SCHEMA ... RENAME (the pg triggers follow the table; the names are looked
-- up from them). A table that became a partition or an inheritance child (ATTACH PARTITION,
-- INHERIT) gets row-level pg triggers instead of statement-level ones (see _create_pg_triggers).
CREATE FUNCTION hasura_events._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    def hasura_events.event_triggers;
BEGIN
    UPDATE hasura_events.event_triggers t
       SET schema_name = n.nspname, table_name = c.relname, updated_at = now(),
           definition = jsonb_set(t.definition, '{table}', jsonb_build_object('schema', n.nspname, 'name', c.relname))
      FROM pg_trigger tg
      JOIN pg_class c ON c.oid = tg.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE tg.tgfoid = 'hasura_events.capture()'::regprocedure AND tg.tgparentid = 0
       AND tg.tgname = ANY (hasura_events._pg_trigger_names(t.name))
       AND (t.schema_name, t.table_name) IS DISTINCT FROM (n.nspname::text, c.relname::text);

    FOR def IN SELECT DISTINCT t.*
               FROM hasura_events.event_triggers t
               JOIN pg_class c ON c.relname = t.table_name
               JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = t.schema_name
               JOIN pg_trigger tg ON tg.tgrelid = c.oid AND tg.tgfoid = 'hasura_events.capture()'::regprocedure
                    AND tg.tgname = ANY (hasura_events._pg_trigger_names(t.name))
              WHERE tg.tgtype & 1 = 0 -- statement-level
                AND (c.relispartition OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid))
    LOOP
        PERFORM hasura_events._drop_pg_triggers(def.name);
        PERFORM hasura_events._create_pg_triggers(def);
    END LOOP;
END
$$;

CREATE EVENT TRIGGER hasura_events_sql_drop ON sql_drop EXECUTE FUNCTION hasura_events._on_sql_drop();
CREATE EVENT TRIGGER hasura_events_ddl_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'ALTER SCHEMA') EXECUTE FUNCTION hasura_events._on_ddl_end();

-- ---------------------------------------------------------------------------------------------
-- Privileges: nothing for PUBLIC; hasura_events_admin may use everything.
-- ---------------------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hasura_events_admin') THEN
        CREATE ROLE hasura_events_admin NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON SCHEMA hasura_events, hdb_catalog FROM PUBLIC;
-- In hdb_catalog only the extension's tables: Hasura's other objects there are left as they are.
REVOKE ALL ON ALL TABLES IN SCHEMA hasura_events FROM PUBLIC;
REVOKE ALL ON hdb_catalog.event_log, hdb_catalog.event_invocation_logs FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA hasura_events FROM PUBLIC;
GRANT USAGE ON SCHEMA hasura_events, hdb_catalog TO hasura_events_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA hasura_events TO hasura_events_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON hdb_catalog.event_log, hdb_catalog.event_invocation_logs TO hasura_events_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA hasura_events TO hasura_events_admin;
