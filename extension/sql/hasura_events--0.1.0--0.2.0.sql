-- hasura_events--0.1.0--0.2.0.sql: ALTER EXTENSION hasura_events UPDATE from 0.1.0 to 0.2.0.
--
-- Brings a 0.1.0 database to what extension/sql/hasura_events.sql and delivery.sql create at 0.2.0,
-- keeping every trigger definition, event and invocation log. tests/integration/test_upgrade.py
-- upgrades a populated 0.1.0 database and compares its objects with a fresh 0.2.0 install.

\echo Use "ALTER EXTENSION hasura_events UPDATE" to load this file. \quit
