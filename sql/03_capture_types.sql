-- 03_capture_types: the row JSON of events is exactly to_jsonb(row) for every kind of built-in
-- type, generated columns, dropped columns, columns added with a default, and TOASTed values.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;

CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.posint AS int CHECK (VALUE > 0);
CREATE TYPE public.pair AS (label text, n int, tags text[]);

CREATE TABLE public.all_types (
    id          int PRIMARY KEY,
    c_int2      int2,
    c_int4      int4,
    c_int8      int8,
    c_numeric   numeric,
    c_num_scale numeric(10, 3),
    c_float4    float4,
    c_float8    float8,
    c_bool      bool,
    c_text      text,
    c_varchar   varchar(20),
    c_char      char(5),
    c_name      name,
    c_bytea     bytea,
    c_uuid      uuid,
    c_date      date,
    c_time      time,
    c_timetz    timetz,
    c_ts        timestamp,
    c_tstz      timestamptz,
    c_interval  interval,
    c_json      json,
    c_jsonb     jsonb,
    c_int_arr   int[],
    c_text_arr  text[],
    c_md_arr    int[][],
    c_enum      mood,
    c_domain    posint,
    c_comp      pair,
    c_comp_arr  pair[],
    c_inet      inet,
    c_cidr      cidr,
    c_macaddr   macaddr,
    c_point     point,
    c_box       box,
    c_tsvector  tsvector,
    c_int4range int4range,
    c_tstzrange tstzrange,
    c_numrange  numrange,
    c_bit       bit(4),
    c_varbit    varbit,
    c_oid       oid,
    c_regclass  regclass,
    c_xml       text,
    c_money     money
);

SELECT hasura_events.metadata('{"type": "pg_create_event_trigger", "args": {"name": "types_tr",
  "table": "all_types", "webhook": "http://h/", "insert": {"columns": "*"}, "update": {"columns": "*"},
  "delete": {"columns": "*"}}}');

SET lc_monetary = 'C';
INSERT INTO all_types VALUES
 (1, 32767, 2147483647, 9223372036854775807, 12345678901234567890.123456789, 3.14159,
  3.4028235e38, 1.7976931348623157e308, true,
  E'quote " backslash \\ newline \n tab \t cr \r bell \007 unicode ünïcödé ✓ 😀', 'varchar', 'ab',
  'a_name', '\xdeadbeef00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999999',
  '12:00:00+05:30', '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+02',
  '1 year 2 mons 3 days 04:05:06.7',
  '{"b": [1, 2, {"c": null}], "a": "x", "a": "dup"}', '{"nested": {"deep": [1, 2.5, "three", true, null]}}',
  '{1,2,3}', '{"a",NULL,"c d","e\"f"}', '{{1,2},{3,4}}', 'happy', 7,
  ROW('lbl', 1, '{x,y}'), ARRAY[ROW('a', 1, '{}')::pair, ROW(NULL, NULL, NULL)::pair],
  '192.168.1.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '(1.5,-2)', '((0,0),(1,1))',
  'the quick brown fox', '[1,10)', '[2024-01-01 00:00:00+00,2024-02-01 00:00:00+00)', '(1.5,2.5]',
  B'1010', B'101', 12345, 'pg_class', '<a>x</a>', 12.34),
 (2, -32768, -2147483648, -9223372036854775808, 'NaN', -0.001,
  'NaN', 'Infinity', false,
  '', '', '', '', '\x', '00000000-0000-0000-0000-000000000000', 'infinity', '00:00', '00:00:00-12',
  '-infinity', 'infinity', '-178000000 years',
  '[]', '{}', '{}', '{}', '{}', 'sad', 1, ROW(NULL, NULL, NULL), '{}',
  '::1', '::/0', '00:00:00:00:00:00', '(0,0)', '((0,0),(0,0))', '', 'empty', '(,)', 'empty',
  B'0000', B'', 0, '-', '', -0.01),
 (3, 0, 0, 0, 'Infinity', 0, '-Infinity', '-Infinity', NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  'null', 'null', NULL, '{NULL}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, NULL, '-Infinity', NULL, 1.5e-45, 4.9e-324, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '"just a string"', '12.50', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Every event's new row equals to_jsonb of the row as stored.
SELECT t.id, e.payload->'data'->'new' = to_jsonb(t.*) AS same_as_to_jsonb,
       e.payload->'data'->'new' = row_to_json(t.*)::jsonb AS same_as_row_to_json
FROM all_types t JOIN hdb_catalog.event_log e
  ON e.trigger_name = 'types_tr' AND e.payload->>'op' = 'INSERT' AND (e.payload->'data'->'new'->>'id')::int = t.id
ORDER BY t.id;

-- Two payloads in full.
\pset format unaligned
SELECT jsonb_pretty(payload) FROM hdb_catalog.event_log
WHERE trigger_name = 'types_tr' AND payload->>'op' = 'INSERT' AND payload->'data'->'new'->>'id' IN ('1', '2')
ORDER BY payload->'data'->'new'->>'id';
\pset format aligned

-- UPDATE and DELETE: old and new both match, for every row.
CREATE TEMP TABLE before_update AS SELECT * FROM all_types;
UPDATE all_types SET c_int4 = coalesce(c_int4, 0) + 1 WHERE c_int4 IS NULL OR c_int4 < 2147483647;
UPDATE all_types SET c_int4 = 0 WHERE c_int4 = 2147483647;
SELECT b.id, e.payload->'data'->'old' = to_jsonb(b.*) AS old_ok, e.payload->'data'->'new' = to_jsonb(t.*) AS new_ok
FROM before_update b JOIN all_types t USING (id) JOIN hdb_catalog.event_log e
  ON e.trigger_name = 'types_tr' AND e.payload->>'op' = 'UPDATE' AND (e.payload->'data'->'old'->>'id')::int = b.id
ORDER BY b.id;
CREATE TEMP TABLE before_delete AS SELECT * FROM all_types;
DELETE FROM all_types;
SELECT b.id, e.payload->'data'->'old' = to_jsonb(b.*) AS old_ok, e.payload->'data'->'new' AS new
FROM before_delete b JOIN hdb_catalog.event_log e
  ON e.trigger_name = 'types_tr' AND e.payload->>'op' = 'DELETE' AND (e.payload->'data'->'old'->>'id')::int = b.id
ORDER BY b.id;
SELECT payload->>'op' AS op, count(*) FROM hdb_catalog.event_log WHERE trigger_name = 'types_tr' GROUP BY 1 ORDER BY 1;

-- Rows whose columns are all scalars are built as jsonb directly (no row_to_json text, no
-- jsonb_in): the same values, byte for byte, as jsonb_in(row_to_json(row)), for every kind of
-- scalar, including NaN and the infinities, domains, enums, and json with duplicate keys.
CREATE DOMAIN public.short_text AS varchar(10);
CREATE TABLE public.scalars (
    id int PRIMARY KEY, c_int2 int2, c_int8 int8, c_numeric numeric, c_num_scale numeric(10, 3),
    c_float4 float4, c_float8 float8, c_bool bool, c_text text, c_varchar varchar(20), c_char char(5),
    c_dom short_text, c_posint posint, c_name name, c_bytea bytea, c_uuid uuid, c_date date, c_time time,
    c_ts timestamp, c_tstz timestamptz, c_interval interval, c_json json, c_jsonb jsonb, c_enum mood,
    c_inet inet, c_int4range int4range, c_money money, c_oid oid);
SELECT hasura_events.create_event_trigger('{"name": "scalars_tr", "table": "scalars", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}}');
INSERT INTO scalars VALUES
 (1, 32767, 9223372036854775807, 12345678901234567890.123456789, 3.1, 3.4028235e38, 1.7976931348623157e308,
  true, E'quote " backslash \\ newline \n tab \t bell \007 ünïcödé ✓ 😀', 'varchar', 'ab', 'dom',
  7, 'a_name', '\xdeadbeef00', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-02-29', '23:59:59.999999',
  '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05.678901+02', '1 year 2 mons 3 days 04:05:06.7',
  '{"b": [1, 2.50, {"c": null}], "a": "x", "a": "dup"}', '{"nested": {"deep": [1, 2.5, "three", true, null]}}',
  'happy', '192.168.1.1/24', '[1,10)', 12.34, 4294967295),
 (2, -32768, -9223372036854775808, 'NaN', -0.001, 'NaN', 'Infinity', false, '', '', '', '', 1, '', '\x',
  '00000000-0000-0000-0000-000000000000', 'infinity', '00:00', '-infinity', 'infinity', '-178000000 years',
  '[]', '"just a string"', 'sad', '::1', 'empty', -0.01, 0),
 (3, 0, 0, 'Infinity', 0, '-Infinity', '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL),
 (4, NULL, NULL, '-Infinity', 0.000, 1.5e-45, 4.9e-324, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, '12.50', '12.50', NULL, NULL, NULL, NULL, NULL);
UPDATE scalars SET c_int2 = 1 WHERE id = 1;
SELECT t.id, e.payload->>'op' AS op,
       (e.payload->'data'->'new')::text = (row_to_json(t.*)::jsonb)::text AS same_text_as_row_to_json,
       e.payload->'data'->'new' = to_jsonb(t.*) AS same_as_to_jsonb
FROM scalars t JOIN hdb_catalog.event_log e
  ON e.trigger_name = 'scalars_tr' AND (e.payload->'data'->'new'->>'id')::int = t.id
  AND (e.payload->>'op' = 'UPDATE' OR t.id <> 1)
ORDER BY t.id;
SELECT jsonb_pretty(payload->'data'->'new') FROM hdb_catalog.event_log
WHERE trigger_name = 'scalars_tr' AND payload->'data'->'new'->>'id' = '2';
-- the stored event as a whole is what the text route gives
SELECT t.id, e.payload::text = ('{"op": "INSERT", "data": {"old": null, "new": ' || row_to_json(t.*)::text
         || '}, "session_variables": null, "trace_context": null}')::jsonb::text AS same_event
FROM scalars t JOIN hdb_catalog.event_log e
  ON e.trigger_name = 'scalars_tr' AND e.payload->>'op' = 'INSERT' AND (e.payload->'data'->'new'->>'id')::int = t.id
WHERE t.id > 1 ORDER BY t.id;

-- A type with its own cast to json is rendered through the cast, as row_to_json does: rows with
-- such a column take the text route.
CREATE FUNCTION public.mood_to_json(mood) RETURNS json LANGUAGE sql IMMUTABLE
  AS $$ SELECT json_build_object('mood', $1::text) $$;
CREATE CAST (mood AS json) WITH FUNCTION public.mood_to_json(mood);
CREATE TABLE public.with_cast (id int PRIMARY KEY, m mood);
SELECT hasura_events.create_event_trigger('{"name": "cast_tr", "table": "with_cast", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
INSERT INTO with_cast VALUES (1, 'ok');
SELECT payload->'data'->'new' AS new, payload->'data'->'new' = row_to_json(w.*)::jsonb AS same_as_row_to_json
FROM hdb_catalog.event_log, with_cast w WHERE trigger_name = 'cast_tr';
DROP CAST (mood AS json);

-- A json value jsonb cannot hold (\u0000) is refused with the write, not stored broken.
SELECT try_sql($$INSERT INTO all_types (id, c_json) VALUES (10, '{"a": "\u0000"}') RETURNING id$$);
SELECT count(*) FROM all_types;

-- Generated (stored) columns appear in old and new, with their computed values.
CREATE TABLE public.gen_cols (id int PRIMARY KEY, price numeric, qty int,
                              total numeric GENERATED ALWAYS AS (price * qty) STORED);
SELECT hasura_events.create_event_trigger('{"name": "gen_tr", "table": "gen_cols", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}}');
INSERT INTO gen_cols (id, price, qty) VALUES (1, 2.5, 4);
UPDATE gen_cols SET qty = 10;
SELECT payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log WHERE trigger_name = 'gen_tr'
ORDER BY 1;
SELECT e.payload->'data'->'new' = to_jsonb(g.*) AS same FROM gen_cols g, hdb_catalog.event_log e
WHERE e.trigger_name = 'gen_tr' AND e.payload->>'op' = 'UPDATE';

-- Dropped columns: a column dropped in the middle after the trigger was created is left out;
-- rows written before and after the drop render like to_jsonb.
CREATE TABLE public.dropped (a int, b text, c int, d text);
SELECT hasura_events.create_event_trigger('{"name": "dropped_tr", "table": "dropped", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}, "delete": {"columns": "*", "payload": ["a", "d"]}}');
INSERT INTO dropped VALUES (1, 'one', 10, 'x');
ALTER TABLE dropped DROP COLUMN b;
INSERT INTO dropped VALUES (2, 20, 'y');
UPDATE dropped SET c = c + 1;
ALTER TABLE dropped DROP COLUMN c;
ALTER TABLE dropped ADD COLUMN e text DEFAULT 'added';
INSERT INTO dropped VALUES (3, 'z');
UPDATE dropped SET d = d || '!' WHERE a = 1;
DELETE FROM dropped WHERE a = 2;
SELECT payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log WHERE trigger_name = 'dropped_tr'
ORDER BY 1, coalesce(payload->'data'->'new'->>'a', payload->'data'->'old'->>'a'), (payload->'data')::text;
SELECT d.a, e.payload->'data'->'new' = to_jsonb(d.*) AS same FROM dropped d, hdb_catalog.event_log e
WHERE e.trigger_name = 'dropped_tr' AND e.payload->>'op' = 'UPDATE' AND e.payload->'data'->'new'->>'a' = d.a::text
  AND e.payload->'data'->'new' ? 'e'
ORDER BY 1;

-- A column added with a default after rows exist (the default is not stored in old rows):
-- old rows still show it, like to_jsonb does.
CREATE TABLE public.missing_attr (id int);
INSERT INTO missing_attr VALUES (1);
ALTER TABLE missing_attr ADD COLUMN flag text NOT NULL DEFAULT 'on';
ALTER TABLE missing_attr ADD COLUMN n int DEFAULT 42;
SELECT hasura_events.create_event_trigger('{"name": "missing_tr", "table": "missing_attr", "webhook": "http://h/",
  "update": {"columns": "*", "payload": ["id", "flag"]}, "delete": {"columns": "*"}}');
CREATE TEMP TABLE missing_before AS SELECT * FROM missing_attr;
UPDATE missing_attr SET id = 2;
DELETE FROM missing_attr;
SELECT payload->>'op' AS op, payload->'data' AS data
FROM hdb_catalog.event_log WHERE trigger_name = 'missing_tr' ORDER BY 1;
SELECT (e.payload->'data'->'old') - 'id' = to_jsonb(m.*) - 'id' AS delete_old_same_as_to_jsonb
FROM missing_before m, hdb_catalog.event_log e WHERE e.trigger_name = 'missing_tr' AND e.payload->>'op' = 'DELETE';

-- TOASTed values: a 20 MB text (the suite keeps this small to stay fast; the code path is the
-- same for larger values) and a non-compressible external value; only lengths are shown.
CREATE TABLE public.big (id int PRIMARY KEY, small text, doc text, blob bytea);
ALTER TABLE big ALTER COLUMN blob SET STORAGE EXTERNAL;
SELECT hasura_events.create_event_trigger('{"name": "big_tr", "table": "big", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": ["small"]}, "delete": {"columns": "*"}}');
INSERT INTO big VALUES (1, 's', repeat('x', 20 * 1024 * 1024), decode(repeat('0123456789abcdef', 16384), 'hex'));
-- the TOASTed columns are unchanged: the event still carries them in full, old and new
UPDATE big SET small = 't';
-- changing only a TOASTed column the trigger does not listen to gives no event
UPDATE big SET doc = doc || 'y';
DELETE FROM big;
SELECT payload->>'op' AS op,
       length(payload->'data'->'new'->>'doc') AS new_doc_len, length(payload->'data'->'old'->>'doc') AS old_doc_len,
       length(payload->'data'->'new'->>'blob') AS new_blob_len, length(payload->'data'->'old'->>'blob') AS old_blob_len,
       payload->'data'->'new'->>'small' AS new_small, payload->'data'->'old'->>'small' AS old_small,
       md5(payload->'data'->'new'->>'doc') = md5(repeat('x', 20 * 1024 * 1024)) AS new_doc_intact
FROM hdb_catalog.event_log WHERE trigger_name = 'big_tr' ORDER BY 1;
