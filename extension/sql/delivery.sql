-- extension/sql/delivery.sql
--
-- Second part of the install script (appended to hasura_events.sql by the build): what the
-- delivery side needs in SQL.

-- The launcher starts this database's dispatcher when the creating transaction commits.
SELECT hasura_events._wake();
