-- hasura_events--0.1.0--0.2.0.sql: ALTER EXTENSION hasura_events UPDATE from 0.1.0 to 0.2.0.
--
-- Brings a 0.1.0 database to what extension/sql/hasura_events.sql and delivery.sql create at 0.2.0,
-- keeping every trigger definition, event and invocation log. tests/integration/test_upgrade.py
-- upgrades a populated 0.1.0 database and compares its objects with a fresh 0.2.0 install.

\echo Use "ALTER EXTENSION hasura_events UPDATE" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Dependent columns (issue 20, points 1 and 6): a column an event trigger names cannot be
-- dropped; RENAME COLUMN is followed; the DDL hooks fire whatever session_replication_role
-- says; pg_create_event_trigger checks in Hasura's order, with Hasura's wording where its tests
-- check it. The pg triggers are made as before: those of 0.1.0 keep working unchanged.
-- ---------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION hasura_events._column_list(v jsonb, tbl regclass, path text) RETURNS jsonb
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
        IF tbl IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
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

CREATE OR REPLACE FUNCTION hasura_events.create_event_trigger(args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    def hasura_events.event_triggers;
    old hasura_events.event_triggers;
    t record;
    retry jsonb;
    do_replace boolean;
    problem text;
BEGIN
    PERFORM hasura_events._expect(args, 'object', 'args');
    PERFORM hasura_events._check_keys(args,
        '{name,table,source,webhook,webhook_from_env,insert,update,delete,enable_manual,retry_conf,headers,replace,trigger_on_replication}',
        'args', '{request_transform,response_transform,cleanup_config}');

    -- Hasura's order: the name, then whether there is an operation, then the webhook, then the
    -- form of the column lists; the table and its columns after all of them.
    def.name := hasura_events._text_arg(args, 'name', 'args', true);
    problem := hasura_events._value_problem('trigger_name', def.name);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = hasura_events._value_problem('trigger_name_hasura', def.name),
            DETAIL = pg_catalog.upper(pg_catalog.left(problem, 1)) || pg_catalog.substr(problem, 2) || '.',
            HINT = 'Trigger names match ^[A-Za-z]+[A-Za-z0-9_\-]*$ and have at most 42 characters.';
    END IF;

    def.enable_manual := hasura_events._bool_arg(args, 'enable_manual', 'args', false);
    IF coalesce(args -> 'insert', 'null') = 'null' AND coalesce(args -> 'update', 'null') = 'null'
       AND coalesce(args -> 'delete', 'null') = 'null' AND NOT def.enable_manual THEN
        PERFORM hasura_events._fail('22023', 'atleast one amongst insert/update/delete/enable_manual spec must be provided',
            'Give at least one of "insert", "update", "delete", or "enable_manual": true.');
    END IF;

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

    PERFORM hasura_events._operation_spec(args -> 'insert', NULL, 'args.insert');
    PERFORM hasura_events._operation_spec(args -> 'update', NULL, 'args.update');
    PERFORM hasura_events._operation_spec(args -> 'delete', NULL, 'args.delete');

    t := hasura_events._resolve_table(args -> 'table');
    def.schema_name := t.schema_name;
    def.table_name := t.table_name;
    def.source := coalesce(hasura_events._text_arg(args, 'source', 'args', false), 'default');
    def.insert_spec := hasura_events._operation_spec(args -> 'insert', t.tbl, 'args.insert');
    def.update_spec := hasura_events._operation_spec(args -> 'update', t.tbl, 'args.update');
    def.delete_spec := hasura_events._operation_spec(args -> 'delete', t.tbl, 'args.delete');

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

    INSERT INTO hasura_events.event_triggers SELECT def.*;
    PERFORM hasura_events._create_pg_triggers(def);
    RETURN '{"message": "success"}';
END
$$;

CREATE OR REPLACE FUNCTION hasura_events._spec_lists_naming(spec jsonb, op text, col text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT pg_catalog.array_remove(ARRAY[
        CASE WHEN pg_catalog.jsonb_typeof(spec -> 'columns') = 'array' AND spec -> 'columns' ? col
             THEN op || '.columns' END,
        CASE WHEN pg_catalog.jsonb_typeof(spec -> 'payload') = 'array' AND spec -> 'payload' ? col
             THEN op || '.payload' END], NULL)
$$;

CREATE OR REPLACE FUNCTION hasura_events._lists_naming(def hasura_events.event_triggers, col text) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT hasura_events._spec_lists_naming(def.insert_spec, 'insert', col)
        || hasura_events._spec_lists_naming(def.update_spec, 'update', col)
        || hasura_events._spec_lists_naming(def.delete_spec, 'delete', col)
$$;

CREATE OR REPLACE FUNCTION hasura_events._spec_rename_column(spec jsonb, old_name text, new_name text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN spec IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object(
        'columns', CASE WHEN pg_catalog.jsonb_typeof(spec -> 'columns') = 'array' THEN
            (SELECT pg_catalog.jsonb_agg(CASE WHEN e #>> '{}' = old_name THEN pg_catalog.to_jsonb(new_name) ELSE e END
                                         ORDER BY i)
               FROM pg_catalog.jsonb_array_elements(spec -> 'columns') WITH ORDINALITY AS x(e, i))
            ELSE spec -> 'columns' END,
        'payload', CASE WHEN pg_catalog.jsonb_typeof(spec -> 'payload') = 'array' THEN
            (SELECT pg_catalog.jsonb_agg(CASE WHEN e #>> '{}' = old_name THEN pg_catalog.to_jsonb(new_name) ELSE e END
                                         ORDER BY i)
               FROM pg_catalog.jsonb_array_elements(spec -> 'payload') WITH ORDINALITY AS x(e, i))
            ELSE spec -> 'payload' END) END
$$;

CREATE OR REPLACE FUNCTION hasura_events._renamed_column(cmd pg_ddl_command) RETURNS text[]
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'hasura_events_renamed_column';

CREATE OR REPLACE FUNCTION hasura_events._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    d record;
    dep record;
    gone text[];
    dependents text[] := '{}';
    details text[] := '{}';
    dependent text;
BEGIN
    -- a dropped column is listed with its table's schema and name and its own old name
    FOR d IN SELECT o.address_names[1] AS schema_name, o.address_names[2] AS table_name,
                    o.address_names[3] AS column_name
             FROM pg_catalog.pg_event_trigger_dropped_objects() o
             WHERE o.object_type = 'table column' AND pg_catalog.cardinality(o.address_names) = 3 LOOP
        FOR dep IN SELECT e.name, e.source, hasura_events._lists_naming(e, d.column_name) AS lists
                 FROM hasura_events.event_triggers e
                 WHERE e.schema_name = d.schema_name AND e.table_name = d.table_name
                 ORDER BY e.name LOOP
            CONTINUE WHEN pg_catalog.cardinality(dep.lists) = 0;
            dependent := format('event-trigger %s.%s.%s in source "%s"', d.schema_name, d.table_name, dep.name, dep.source);
            IF NOT dependent = ANY (dependents) THEN
                dependents := dependents || dependent;
            END IF;
            details := details || format('Column %I of table %I.%I is in %s of event trigger "%s".', d.column_name,
                d.schema_name, d.table_name, pg_catalog.array_to_string(dep.lists, ' and '), dep.name);
        END LOOP;
    END LOOP;
    IF pg_catalog.cardinality(dependents) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'dependent_objects_still_exist',
            MESSAGE = 'cannot drop due to the following dependent objects: ' || pg_catalog.array_to_string(dependents, ', '),
            DETAIL = pg_catalog.array_to_string(details, E'\n'),
            HINT = 'Delete the event trigger (pg_delete_event_trigger), or replace it (pg_create_event_trigger with '
                   '"replace": true) with lists that do not name the column, then drop the column.';
    END IF;

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

CREATE OR REPLACE FUNCTION hasura_events._on_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    def hasura_events.event_triggers;
    r record;
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

    FOR r IN SELECT x.objid, x.names[1] AS old_name, x.names[2] AS new_name
             FROM (SELECT c.objid, hasura_events._renamed_column(c.command) AS names
                   FROM pg_event_trigger_ddl_commands() c
                   WHERE c.object_type = 'table column') x
             WHERE x.names IS NOT NULL LOOP
        FOR def IN WITH RECURSIVE tree(relid) AS (
                       SELECT r.objid
                       UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid)
                   SELECT t.* FROM hasura_events.event_triggers t
                   JOIN pg_namespace n ON n.nspname = t.schema_name
                   JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name
                   WHERE c.oid IN (SELECT relid FROM tree)
                     AND cardinality(hasura_events._lists_naming(t, r.old_name)) > 0
        LOOP
            def.insert_spec := hasura_events._spec_rename_column(def.insert_spec, r.old_name, r.new_name);
            def.update_spec := hasura_events._spec_rename_column(def.update_spec, r.old_name, r.new_name);
            def.delete_spec := hasura_events._spec_rename_column(def.delete_spec, r.old_name, r.new_name);
            def.definition := def.definition || jsonb_strip_nulls(jsonb_build_object(
                'insert', def.insert_spec, 'update', def.update_spec, 'delete', def.delete_spec));
            def.updated_at := now();
            UPDATE hasura_events.event_triggers t
               SET insert_spec = def.insert_spec, update_spec = def.update_spec, delete_spec = def.delete_spec,
                   definition = def.definition, updated_at = def.updated_at
             WHERE t.name = def.name;
            PERFORM hasura_events._drop_pg_triggers(def.name);
            PERFORM hasura_events._create_pg_triggers(def);
        END LOOP;
    END LOOP;

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

ALTER EVENT TRIGGER hasura_events_sql_drop ENABLE ALWAYS;
ALTER EVENT TRIGGER hasura_events_ddl_end ENABLE ALWAYS;
REVOKE ALL ON FUNCTION hasura_events._spec_lists_naming(jsonb, text, text),
    hasura_events._lists_naming(hasura_events.event_triggers, text),
    hasura_events._spec_rename_column(jsonb, text, text), hasura_events._renamed_column(pg_ddl_command) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hasura_events._spec_lists_naming(jsonb, text, text),
    hasura_events._lists_naming(hasura_events.event_triggers, text),
    hasura_events._spec_rename_column(jsonb, text, text), hasura_events._renamed_column(pg_ddl_command)
    TO hasura_events_admin;
