-- hasura_events--0.1.0--0.2.0.sql: ALTER EXTENSION hasura_events UPDATE from 0.1.0 to 0.2.0.
--
-- Brings a 0.1.0 database to what extension/sql/hasura_events.sql and delivery.sql create at 0.2.0,
-- keeping every trigger definition, event and invocation log. tests/integration/test_upgrade.py
-- upgrades a populated 0.1.0 database and compares its objects with a fresh 0.2.0 install.

\echo Use "ALTER EXTENSION hasura_events UPDATE" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- Privileges (issue 19, defect 2, and two checks of defect 6): a role sees and changes only the
-- event triggers, events and invocation logs of tables it owns; hasura_events_admin has no
-- INSERT, UPDATE or DELETE on the catalog; the writing API functions are C entries that record
-- their caller and call SECURITY DEFINER implementations; row-level security filters reads; no
-- event trigger on the extension's own tables.
-- ---------------------------------------------------------------------------------------------

CREATE FUNCTION hasura_events._caller() RETURNS oid
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_caller';

CREATE FUNCTION hasura_events._owns_table(schema_name text, table_name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT pg_catalog.pg_has_role(hasura_events._caller(), c.relowner, 'USAGE')
                     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = schema_name AND c.relname = table_name), false)
        OR coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = hasura_events._caller()), false)
$$;

CREATE FUNCTION hasura_events._may_see(trigger_name text, schema_name text, table_name text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT hasura_events._owns_table(schema_name, table_name)
        OR EXISTS (SELECT 1 FROM hasura_events.event_triggers t
                   WHERE t.name = trigger_name AND hasura_events._owns_table(t.schema_name, t.table_name))
$$;

CREATE OR REPLACE FUNCTION hasura_events._resolve_table(v jsonb, OUT tbl regclass, OUT schema_name text, OUT table_name text)
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
    IF schema_name IN ('hdb_catalog', 'hasura_events') THEN
        PERFORM hasura_events._fail('42809', pg_catalog.format('%s is a table of the hasura_events extension', tbl::text),
            'Event triggers on the extension''s own tables would turn deliveries into events; create them on your tables.');
    END IF;
    IF NOT pg_catalog.pg_has_role(hasura_events._caller(), owner, 'USAGE') THEN
        PERFORM hasura_events._fail('42501', pg_catalog.format('must be owner of table %s', tbl::text),
            'Only the owner of a table (or a superuser) can create event triggers on it.');
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION hasura_events._existing_trigger(trigger_name text) RETURNS hasura_events.event_triggers
LANGUAGE plpgsql STABLE AS $$
DECLARE
    def hasura_events.event_triggers;
BEGIN
    SELECT * INTO def FROM hasura_events.event_triggers WHERE name = trigger_name;
    -- another role's trigger is reported as missing: its existence is not the caller's to know
    IF NOT FOUND OR NOT hasura_events._owns_table(def.schema_name, def.table_name) THEN
        PERFORM hasura_events._fail('42704', pg_catalog.format('event trigger "%s" does not exist', trigger_name),
            'SELECT name FROM hasura_events.event_triggers lists the event triggers of this database.');
    END IF;
    RETURN def;
END
$$;

DROP FUNCTION hasura_events.create_event_trigger(jsonb);

CREATE FUNCTION hasura_events._create_event_trigger(args jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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
        -- trigger names are unique in the database: a name another role's trigger has is taken,
        -- and nothing more about that trigger is told
        IF NOT hasura_events._owns_table(old.schema_name, old.table_name) THEN
            PERFORM hasura_events._fail('42710', pg_catalog.format('event trigger "%s" already exists', def.name),
                'Trigger names are unique in the database and this one belongs to a table you do not own; choose another name.');
        END IF;
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

CREATE FUNCTION hasura_events.create_event_trigger(args jsonb) RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_api_call';

DROP FUNCTION hasura_events.delete_event_trigger(text);

CREATE FUNCTION hasura_events._delete_event_trigger(name text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    def hasura_events.event_triggers := hasura_events._existing_trigger(name);
BEGIN
    PERFORM hasura_events._drop_pg_triggers(def.name);
    DELETE FROM hasura_events.event_triggers t WHERE t.name = def.name;
    PERFORM hasura_events._archive_events(ARRAY[def.name]);
    RETURN '{"message": "success"}';
END
$$;

CREATE FUNCTION hasura_events.delete_event_trigger(name text) RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_api_call';

DROP FUNCTION hasura_events.redeliver_event(text);

CREATE FUNCTION hasura_events._redeliver_event(event_id text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    e hdb_catalog.event_log;
BEGIN
    SELECT * INTO e FROM hdb_catalog.event_log WHERE id = event_id FOR UPDATE;
    IF NOT FOUND OR NOT hasura_events._may_see(e.trigger_name, e.schema_name, e.table_name) THEN
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

CREATE FUNCTION hasura_events.redeliver_event(event_id text) RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_api_call';

DROP FUNCTION hasura_events.invoke_event_trigger(text, jsonb);

CREATE FUNCTION hasura_events._invoke_event_trigger(name text, payload jsonb) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
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

CREATE FUNCTION hasura_events.invoke_event_trigger(name text, payload jsonb) RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'hasura_events_api_call';

REVOKE ALL ON FUNCTION hasura_events._caller(), hasura_events._owns_table(text, text), hasura_events._may_see(text, text, text),
    hasura_events.create_event_trigger(jsonb), hasura_events.delete_event_trigger(text),
    hasura_events.redeliver_event(text), hasura_events.invoke_event_trigger(text, jsonb),
    hasura_events._create_event_trigger(jsonb), hasura_events._delete_event_trigger(text),
    hasura_events._redeliver_event(text), hasura_events._invoke_event_trigger(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hasura_events._caller(), hasura_events._owns_table(text, text), hasura_events._may_see(text, text, text),
    hasura_events.create_event_trigger(jsonb), hasura_events.delete_event_trigger(text),
    hasura_events.redeliver_event(text), hasura_events.invoke_event_trigger(text, jsonb) TO hasura_events_admin;
REVOKE INSERT, UPDATE, DELETE ON hasura_events.event_triggers, hdb_catalog.event_log, hdb_catalog.event_invocation_logs
    FROM hasura_events_admin;

REVOKE EXECUTE ON FUNCTION hasura_events.capture(), hasura_events._create_event_trigger(jsonb),
    hasura_events._delete_event_trigger(text), hasura_events._redeliver_event(text),
    hasura_events._invoke_event_trigger(text, jsonb), hasura_events._create_pg_triggers(hasura_events.event_triggers),
    hasura_events._drop_pg_triggers(text), hasura_events._archive_events(text[]) FROM hasura_events_admin;

ALTER TABLE hasura_events.event_triggers ENABLE ROW LEVEL SECURITY;
ALTER TABLE hdb_catalog.event_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE hdb_catalog.event_invocation_logs ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_tables ON hasura_events.event_triggers FOR SELECT
    USING (hasura_events._owns_table(schema_name, table_name));
CREATE POLICY own_tables ON hdb_catalog.event_log FOR SELECT
    USING (hasura_events._may_see(trigger_name, schema_name, table_name));
-- an invocation log is seen with its event (event_log's policy applies to the subquery)
CREATE POLICY own_tables ON hdb_catalog.event_invocation_logs FOR SELECT
    USING (EXISTS (SELECT 1 FROM hdb_catalog.event_log e WHERE e.id = event_id));

ALTER VIEW hasura_events.trigger_status SET (security_invoker = true);
ALTER VIEW hasura_events.dead_events SET (security_invoker = true);
