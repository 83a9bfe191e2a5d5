/*
 * extension/src/status.cpp
 *
 * hasura_events._worker_status(): what each database's dispatcher publishes in shared memory
 * (see publish_status in dispatcher.cpp), one row per database slot, for the view
 * hasura_events.worker_status.
 *
 * hasura_events._queue_stats(): the queue figures of every trigger, read from the two partial
 * indexes of event_log, for the view hasura_events.trigger_status and the sidecars' metrics.
 */
extern "C" {
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_index.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
}

#include "hasura_events.hpp"
#include "worker.hpp"

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_worker_status);

PGDLLEXPORT Datum
hasura_events_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	InitMaterializedSRF(fcinfo, 0);
	if (hasura_events_shmem == NULL)
		PG_RETURN_VOID();

	DispatcherSlot slots[HASURA_EVENTS_MAX_DATABASES];
	pid_t launcher_pid;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	memcpy(slots, hasura_events_shmem->slots, sizeof(slots));
	launcher_pid = hasura_events_shmem->launcher_pid;
	SpinLockRelease(&hasura_events_shmem->mutex);

	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++) {
		DispatcherSlot *s = &slots[i];
		if (!OidIsValid(s->dboid) || s->no_extension)
			continue;
		Datum values[13];
		bool nulls[13] = {false};
		char *dbname = get_database_name(s->dboid);
		values[0] = ObjectIdGetDatum(s->dboid);
		nulls[1] = dbname == NULL;
		values[1] = dbname ? CStringGetTextDatum(dbname) : (Datum)0;
		nulls[2] = s->pid == 0;
		values[2] = Int32GetDatum(s->pid);
		nulls[3] = s->pid == 0 || s->started_at == 0;
		values[3] = TimestampTzGetDatum(s->started_at);
		values[4] = Int64GetDatum(s->starts > 0 ? (int64)s->starts - 1 : 0);
		values[5] = Int32GetDatum(s->pid == 0 ? 0 : s->sidecars);
		values[6] = Int64GetDatum(s->pid == 0 ? 0 : s->inflight);
		values[7] = Int64GetDatum((int64)s->events_fetched);
		values[8] = Int64GetDatum((int64)s->fetches);
		nulls[9] = s->last_fetch_at == 0;
		values[9] = TimestampTzGetDatum(s->last_fetch_at);
		values[10] = Int64GetDatum((int64)s->delivered);
		values[11] = Int64GetDatum((int64)s->retried + (int64)s->dead);
		nulls[12] = launcher_pid == 0;
		values[12] = Int32GetDatum(launcher_pid);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

} // extern "C"

/*
 * _queue_stats. The dispatcher sends these figures to the sidecars every
 * hasura_events.metrics_interval (5 s), between two claims, so their cost must follow the backlog
 * and never the delivered history. A SQL query left that to the planner, and with statistics
 * taken while a backlog waited it chose a sequential scan of the whole log, every 5 s, with the
 * claims of fresh events waiting behind it (a latency spike for every event claimed meanwhile).
 * So the scan is fixed here: the claim index (undelivered events) and the dead-event
 * index, walked in full. The index entries of delivered events that vacuum has not removed yet
 * are marked dead by the first scan that meets them, as every index scan does, and cost little
 * after that. Without either index (dropped by hand) the same figures come from the table.
 */

namespace {

struct TriggerQueue {
	char *name;
	int64 pending;
	TimestampTz oldest;
	int64 retrying;
	int64 errored;
};

struct QueueColumns {
	AttrNumber trigger_name, created_at, next_retry_at, delivered, error, archived;
};

int
compare_queue_names(const void *a, const void *b)
{
	return strcmp(((const TriggerQueue *)a)->name, ((const TriggerQueue *)b)->name);
}

AttrNumber
queue_column(Relation rel, const char *name)
{
	AttrNumber att = get_attnum(RelationGetRelid(rel), name);
	if (att == InvalidAttrNumber)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
						errmsg("column \"%s\" of hdb_catalog.event_log does not exist", name),
						errhint("The event log was altered by hand; recreate the extension.")));
	return att;
}

/* find_trigger: the entry of the trigger named by a text datum, or NULL (a trigger deleted
 * meanwhile: its events are not counted, as the trigger is not listed). */
TriggerQueue *
find_trigger(TriggerQueue *triggers, int n, Datum name_datum)
{
	text *t = DatumGetTextPP(name_datum);
	int len = (int)VARSIZE_ANY_EXHDR(t);
	const char *name = VARDATA_ANY(t);
	int lo = 0, hi = n - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		int c = strncmp(triggers[mid].name, name, (size_t)len);
		if (c == 0 && triggers[mid].name[len] != '\0')
			c = 1;
		if (c == 0)
			return &triggers[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* partial_index: the index of event_log with this name, or InvalidOid when it is not there
 * (or not usable). */
Oid
partial_index(Relation heap, Oid nsp, const char *name)
{
	Oid idx = get_relname_relid(name, nsp);
	if (!OidIsValid(idx) || !list_member_oid(RelationGetIndexList(heap), idx))
		return InvalidOid;
	HeapTuple tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(idx));
	if (!HeapTupleIsValid(tup))
		return InvalidOid;
	bool valid = ((Form_pg_index)GETSTRUCT(tup))->indisvalid;
	ReleaseSysCache(tup);
	return valid ? idx : InvalidOid;
}

/*
 * scan_events: every visible row of event_log reached through the index (or the whole table when
 * idx is invalid), given to count() with its slot. The index's predicate narrows what is read;
 * count() tests the conditions itself, so the figures stay right whatever the index holds.
 */
template <typename Count>
void
scan_events(Relation heap, Oid idx, Snapshot snapshot, Count count)
{
	TupleTableSlot *slot = table_slot_create(heap, NULL);
	if (OidIsValid(idx)) {
		Relation index = index_open(idx, AccessShareLock);
		IndexScanDesc scan = index_beginscan(heap, index, snapshot, 0, 0);
		index_rescan(scan, NULL, 0, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot)) {
			CHECK_FOR_INTERRUPTS();
			count(slot);
		}
		index_endscan(scan);
		index_close(index, AccessShareLock);
	} else {
		TableScanDesc scan = table_beginscan(heap, snapshot, 0, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
			CHECK_FOR_INTERRUPTS();
			count(slot);
		}
		table_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
}

bool
slot_bool(TupleTableSlot *slot, AttrNumber att)
{
	bool isnull;
	Datum d = slot_getattr(slot, att, &isnull);
	return !isnull && DatumGetBool(d);
}

} // namespace

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_queue_stats);

PGDLLEXPORT Datum
hasura_events_queue_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	InitMaterializedSRF(fcinfo, 0);

	/* the triggers, sorted by name (bytewise) for the lookups */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "hasura_events._queue_stats: SPI_connect failed");
	if (SPI_execute("SELECT name FROM hasura_events.event_triggers", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "hasura_events._queue_stats: reading the triggers failed");
	int n = (int)SPI_processed;
	MemoryContext call_ctx = rsinfo->econtext->ecxt_per_query_memory;
	TriggerQueue *triggers = (TriggerQueue *)MemoryContextAllocZero(call_ctx, sizeof(TriggerQueue) * Max(n, 1));
	for (int i = 0; i < n; i++) {
		char *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		triggers[i].name = MemoryContextStrdup(call_ctx, name != NULL ? name : "");
		triggers[i].oldest = DT_NOEND;
	}
	SPI_finish();
	qsort(triggers, (size_t)n, sizeof(TriggerQueue), compare_queue_names);

	Oid relid = event_log_relid();
	Oid nsp = get_rel_namespace(relid);
	AclResult acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_TABLE, "event_log");
	Relation heap = table_open(relid, AccessShareLock);
	QueueColumns col;
	col.trigger_name = queue_column(heap, "trigger_name");
	col.created_at = queue_column(heap, "created_at");
	col.next_retry_at = queue_column(heap, "next_retry_at");
	col.delivered = queue_column(heap, "delivered");
	col.error = queue_column(heap, "error");
	col.archived = queue_column(heap, "archived");
	Snapshot snapshot = GetActiveSnapshot();
	TimestampTz now = GetCurrentTransactionStartTimestamp();

	if (n > 0) {
		/* undelivered: pending, the oldest, waiting for a retry */
		scan_events(heap, partial_index(heap, nsp, "event_log_claim_idx"), snapshot, [&](TupleTableSlot *slot) {
			if (slot_bool(slot, col.delivered) || slot_bool(slot, col.error) || slot_bool(slot, col.archived))
				return;
			bool isnull;
			Datum name = slot_getattr(slot, col.trigger_name, &isnull);
			TriggerQueue *q = isnull ? NULL : find_trigger(triggers, n, name);
			if (q == NULL)
				return;
			q->pending++;
			Datum created = slot_getattr(slot, col.created_at, &isnull);
			if (!isnull)
				q->oldest = Min(q->oldest, DatumGetTimestampTz(created));
			Datum retry = slot_getattr(slot, col.next_retry_at, &isnull);
			if (!isnull && DatumGetTimestampTz(retry) > now)
				q->retrying++;
		});
		/* dead, not archived */
		scan_events(heap, partial_index(heap, nsp, "event_log_dead_idx"), snapshot, [&](TupleTableSlot *slot) {
			if (!slot_bool(slot, col.error) || slot_bool(slot, col.archived))
				return;
			bool isnull;
			Datum name = slot_getattr(slot, col.trigger_name, &isnull);
			TriggerQueue *q = isnull ? NULL : find_trigger(triggers, n, name);
			if (q != NULL)
				q->errored++;
		});
	}
	table_close(heap, AccessShareLock);

	for (int i = 0; i < n; i++) {
		TriggerQueue *q = &triggers[i];
		Datum values[5];
		bool nulls[5] = {false};
		values[0] = CStringGetTextDatum(q->name);
		values[1] = Int64GetDatum(q->pending);
		/* seconds since the oldest pending event was created (0 without one), as
		 * date_part('epoch', now() - min(created_at)) */
		values[2] = Float8GetDatum(q->pending > 0 ? (double)(now - q->oldest) / USECS_PER_SEC : 0.0);
		values[3] = Int64GetDatum(q->retrying);
		values[4] = Int64GetDatum(q->errored);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

} // extern "C"
