/*
 * extension/src/launcher.cpp
 *
 * The launcher: one static background worker per cluster that starts a dispatcher for every
 * database that has the extension, and restarts one that died.
 *
 * How it finds the databases: at start it looks at every database that accepts connections, a
 * few at a time (continue_look): a dispatcher that finds no extension marks its database and
 * exits at once, which frees its slot for the next one. After that only requests start
 * dispatchers: CREATE EXTENSION, and the commit of a transaction that recorded events in a
 * database without a running dispatcher (wake.cpp), so a database where the extension is created
 * later, or restored, is served without any polling. DROP DATABASE stops the database's
 * dispatcher first (module.cpp's utility hook) so it never blocks the drop.
 */
extern "C" {
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/stratnum.h"
#include "catalog/pg_database.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "hasura_events.hpp"
#include "worker.hpp"

namespace {

/* The launcher's own view of each slot's worker. */
BackgroundWorkerHandle *handles[HASURA_EVENTS_MAX_DATABASES];
Oid handle_db[HASURA_EVENTS_MAX_DATABASES];
TimestampTz last_start[HASURA_EVENTS_MAX_DATABASES];

constexpr int kRestartDelayMs = 1000;

/*
 * The look at every database, at start (and again if more databases waited for a slot than the
 * waiting list holds): a dispatcher is started in each database that accepts connections and has
 * no slot yet, the databases waiting for a slot first; one that finds no extension marks its
 * slot and exits, and manage_dispatchers frees the slot. At most kMaxLooks at a time, so that the
 * look leaves worker processes to others (parallel query, other extensions), and never more than
 * the free slots: with more databases than slots, each one is looked at in turn, and a backlog in
 * the last one is found without a new event there.
 */
constexpr int kMaxLooks = 2;
List *to_look = NIL;                      /* databases still to look at (TopMemoryContext) */
Oid looking[HASURA_EVENTS_MAX_DATABASES]; /* the database a look put in slot i, while it runs */

/*
 * open_databases: the databases that accept connections and are no templates (a dispatcher is
 * started only there), in TopMemoryContext: all of them, or with only set, at most that one.
 */
List *
open_databases(Oid only)
{
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	Relation rel = table_open(DatabaseRelationId, AccessShareLock);
	ScanKeyData key;
	ScanKeyInit(&key, Anum_pg_database_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(only));
	TableScanDesc scan = table_beginscan_catalog(rel, OidIsValid(only) ? 1 : 0, &key);
	HeapTuple tup;
	List *dbs = NIL;
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL) {
		Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);
		if (db->datallowconn && !db->datistemplate) {
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
			dbs = lappend_oid(dbs, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return dbs;
}

/* list_databases: every database that accepts connections is to be looked at. */
void
list_databases(void)
{
	list_free(to_look);
	to_look = open_databases(InvalidOid);
}

/*
 * database_open: whether dboid still exists and accepts connections. A look or a request may name
 * a database dropped, closed or made a template since: a dispatcher started there would fail
 * (or block CREATE DATABASE from the template) at every restart, and keep its slot.
 */
bool
database_open(Oid dboid)
{
	List *dbs = open_databases(dboid);
	bool open = dbs != NIL;
	list_free(dbs);
	return open;
}

/* look_at_waiting_first: the databases that found every slot taken go to the head of the look. */
void
look_at_waiting_first(void)
{
	Oid waiting[HASURA_EVENTS_MAX_DATABASES];
	SpinLockAcquire(&hasura_events_shmem->mutex);
	int n = hasura_events_shmem->nwaiting;
	memcpy(waiting, hasura_events_shmem->waiting, sizeof(Oid) * n);
	bool lost = hasura_events_shmem->waiting_lost;
	hasura_events_shmem->waiting_lost = false;
	SpinLockRelease(&hasura_events_shmem->mutex);
	/* more waited than were kept: look at every database again */
	if (lost)
		list_databases();
	/* backwards, so that the first to wait ends up first */
	for (int i = n - 1; i >= 0; i--) {
		if (to_look != NIL && linitial_oid(to_look) == waiting[i])
			continue;
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		to_look = list_delete_oid(to_look, waiting[i]);
		to_look = lcons_oid(waiting[i], to_look);
		MemoryContextSwitchTo(old);
	}
}

/* continue_look: takes slots for the next databases to look at, as far as the limits allow. */
void
continue_look(void)
{
	int running = 0;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++) {
		DispatcherSlot *s = &hasura_events_shmem->slots[i];
		if (!OidIsValid(looking[i]))
			continue;
		if (s->dboid != looking[i] || s->serving)
			looking[i] = InvalidOid; /* freed (no extension there) or served: that look is over */
		else
			running++;
	}
	SpinLockRelease(&hasura_events_shmem->mutex);
	while (running < kMaxLooks && to_look != NIL) {
		Oid dboid = linitial_oid(to_look);
		bool no_slot;
		int i = hasura_events_look_at_database(dboid, &no_slot);
		if (no_slot)
			return; /* every slot is taken: go on when one frees up (a dispatcher exit wakes us) */
		to_look = list_delete_first(to_look);
		if (i >= 0) {
			looking[i] = dboid;
			running++;
		}
	}
}

bool
start_dispatcher(int i, Oid dboid)
{
	BackgroundWorker w;
	memset(&w, 0, sizeof(w));
	snprintf(w.bgw_name, BGW_MAXLEN, "hasura_events dispatcher for database %u", dboid);
	snprintf(w.bgw_type, BGW_MAXLEN, "hasura_events dispatcher");
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher restarts it */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "hasura_events");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "hasura_events_dispatcher_main");
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handles[i])) {
		handles[i] = NULL;
		return false;
	}
	handle_db[i] = dboid;
	last_start[i] = GetCurrentTimestamp();
	return true;
}

/*
 * manage_dispatchers: starts what is wanted and not running. Returns whether a start must be
 * retried later (a restart delay, or no free worker slot).
 */
bool
manage_dispatchers(void)
{
	bool retry_later = false;
	TimestampTz now = GetCurrentTimestamp();
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++) {
		if (handles[i] != NULL) {
			pid_t pid;
			if (GetBackgroundWorkerPid(handles[i], &pid) != BGWH_STOPPED)
				continue;
			pfree(handles[i]);
			handles[i] = NULL;
		}
		SpinLockAcquire(&hasura_events_shmem->mutex);
		DispatcherSlot *slot = &hasura_events_shmem->slots[i];
		Oid dboid = slot->dboid;
		bool start = OidIsValid(dboid) && slot->wanted && !slot->dropping && slot->pid == 0;
		if (OidIsValid(dboid) && !slot->wanted && slot->no_extension && slot->pid == 0)
			slot->dboid = InvalidOid; /* nothing to serve there: free the slot */
		SpinLockRelease(&hasura_events_shmem->mutex);
		if (!start)
			continue;
		if (handle_db[i] == dboid && !TimestampDifferenceExceeds(last_start[i], now, kRestartDelayMs)) {
			retry_later = true; /* it died a moment ago: wait a little before the next start */
			continue;
		}
		if (!database_open(dboid)) {
			SpinLockAcquire(&hasura_events_shmem->mutex);
			if (slot->dboid == dboid && slot->pid == 0 && !slot->dropping)
				slot->dboid = InvalidOid; /* nothing to serve there: free the slot */
			SpinLockRelease(&hasura_events_shmem->mutex);
			SetLatch(MyLatch); /* once more round the loop: the look goes on with that slot */
			continue;
		}
		if (!start_dispatcher(i, dboid)) {
			ereport(WARNING, (errmsg("hasura_events launcher: could not start a dispatcher for database %u", dboid),
							  errhint("Raise max_worker_processes: each database with the extension needs one.")));
			retry_later = true;
			last_start[i] = now;
			handle_db[i] = dboid;
		}
	}
	return retry_later;
}

void
launcher_exit(int code, Datum arg)
{
	SpinLockAcquire(&hasura_events_shmem->mutex);
	hasura_events_shmem->launcher_latch = NULL;
	hasura_events_shmem->launcher_pid = 0;
	SpinLockRelease(&hasura_events_shmem->mutex);
}

} // namespace

/* hasura_events_register_launcher: from _PG_init, at preload. */
void
hasura_events_register_launcher(void)
{
	BackgroundWorker w;
	memset(&w, 0, sizeof(w));
	snprintf(w.bgw_name, BGW_MAXLEN, "hasura_events launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "hasura_events launcher");
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "hasura_events");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "hasura_events_launcher_main");
	RegisterBackgroundWorker(&w);
}

extern "C" {

PGDLLEXPORT void
hasura_events_launcher_main(Datum main_arg)
{
	pqsignal(SIGTERM, hasura_events_handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0); /* shared catalogs only */
	pgstat_report_appname("hasura_events launcher");

	SpinLockAcquire(&hasura_events_shmem->mutex);
	hasura_events_shmem->launcher_latch = MyLatch;
	hasura_events_shmem->launcher_pid = MyProcPid;
	/* dispatchers of a previous launcher are gone with it (a crash restarts everything) */
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++)
		if (hasura_events_shmem->slots[i].pid == 0)
			hasura_events_shmem->slots[i].no_extension = false;
	SpinLockRelease(&hasura_events_shmem->mutex);
	before_shmem_exit(launcher_exit, 0);

	list_databases();

	while (!hasura_events_got_sigterm) {
		look_at_waiting_first();
		bool retry_later = manage_dispatchers(); /* frees the slots of finished looks */
		continue_look();
		retry_later |= manage_dispatchers(); /* starts the looks just asked for */
		int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (retry_later ? WL_TIMEOUT : 0),
						   retry_later ? kRestartDelayMs : -1L, PG_WAIT_EXTENSION);
		(void)rc;
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	/* exit code 1: the postmaster restarts the launcher after bgw_restart_time (0 would
	 * unregister it until the server restarts) */
	proc_exit(1);
}

} // extern "C"
