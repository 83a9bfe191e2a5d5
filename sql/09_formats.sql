-- 09_formats: payload values as Hasura's trigger function renders them: PostGIS geometry and
-- geography as ST_AsGeoJSON(col, 15, 4), and with hasura_events.stringify_numeric_types bigint,
-- numeric and double precision as JSON strings. Both on the direct jsonb route and on the
-- row_to_json route (rows with an array column take it). PostGIS stays optional.
SET TimeZone = 'UTC';
SET extra_float_digits = 0;
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS hasura_events;
RESET client_min_messages;
TRUNCATE hdb_catalog.event_log;

-- The extension neither requires PostGIS nor depends on anything of it.
SELECT count(*) AS postgis_installed FROM pg_extension WHERE extname = 'postgis';
SELECT requires FROM pg_available_extension_versions WHERE name = 'hasura_events' AND version = '0.2.0';

-- Big numbers: numbers by default (Hasura's default too), strings with the setting on.
SELECT name, setting, context FROM pg_settings WHERE name = 'hasura_events.stringify_numeric_types';
CREATE DOMAIN public.fmt_bigdom AS bigint;
CREATE TABLE public.fmt_num (id bigint PRIMARY KEY, n numeric, f8 double precision, f4 real, i2 smallint,
                             i4 int, m money, bd fmt_bigdom, t text);
CREATE TABLE public.fmt_num_arr (id bigint PRIMARY KEY, n numeric, f8 double precision, i4 int, tags int8[]);
SELECT hasura_events.create_event_trigger('{"name": "fmt_num", "table": "fmt_num", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "fmt_num_list", "table": "fmt_num", "webhook": "http://h/",
  "insert": {"columns": "*", "payload": ["id", "i4", "n"]}}');
SELECT hasura_events.create_event_trigger('{"name": "fmt_num_arr", "table": "fmt_num_arr", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "fmt_num_arr_list", "table": "fmt_num_arr", "webhook": "http://h/",
  "insert": {"columns": "*", "payload": ["id", "tags"]}}');
INSERT INTO fmt_num VALUES (50755254975729665, 12345678901234567890.123, 1.5, 2.5, 1, 2, 3.5, 50755254975729665, 'x');
INSERT INTO fmt_num_arr VALUES (50755254975729665, 0.1, -2.5e20, 7, '{1,50755254975729665}');
SET hasura_events.stringify_numeric_types = on;
INSERT INTO fmt_num VALUES (50755254975729666, 12345678901234567890.123, 1.5, 2.5, 1, 2, 3.5, 50755254975729665, 'x'),
                           (3, 'NaN', 'Infinity', 'NaN', NULL, NULL, NULL, NULL, NULL);
INSERT INTO fmt_num_arr VALUES (50755254975729666, 0.1, -2.5e20, 7, '{1,50755254975729665}');
-- rows that fire row-level pg triggers (trigger_on_replication) render the same
SELECT hasura_events.create_event_trigger('{"name": "fmt_num_row", "table": "fmt_num", "webhook": "http://h/",
  "update": {"columns": "*"}, "trigger_on_replication": true}');
UPDATE fmt_num SET t = 'y' WHERE id = 50755254975729666;
RESET hasura_events.stringify_numeric_types;
SELECT trigger_name, payload->>'op' AS op, payload->'data'->'new' AS new FROM hdb_catalog.event_log
ORDER BY trigger_name, created_at, id;
-- the strings are the columns' text, as Hasura's ::text casts give
SELECT bool_and(e.payload->'data'->'new'->>'id' = t.id::text AND e.payload->'data'->'new'->>'n' = t.n::text
                AND e.payload->'data'->'new'->>'f8' = t.f8::text AND e.payload->'data'->'new'->>'bd' = t.bd::text)
       AS strings_are_text
FROM hdb_catalog.event_log e JOIN fmt_num t ON t.id = (e.payload->'data'->'new'->>'id')::bigint
WHERE e.trigger_name = 'fmt_num' AND jsonb_typeof(e.payload->'data'->'new'->'id') = 'string';
TRUNCATE hdb_catalog.event_log;

-- PostGIS installed in the database: geometry and geography columns become GeoJSON, with the
-- long CRS form, on both routes and in payload lists; arrays of them stay as row_to_json has them.
CREATE EXTENSION postgis;
CREATE TABLE public.fmt_geo (id int PRIMARY KEY, g geometry(Point, 4326), gg geography, gplain geometry, note text);
CREATE TABLE public.fmt_geo_arr (id int PRIMARY KEY, g geometry, gg geography(LineString, 4326), garr geometry[]);
SELECT hasura_events.create_event_trigger('{"name": "fmt_geo", "table": "fmt_geo", "webhook": "http://h/",
  "insert": {"columns": "*"}, "update": {"columns": "*"}, "delete": {"columns": "*"}}');
SELECT hasura_events.create_event_trigger('{"name": "fmt_geo_list", "table": "fmt_geo", "webhook": "http://h/",
  "insert": {"columns": "*", "payload": ["id", "gg"]}}');
SELECT hasura_events.create_event_trigger('{"name": "fmt_geo_arr", "table": "fmt_geo_arr", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
INSERT INTO fmt_geo VALUES
    (1, ST_GeomFromText('POINT(-43.77 45.64)', 4326), 'SRID=4326;POINT(-43.77 45.64)', NULL, 'a'),
    (3, ST_GeomFromText('POINT(0.123456789012345678 -1.5)', 4326),
        'LINESTRING(-122.33 47.606, -122.0 47.5)', ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'), 'b');
INSERT INTO fmt_geo_arr VALUES
    (101, ST_GeomFromText('POINT(1 2)', 3857), 'SRID=4326;LINESTRING(1 2, 3 4)',
        ARRAY[ST_GeomFromText('POINT(1 2)')]);
-- the rows as they were, to compare the events with
CREATE TABLE public.fmt_geo_ref (id int, g geometry, gg geography, gplain geometry);
INSERT INTO fmt_geo_ref SELECT id, g, gg, gplain FROM fmt_geo;
INSERT INTO fmt_geo_ref SELECT 2, g, gg, gplain FROM fmt_geo_ref WHERE id = 1;
INSERT INTO fmt_geo_ref SELECT id, g, gg, NULL FROM fmt_geo_arr;
-- Hasura's own test (test_events.py, TestEventDataFormat.test_geojson): an UPDATE of the id
UPDATE fmt_geo SET id = 2 WHERE id = 1;
DELETE FROM fmt_geo WHERE id = 3;
SELECT trigger_name, payload->>'op' AS op, payload->'data' AS data FROM hdb_catalog.event_log
ORDER BY trigger_name, created_at, id;
-- every value equals ST_AsGeoJSON(col, 15, 4)::jsonb of its row
SELECT e.trigger_name, count(*) AS rows_checked,
       bool_and(r->'gg' = coalesce(ST_AsGeoJSON(t.gg, 15, 4)::jsonb, 'null')
                AND (NOT r ? 'g' OR r->'g' = coalesce(ST_AsGeoJSON(t.g, 15, 4)::jsonb, 'null'))
                AND (NOT r ? 'gplain' OR r->'gplain' = coalesce(ST_AsGeoJSON(t.gplain, 15, 4)::jsonb, 'null')))
           AS all_geojson
FROM hdb_catalog.event_log e
CROSS JOIN LATERAL (VALUES (e.payload->'data'->'new'), (e.payload->'data'->'old')) v(r)
JOIN fmt_geo_ref t ON t.id = (r->>'id')::int
WHERE jsonb_typeof(r) = 'object'
GROUP BY 1 ORDER BY 1;
TRUNCATE hdb_catalog.event_log;

-- Both renderings at once, and a writer who is not a superuser (the function runs as the writer).
CREATE ROLE regress_fmt_writer;
GRANT USAGE ON SCHEMA public TO regress_fmt_writer;
GRANT INSERT ON fmt_geo TO regress_fmt_writer;
ALTER TABLE fmt_geo ADD COLUMN big bigint;
SET hasura_events.stringify_numeric_types = on;
SET ROLE regress_fmt_writer;
INSERT INTO fmt_geo (id, g, big) VALUES (10, ST_GeomFromText('POINT(1 1)', 4326), 9007199254740993);
RESET ROLE;
RESET hasura_events.stringify_numeric_types;
SELECT trigger_name, payload->'data'->'new' AS new FROM hdb_catalog.event_log ORDER BY trigger_name;
TRUNCATE hdb_catalog.event_log;

-- Without PostGIS again: a type named geometry that is not PostGIS's renders as row_to_json
-- renders it, and capture keeps working.
DROP TABLE fmt_geo, fmt_geo_arr, fmt_geo_ref;
DROP EXTENSION postgis;
CREATE TYPE public.geometry AS ENUM ('POINT(1 2)');
CREATE TABLE public.fmt_fake_geo (id int, g geometry);
SELECT hasura_events.create_event_trigger('{"name": "fmt_fake_geo", "table": "fmt_fake_geo", "webhook": "http://h/",
  "insert": {"columns": "*"}}');
INSERT INTO fmt_fake_geo VALUES (1, 'POINT(1 2)');
SELECT trigger_name, payload->'data'->'new' AS new FROM hdb_catalog.event_log;
TRUNCATE hdb_catalog.event_log;
-- what was looked up is cached per type, and forgotten when functions change: an st_asgeojson
-- for the type (Hasura's rule is the names) is used by the next statement of this session
CREATE FUNCTION public.st_asgeojson(g geometry, digits int, options int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('{"type": "Fake", "g": "%s", "digits": %s, "options": %s}', g, digits, options) $$;
INSERT INTO fmt_fake_geo VALUES (2, 'POINT(1 2)');
DROP FUNCTION public.st_asgeojson(geometry, int, int);
INSERT INTO fmt_fake_geo VALUES (3, 'POINT(1 2)');
SELECT trigger_name, payload->'data'->'new' AS new FROM hdb_catalog.event_log ORDER BY created_at, id;

-- Clean up.
DROP TABLE fmt_fake_geo, fmt_num, fmt_num_arr;
DROP TYPE public.geometry;
DROP DOMAIN fmt_bigdom;
REVOKE ALL ON SCHEMA public FROM regress_fmt_writer;
DROP ROLE regress_fmt_writer;
TRUNCATE hdb_catalog.event_log;
