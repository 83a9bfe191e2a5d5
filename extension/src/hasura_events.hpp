/*
 * extension/src/hasura_events.hpp
 *
 * Declarations shared by the Postgres-regime files of the module (capture, API helpers, worker).
 * Include after postgres.h.
 */
#pragma once

#ifndef PG_VERSION_NUM
#error "include postgres.h before hasura_events.hpp"
#endif

/* module.cpp */
extern bool hasura_events_preloaded;
/* gucs.cpp: payloads render bigint, numeric and double precision as JSON strings (capture.cpp) */
extern bool hasura_events_stringify_numeric_types;
/* a new time-ordered event or invocation id (UUID version 7, as text) */
extern "C" text *hasura_events_new_id(void);

/* wake.cpp: remember that this transaction recorded events created at created_at (or made due
 * again: DT_NOBEGIN); the worker of this database is woken when (and only if) the transaction
 * commits. */
extern void hasura_events_note_events_recorded(TimestampTz created_at);
extern void hasura_events_shmem_init(void);

/* direct_insert.cpp: rows into the extension's catalog tables as COPY writes them (begin, then
 * per row: fill direct_insert_slot's values and nulls, direct_insert_row; then end). The values
 * must stay valid until direct_insert_end: rows are written in batches. */
typedef struct RelationData *Relation;
struct CatalogColumn {
	const char *name;
	Oid type;
};
/* event_log_relid: hdb_catalog.event_log, or an error (UNDEFINED_TABLE) when it is missing */
extern Oid event_log_relid(void);
/* relation_has_layout: the table has exactly these columns, in this order, of these types */
extern bool relation_has_layout(Relation rel, const CatalogColumn *columns, int ncolumns);
struct DirectInsert {
	Relation rel;
	struct EState *estate;
	struct ResultRelInfo *rri;
	struct BulkInsertStateData *bistate;
	struct TupleTableSlot **slots; /* the batch; one slot on the simple-insert path */
	int nslots;                    /* slots made */
	int nbuffered;                 /* rows in slots[0 .. nbuffered - 1], not written yet */
};
extern void direct_insert_begin(DirectInsert *di, Relation rel);
extern struct TupleTableSlot *direct_insert_slot(DirectInsert *di);
extern void direct_insert_row(DirectInsert *di);
extern void direct_insert_end(DirectInsert *di);
