-- hasura_events--0.1.0--0.2.0.sql: ALTER EXTENSION hasura_events UPDATE from 0.1.0 to 0.2.0.
--
-- Brings a 0.1.0 database to what extension/sql/hasura_events.sql and delivery.sql create at 0.2.0,
-- keeping every trigger definition, event and invocation log. tests/integration/test_upgrade.py
-- upgrades a populated 0.1.0 database and compares its objects with a fresh 0.2.0 install.

\echo Use "ALTER EXTENSION hasura_events UPDATE" to load this file. \quit

-- ---- metadata: export_metadata, replace_metadata, reload_metadata, clear_metadata, the v1 names ----
-- (extension/sql/metadata.sql, and the lines of hasura_events.sql that call it). Taking over
-- Hasura's catalog happens at CREATE EXTENSION only: a 0.1.0 database has our tables already.

ALTER TABLE hasura_events.event_triggers ADD COLUMN export_omits text[] NOT NULL DEFAULT '{}';

-- _export_omits: the optional parts of Hasura's form that create_event_trigger args lack.
CREATE FUNCTION hasura_events._export_omits(args jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.array_cat(
        ARRAY(SELECT op || '.payload' FROM pg_catalog.unnest(ARRAY['insert', 'update', 'delete']) op
               WHERE pg_catalog.jsonb_typeof(args -> op) = 'object' AND coalesce(args -> op -> 'payload', 'null') = 'null'),
        CASE WHEN pg_catalog.jsonb_typeof(args -> 'retry_conf') = 'object'
                  AND coalesce(args -> 'retry_conf' -> 'timeout_sec', 'null') = 'null'
             THEN ARRAY['retry_conf.timeout_sec'] ELSE '{}'::text[] END)
$$;

-- _export_op: one operation of a definition as Hasura exports it.
CREATE FUNCTION hasura_events._export_op(spec jsonb, op text, omits text[]) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN spec IS NULL THEN NULL
                WHEN (op || '.payload') = ANY (omits) THEN pg_catalog.jsonb_build_object('columns', spec -> 'columns')
                ELSE pg_catalog.jsonb_build_object('columns', spec -> 'columns', 'payload', spec -> 'payload') END
$$;

-- _export_trigger: an event trigger as Hasura's export_metadata shows it (EventTriggerConf).
CREATE FUNCTION hasura_events._export_trigger(t hasura_events.event_triggers) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'name', t.name,
        'definition', pg_catalog.jsonb_build_object(
            'enable_manual', CASE WHEN NOT 'enable_manual' = ANY (t.export_omits) THEN t.enable_manual END,
            'insert', hasura_events._export_op(t.insert_spec, 'insert', t.export_omits),
            'update', hasura_events._export_op(t.update_spec, 'update', t.export_omits),
            'delete', hasura_events._export_op(t.delete_spec, 'delete', t.export_omits)),
        'retry_conf', pg_catalog.jsonb_build_object(
            'num_retries', t.num_retries, 'interval_sec', t.interval_sec,
            'timeout_sec', CASE WHEN NOT 'retry_conf.timeout_sec' = ANY (t.export_omits) THEN t.timeout_sec END),
        'webhook', t.webhook,
        'webhook_from_env', t.webhook_from_env,
        'headers', CASE WHEN pg_catalog.jsonb_array_length(t.headers) > 0 THEN t.headers END,
        'trigger_on_replication', CASE WHEN t.trigger_on_replication THEN true END))
$$;

-- export_metadata: Hasura's metadata object (version 3) with every event trigger of this
-- database, by source (as each trigger recorded it), table and name, sorted as Hasura sorts them.
CREATE FUNCTION hasura_events.export_metadata() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.jsonb_build_object('version', 3, 'sources', coalesce((
        SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', s.source, 'kind', 'postgres', 'tables', s.tables)
                                    ORDER BY s.source COLLATE "C")
        FROM (SELECT tb.source, pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                         'table', pg_catalog.jsonb_build_object('schema', tb.schema_name, 'name', tb.table_name),
                         'event_triggers', tb.triggers)
                     ORDER BY tb.schema_name COLLATE "C", tb.table_name COLLATE "C") AS tables
              FROM (SELECT t.source, t.schema_name, t.table_name,
                           pg_catalog.jsonb_agg(hasura_events._export_trigger(t) ORDER BY t.name COLLATE "C") AS triggers
                    FROM hasura_events.event_triggers t
                    GROUP BY t.source, t.schema_name, t.table_name) tb
              GROUP BY tb.source) s), '[]'))
$$;

-- _drop_hasura_pg_triggers: in a database Hasura used, Hasura's pg trigger functions of an
-- event trigger (hdb_catalog.notify_hasura_<name>_<OP>) and, with them, its pg triggers: ours
-- record the events from now on. Events they recorded wait in the log and are delivered now that
-- the trigger exists here again (the dispatcher is told to look from the start of the queue).
CREATE FUNCTION hasura_events._drop_hasura_pg_triggers(trigger_name text) RETURNS void
LANGUAGE plpgsql SET client_min_messages = warning AS $$
DECLARE
    op text;
    fn regprocedure;
    found_any boolean := false;
BEGIN
    IF pg_catalog.to_regnamespace('hdb_catalog') IS NULL THEN
        RETURN;
    END IF;
    FOREACH op IN ARRAY ARRAY['INSERT', 'UPDATE', 'DELETE'] LOOP
        fn := pg_catalog.to_regprocedure(pg_catalog.format('hdb_catalog.%I()', 'notify_hasura_' || trigger_name || '_' || op));
        CONTINUE WHEN fn IS NULL;
        EXECUTE pg_catalog.format('DROP FUNCTION %s CASCADE', fn);
        found_any := true;
    END LOOP;
    IF found_any OR EXISTS (SELECT 1 FROM hdb_catalog.event_log e
                            WHERE e.trigger_name = _drop_hasura_pg_triggers.trigger_name
                              AND NOT e.delivered AND NOT e.error AND NOT e.archived) THEN
        PERFORM hasura_events._wake();
    END IF;
END
$$;

-- _ignored_parts: the parts of a metadata object that replace_metadata accepts and ignores
-- (GraphQL-side metadata this project has no use for), as paths with [] for array elements.
CREATE FUNCTION hasura_events._ignored_parts(obj jsonb, prefix text, keys text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY(SELECT prefix || k FROM pg_catalog.jsonb_each(obj) e(k, v)
                  WHERE k = ANY (keys) AND v NOT IN ('null', '[]', '{}', 'false'))
$$;

-- _metadata_triggers: the event triggers of a metadata object, one row each, with its source and
-- table, and the sources holding them; refuses what replace_metadata cannot honour (another source
-- kind, malformed parts) and collects what it ignores.
CREATE FUNCTION hasura_events._metadata_triggers(md jsonb, path text, OUT triggers jsonb, OUT ignored text[],
                                                 OUT trigger_sources text[])
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    version integer;
    sources jsonb;
    src jsonb;
    tbl jsonb;
    et jsonb;
    src_name text;
    kind text;
    tname jsonb;
    spath text;
    tpath text;
    i integer;
    j integer;
    k integer;
    -- Hasura's metadata (version 3) keys besides sources; version 1 and 2 have tables and
    -- functions at the top (one source, "default")
    top_ignored constant text[] := '{remote_schemas,actions,custom_types,cron_triggers,query_collections,allowlist,'
        'inherited_roles,network,backend_configs,api_limits,metrics_config,opentelemetry,rest_endpoints,'
        'graphql_schema_introspection,functions}';
    source_ignored constant text[] := '{functions,configuration,query_tags,customization,health_check,native_queries,'
        'stored_procedures,logical_models}';
    table_ignored constant text[] := '{is_enum,configuration,object_relationships,array_relationships,computed_fields,'
        'remote_relationships,insert_permissions,select_permissions,update_permissions,delete_permissions,'
        'apollo_federation_config,logical_model}';
BEGIN
    triggers := '[]';
    ignored := '{}';
    trigger_sources := '{}';
    PERFORM hasura_events._expect(md, 'object', path);
    version := hasura_events._int_arg(md, 'version', path, 1, 1);
    IF version > 3 THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s.version must be 1, 2 or 3, not %s', path, version));
    END IF;
    IF version = 3 THEN
        PERFORM hasura_events._check_keys(md, ARRAY['version', 'sources'] || top_ignored, path);
        sources := coalesce(md -> 'sources', '[]');
    ELSE
        PERFORM hasura_events._check_keys(md, ARRAY['version', 'tables'] || top_ignored, path);
        sources := pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object('name', 'default', 'kind', 'postgres',
            'tables', coalesce(md -> 'tables', '[]')));
    END IF;
    ignored := hasura_events._ignored_parts(md, '', top_ignored);
    PERFORM hasura_events._expect(sources, 'array', path || '.sources');

    i := 0;
    FOR src IN SELECT pg_catalog.jsonb_array_elements(sources) LOOP
        spath := pg_catalog.format('%s.sources[%s]', path, i);
        PERFORM hasura_events._expect(src, 'object', spath);
        PERFORM hasura_events._check_keys(src, ARRAY['name', 'kind', 'tables'] || source_ignored, spath);
        src_name := hasura_events._text_arg(src, 'name', spath, true);
        kind := coalesce(hasura_events._text_arg(src, 'kind', spath, false), 'postgres');
        ignored := ignored || hasura_events._ignored_parts(src, 'sources[].', source_ignored);
        PERFORM hasura_events._expect(coalesce(src -> 'tables', '[]'), 'array', spath || '.tables');
        j := 0;
        FOR tbl IN SELECT pg_catalog.jsonb_array_elements(coalesce(src -> 'tables', '[]')) LOOP
            tpath := pg_catalog.format('%s.tables[%s]', spath, j);
            PERFORM hasura_events._expect(tbl, 'object', tpath);
            PERFORM hasura_events._check_keys(tbl, ARRAY['table', 'event_triggers'] || table_ignored, tpath);
            ignored := ignored || hasura_events._ignored_parts(tbl, 'sources[].tables[].', table_ignored);
            tname := tbl -> 'table';
            IF tname IS NULL OR tname = 'null' THEN
                PERFORM hasura_events._fail('22023', pg_catalog.format('%s.table is required', tpath));
            END IF;
            IF pg_catalog.jsonb_typeof(tname) = 'string' THEN
                tname := pg_catalog.jsonb_build_object('schema', 'public', 'name', tname);
            ELSE
                PERFORM hasura_events._expect(tname, 'object', tpath || '.table');
                PERFORM hasura_events._check_keys(tname, '{schema,name}', tpath || '.table');
                tname := pg_catalog.jsonb_build_object(
                    'schema', coalesce(hasura_events._text_arg(tname, 'schema', tpath || '.table', false), 'public'),
                    'name', hasura_events._text_arg(tname, 'name', tpath || '.table', true));
            END IF;
            PERFORM hasura_events._expect(coalesce(tbl -> 'event_triggers', '[]'), 'array', tpath || '.event_triggers');
            k := 0;
            FOR et IN SELECT pg_catalog.jsonb_array_elements(coalesce(tbl -> 'event_triggers', '[]')) LOOP
                PERFORM hasura_events._expect(et, 'object', pg_catalog.format('%s.event_triggers[%s]', tpath, k));
                IF kind NOT IN ('postgres', 'pg', 'citus') THEN
                    PERFORM hasura_events._fail('0A000',
                        pg_catalog.format('event trigger "%s" of source "%s" is on a %s database', et ->> 'name', src_name, kind),
                        'hasura_events serves event triggers of the PostgreSQL database it is installed in only.');
                END IF;
                IF NOT src_name = ANY (trigger_sources) THEN
                    trigger_sources := trigger_sources || src_name;
                END IF;
                triggers := triggers || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                    'source', src_name, 'table', tname, 'conf', et,
                    'path', pg_catalog.format('%s.event_triggers[%s]', tpath, k)));
                k := k + 1;
            END LOOP;
            j := j + 1;
        END LOOP;
        i := i + 1;
    END LOOP;
    ignored := ARRAY(SELECT x FROM pg_catalog.unnest(ignored) x GROUP BY x ORDER BY x COLLATE "C");
END
$$;

-- _conf_args: an EventTriggerConf of a metadata object as create_event_trigger args.
CREATE FUNCTION hasura_events._conf_args(conf jsonb, source text, tbl jsonb, path text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    def jsonb := conf -> 'definition';
BEGIN
    PERFORM hasura_events._check_keys(conf,
        '{name,definition,retry_conf,webhook,webhook_from_env,headers,request_transform,response_transform,'
        'cleanup_config,trigger_on_replication}', path);
    IF def IS NULL OR def = 'null' THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s.definition is required', path),
            'The definition holds the operations: {"enable_manual": false, "insert": {"columns": "*"}}.');
    END IF;
    PERFORM hasura_events._expect(def, 'object', path || '.definition');
    PERFORM hasura_events._check_keys(def, '{enable_manual,insert,update,delete}', path || '.definition');
    RETURN pg_catalog.jsonb_strip_nulls((conf - 'definition') || def
        || pg_catalog.jsonb_build_object('source', source, 'table', tbl));
END
$$;

-- _create_from_conf: creates (or replaces) one event trigger of an imported metadata object so
-- that it matches it. A trigger of that name on another table is moved: its pg triggers and
-- definition go, its queued events stay (delivered with the new definition), as in Hasura.
-- Returns true when something changed.
CREATE FUNCTION hasura_events._create_from_conf(item jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    conf jsonb := item -> 'conf';
    args jsonb := hasura_events._conf_args(item -> 'conf', item ->> 'source', item -> 'table', item ->> 'path');
    old hasura_events.event_triggers;
BEGIN
    SELECT * INTO old FROM hasura_events.event_triggers WHERE name = args ->> 'name' FOR UPDATE;
    IF FOUND THEN
        IF (old.schema_name, old.table_name, old.source) = (item -> 'table' ->> 'schema', item -> 'table' ->> 'name', item ->> 'source')
           AND hasura_events._export_trigger(old) = conf THEN
            RETURN false;
        END IF;
        IF (old.schema_name, old.table_name) = (item -> 'table' ->> 'schema', item -> 'table' ->> 'name') THEN
            args := args || '{"replace": true}';
        ELSE
            PERFORM hasura_events._drop_pg_triggers(old.name);
            DELETE FROM hasura_events.event_triggers WHERE name = old.name;
        END IF;
    END IF;
    PERFORM hasura_events.create_event_trigger(args);
    IF NOT (conf -> 'definition') ? 'enable_manual' THEN
        UPDATE hasura_events.event_triggers SET export_omits = export_omits || '{enable_manual}'
         WHERE name = args ->> 'name';
    END IF;
    RETURN true;
END
$$;

-- replace_metadata: Hasura's replace_metadata: the event triggers of this database become those
-- of the metadata object (version 1, 2 or 3, or {"metadata": ..., "allow_inconsistent_metadata":
-- ...}): created, replaced, and deleted (their events archived). All or nothing: an event trigger
-- that cannot be created fails the whole request, naming it; with allow_inconsistent_metadata it
-- is left out and listed in inconsistent_objects instead. "ignored" lists the parts of the
-- metadata accepted and not used (relationships, permissions, actions, ...), when there are any.
CREATE FUNCTION hasura_events.replace_metadata(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    md jsonb := args;
    path text := 'args';
    allow_inconsistent boolean := false;
    parsed record;
    item jsonb;
    names text[];
    inconsistent jsonb := '[]';
    answer jsonb;
    st text;
    msg text;
    det text;
    hnt text;
BEGIN
    PERFORM hasura_events._expect(args, 'object', 'args');
    IF args ? 'metadata' THEN
        PERFORM hasura_events._check_keys(args, '{metadata,allow_inconsistent_metadata,allow_warnings}', 'args');
        md := args -> 'metadata';
        path := 'args.metadata';
        allow_inconsistent := hasura_events._bool_arg(args, 'allow_inconsistent_metadata', 'args', false);
        PERFORM hasura_events._bool_arg(args, 'allow_warnings', 'args', false);
    END IF;
    parsed := hasura_events._metadata_triggers(md, path);
    -- one metadata change at a time (the dispatcher only reads the definitions: not blocked)
    LOCK TABLE hasura_events.event_triggers IN SHARE ROW EXCLUSIVE MODE;
    -- Every event trigger lives in this database, whatever source it names. Event triggers of
    -- several sources are taken only when this database's triggers name each of them already (an
    -- export of this database): otherwise a source may well be another database.
    IF pg_catalog.cardinality(parsed.trigger_sources) > 1 THEN
        SELECT pg_catalog.string_agg(pg_catalog.format('"%s"', s), ', ') INTO msg
          FROM pg_catalog.unnest(parsed.trigger_sources) s
         WHERE NOT EXISTS (SELECT 1 FROM hasura_events.event_triggers t WHERE t.source = s);
        IF msg IS NOT NULL THEN
            PERFORM hasura_events._fail('0A000',
                pg_catalog.format('event triggers in more than one source (%s): no event trigger of this database is in %s',
                    pg_catalog.array_to_string(parsed.trigger_sources, ', '), msg),
                'hasura_events serves the database it is installed in: import each source''s event triggers into the database of that source.');
        END IF;
        msg := NULL;
    END IF;

    FOR item IN SELECT pg_catalog.jsonb_array_elements(parsed.triggers) LOOP
        PERFORM hasura_events._expect(item -> 'conf' -> 'name', 'string', (item ->> 'path') || '.name');
    END LOOP;
    SELECT pg_catalog.array_agg(n) INTO names
      FROM (SELECT e.x -> 'conf' ->> 'name' AS n FROM pg_catalog.jsonb_array_elements(parsed.triggers) e(x)) q;
    names := coalesce(names, '{}');
    IF EXISTS (SELECT 1 FROM pg_catalog.unnest(names) n GROUP BY n HAVING pg_catalog.count(*) > 1) THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('event trigger "%s" appears twice in the metadata',
            (SELECT n FROM pg_catalog.unnest(names) n GROUP BY n HAVING pg_catalog.count(*) > 1 ORDER BY n LIMIT 1)),
            'Event trigger names are unique in a database.');
    END IF;

    -- the ones not in the metadata go first (their names may be taken by others)
    PERFORM hasura_events.delete_event_trigger(t.name)
       FROM hasura_events.event_triggers t WHERE NOT t.name = ANY (names)
      ORDER BY t.name;

    FOR item IN SELECT pg_catalog.jsonb_array_elements(parsed.triggers) LOOP
        BEGIN
            PERFORM hasura_events._create_from_conf(item);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                    hnt = PG_EXCEPTION_HINT;
            msg := pg_catalog.format('event trigger "%s" on %s.%s (source "%s"): %s', item -> 'conf' ->> 'name',
                       item -> 'table' ->> 'schema', item -> 'table' ->> 'name', item ->> 'source', msg);
            IF NOT allow_inconsistent THEN
                RAISE EXCEPTION USING ERRCODE = st, MESSAGE = msg,
                    DETAIL = 'replace_metadata changed nothing.' || CASE WHEN det <> '' THEN ' ' || det ELSE '' END,
                    HINT = coalesce(NULLIF(hnt, ''), 'Fix or remove this event trigger in the metadata and apply it again.');
            END IF;
            -- left out: an existing trigger of that name is deleted, as the metadata does not hold it
            PERFORM hasura_events.delete_event_trigger(t.name)
               FROM hasura_events.event_triggers t WHERE t.name = item -> 'conf' ->> 'name';
            inconsistent := inconsistent || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'type', 'event_trigger', 'name', item -> 'conf' ->> 'name',
                'reason', 'Inconsistent object: ' || msg,
                'definition', pg_catalog.jsonb_build_object('source', item ->> 'source', 'table', item -> 'table',
                                                            'configuration', item -> 'conf')));
        END;
    END LOOP;

    answer := CASE WHEN allow_inconsistent
                   THEN pg_catalog.jsonb_build_object('is_consistent', pg_catalog.jsonb_array_length(inconsistent) = 0,
                                                      'inconsistent_objects', inconsistent)
                   ELSE '{"message": "success"}' END;
    IF pg_catalog.cardinality(parsed.ignored) > 0 THEN
        answer := answer || pg_catalog.jsonb_build_object('ignored', pg_catalog.to_jsonb(parsed.ignored));
    END IF;
    RETURN answer;
END
$$;

-- reload_metadata: Hasura's reload_metadata. With recreate_event_triggers (true, or a list of
-- source names) every pg trigger of those event triggers is dropped and created again from its
-- definition (and Hasura's, in a database Hasura used, replaced). Triggers whose definitions no
-- longer fit their table (a column gone) are listed as inconsistent and left as they are.
CREATE FUNCTION hasura_events.reload_metadata(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    recreate jsonb;
    def hasura_events.event_triggers;
    tbl regclass;
    inconsistent jsonb := '[]';
    msg text;
BEGIN
    args := coalesce(NULLIF(args, 'null'), '{}');
    PERFORM hasura_events._expect(args, 'object', 'args');
    PERFORM hasura_events._check_keys(args, '{reload_remote_schemas,reload_sources,recreate_event_triggers}', 'args');
    recreate := coalesce(NULLIF(args -> 'recreate_event_triggers', 'null'), 'false');
    IF pg_catalog.jsonb_typeof(recreate) NOT IN ('boolean', 'array') THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format(
            'args.recreate_event_triggers must be a boolean or an array of source names, not %s', pg_catalog.jsonb_typeof(recreate)));
    END IF;
    FOR def IN SELECT * FROM hasura_events.event_triggers ORDER BY name LOOP
        BEGIN
            tbl := pg_catalog.format('%I.%I', def.schema_name, def.table_name)::regclass;
            PERFORM hasura_events._operation_spec(def.insert_spec, tbl, 'insert'),
                    hasura_events._operation_spec(def.update_spec, tbl, 'update'),
                    hasura_events._operation_spec(def.delete_spec, tbl, 'delete');
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
            inconsistent := inconsistent || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
                'type', 'event_trigger', 'name', def.name, 'reason', 'Inconsistent object: ' || msg,
                'definition', pg_catalog.jsonb_build_object('source', def.source,
                    'table', pg_catalog.jsonb_build_object('schema', def.schema_name, 'name', def.table_name),
                    'configuration', hasura_events._export_trigger(def))));
            CONTINUE;
        END;
        IF recreate = 'true' OR (pg_catalog.jsonb_typeof(recreate) = 'array' AND recreate ? def.source) THEN
            PERFORM hasura_events._drop_pg_triggers(def.name);
            PERFORM hasura_events._create_pg_triggers(def);
            PERFORM hasura_events._drop_hasura_pg_triggers(def.name);
        END IF;
    END LOOP;
    RETURN pg_catalog.jsonb_build_object('message', 'success', 'is_consistent', pg_catalog.jsonb_array_length(inconsistent) = 0)
        || CASE WHEN pg_catalog.jsonb_array_length(inconsistent) > 0
                THEN pg_catalog.jsonb_build_object('inconsistent_objects', inconsistent) ELSE '{}' END;
END
$$;

-- clear_metadata: Hasura's clear_metadata: every event trigger is deleted; their events are
-- archived, as pg_delete_event_trigger does.
CREATE FUNCTION hasura_events.clear_metadata() RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE hasura_events.event_triggers IN SHARE ROW EXCLUSIVE MODE;
    PERFORM hasura_events.delete_event_trigger(t.name) FROM hasura_events.event_triggers t ORDER BY t.name;
    RETURN '{"message": "success"}';
END
$$;

-- _no_args: refuses args for a request that takes none ({} or null).
CREATE FUNCTION hasura_events._no_args(req_type text, args jsonb) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF args IS NOT NULL AND args NOT IN ('null', '{}') THEN
        PERFORM hasura_events._fail('22023', pg_catalog.format('%s takes no arguments, not %s', req_type, args::text),
            'Give "args": {}.');
    END IF;
END
$$;

-- _metadata_request: the request types above, as hasura_events.metadata() receives them. The
-- v1/query names take the pg_ requests' args without source (v1 has one database) and, for
-- create_event_trigger, without trigger_on_replication and cleanup_config (v2 additions).
CREATE FUNCTION hasura_events._metadata_request(req_type text, args jsonb, request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    CASE req_type
    WHEN 'export_metadata' THEN
        IF coalesce(request ->> 'version', '1') <> '1' THEN
            PERFORM hasura_events._fail('0A000', 'export_metadata version 2 (with resource_version) is not supported',
                'Leave out "version", or give "version": 1: the answer is the metadata object.');
        END IF;
        PERFORM hasura_events._no_args(req_type, args);
        RETURN hasura_events.export_metadata();
    WHEN 'replace_metadata' THEN
        RETURN hasura_events.replace_metadata(args);
    WHEN 'reload_metadata' THEN
        RETURN hasura_events.reload_metadata(args);
    WHEN 'clear_metadata' THEN
        PERFORM hasura_events._no_args(req_type, args);
        RETURN hasura_events.clear_metadata();
    WHEN 'create_event_trigger' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args,
            '{name,table,webhook,webhook_from_env,insert,update,delete,enable_manual,retry_conf,headers,replace,'
            'request_transform,response_transform}', 'args');
        RETURN hasura_events.create_event_trigger(args);
    WHEN 'delete_event_trigger' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name}', 'args');
        RETURN hasura_events.delete_event_trigger(hasura_events._text_arg(args, 'name', 'args', true));
    WHEN 'redeliver_event' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{event_id}', 'args');
        RETURN hasura_events.redeliver_event(hasura_events._text_arg(args, 'event_id', 'args', true));
    WHEN 'invoke_event_trigger' THEN
        PERFORM hasura_events._expect(args, 'object', 'args');
        PERFORM hasura_events._check_keys(args, '{name,payload}', 'args');
        IF args -> 'payload' IS NULL THEN
            PERFORM hasura_events._fail('22023', 'args.payload is required');
        END IF;
        RETURN hasura_events.invoke_event_trigger(hasura_events._text_arg(args, 'name', 'args', true), args -> 'payload');
    END CASE;
END
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA hasura_events FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hasura_events._export_omits(jsonb), hasura_events._export_op(jsonb, text, text[]),
    hasura_events._export_trigger(hasura_events.event_triggers), hasura_events.export_metadata(),
    hasura_events._drop_hasura_pg_triggers(text), hasura_events._ignored_parts(jsonb, text, text[]),
    hasura_events._metadata_triggers(jsonb, text), hasura_events._conf_args(jsonb, text, jsonb, text),
    hasura_events._create_from_conf(jsonb), hasura_events.replace_metadata(jsonb), hasura_events.reload_metadata(jsonb),
    hasura_events.clear_metadata(), hasura_events._no_args(text, jsonb), hasura_events._metadata_request(text, jsonb, jsonb)
    TO hasura_events_admin;

CREATE OR REPLACE FUNCTION hasura_events.create_event_trigger(args jsonb) RETURNS jsonb
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

CREATE OR REPLACE FUNCTION hasura_events.metadata(request jsonb) RETURNS jsonb
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
