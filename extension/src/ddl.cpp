/*
 * extension/src/ddl.cpp
 *
 * hasura_events._renamed_column(pg_ddl_command): for the ddl_command_end hook of the install
 * script (_on_ddl_end), the old and the new name of a column an ALTER TABLE ... RENAME COLUMN
 * renamed, or NULL for any other command. The catalogs at ddl_command_end hold only the new name;
 * the old one is in the statement, which only C code can read from the collected command.
 *
 * Postgres regime: plain data only, errors by ereport.
 */
extern "C" {
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "nodes/parsenodes.h"
#include "tcop/deparse_utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_renamed_column);

/*
 * hasura_events_renamed_column: {old name, new name} of a RENAME COLUMN of a table (ALTER TABLE
 * tag; a view's or foreign table's columns are never listened to), NULL otherwise. The command
 * can only come from pg_event_trigger_ddl_commands() (pg_ddl_command has no input function).
 */
PGDLLEXPORT Datum
hasura_events_renamed_column(PG_FUNCTION_ARGS)
{
	CollectedCommand *cmd = (CollectedCommand *)PG_GETARG_POINTER(0);
	if (cmd == NULL || cmd->type != SCT_Simple || cmd->parsetree == NULL || !IsA(cmd->parsetree, RenameStmt))
		PG_RETURN_NULL();
	RenameStmt *stmt = (RenameStmt *)cmd->parsetree;
	if (stmt->renameType != OBJECT_COLUMN || stmt->relationType != OBJECT_TABLE || stmt->subname == NULL ||
		stmt->newname == NULL)
		PG_RETURN_NULL();
	Datum names[2] = {CStringGetTextDatum(stmt->subname), CStringGetTextDatum(stmt->newname)};
	PG_RETURN_ARRAYTYPE_P(construct_array(names, 2, TEXTOID, -1, false, TYPALIGN_INT));
}

} // extern "C"
