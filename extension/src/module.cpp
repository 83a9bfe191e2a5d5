/*
 * extension/src/module.cpp
 *
 * Module entry: _PG_init (GUCs, shared memory, the launcher background worker) and the small
 * SQL-callable helpers of the install script: the preload check and the validators of
 * extension/core/validation.cpp, called across a guarded crossing.
 */
#include <string>

#include "validation.hpp"

extern "C" {
#include "postgres.h"

#include "commands/dbcommands.h"
#include "access/xact.h"
#include "utils/acl.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
}

#include <signal.h>
#include <sys/time.h>

#include "hasura_events.hpp"
#include "worker.hpp"

extern "C" {
PG_MODULE_MAGIC;
}

bool hasura_events_preloaded = false;

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * stop_dispatcher_for_drop: DROP DATABASE fails while anyone is connected to the database, our
 * dispatcher included. Mark the database as being dropped (so the launcher does not start a
 * new dispatcher), stop the running one, and wait for it to leave.
 */
static void
stop_dispatcher_for_drop(Oid dboid)
{
	pid_t pid = 0;
	bool taken;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	/* with no slot yet, a free one is taken, not wanted, and marked, so that the launcher's look
	 * at every database does not start a dispatcher there while the drop runs (finish_drop frees
	 * it) */
	DispatcherSlot *slot = hasura_events_find_slot(dboid, false, &taken);
	if (slot != NULL) {
		slot->dropping = true;
		pid = slot->pid;
	}
	SpinLockRelease(&hasura_events_shmem->mutex);
	if (pid == 0)
		return;
	kill(pid, SIGTERM);
	for (int waited_ms = 0; waited_ms < 10000; waited_ms += 10) {
		bool gone = true;
		SpinLockAcquire(&hasura_events_shmem->mutex);
		for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++)
			if (hasura_events_shmem->slots[i].dboid == dboid && hasura_events_shmem->slots[i].pid == pid)
				gone = false;
		SpinLockRelease(&hasura_events_shmem->mutex);
		if (gone)
			return;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10000L);
	}
}

/* finish_drop: the drop is over: free the slot, or (if it failed) let the launcher restart. */
static void
finish_drop(Oid dboid, bool dropped)
{
	Latch *launcher = NULL;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++) {
		DispatcherSlot *slot = &hasura_events_shmem->slots[i];
		if (slot->dboid == dboid && slot->dropping) {
			slot->dropping = false;
			if (!dropped && !slot->wanted && slot->pid == 0)
				slot->dboid = InvalidOid; /* the drop failed: a slot that served nothing is free again */
			if (dropped) {
				/* gone: no dispatcher is wanted there, and the slot is free once none runs */
				slot->wanted = false;
				slot->no_extension = true;
				if (slot->pid == 0)
					slot->dboid = InvalidOid;
			}
			launcher = hasura_events_shmem->launcher_latch;
		}
	}
	SpinLockRelease(&hasura_events_shmem->mutex);
	if (launcher != NULL)
		SetLatch(launcher);
}

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, ProcessUtilityContext context,
				ParamListInfo params, QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Oid dropping = InvalidOid;
	if (IsA(pstmt->utilityStmt, DropdbStmt) && hasura_events_shmem != NULL) {
		DropdbStmt *stmt = (DropdbStmt *)pstmt->utilityStmt;
		dropping = get_database_oid(stmt->dbname, true);
		/* only for a drop that may go ahead: by its owner, outside a transaction block */
		if (OidIsValid(dropping) && (!pg_database_ownercheck(dropping, GetUserId()) || IsTransactionBlock()))
			dropping = InvalidOid;
		if (OidIsValid(dropping))
			stop_dispatcher_for_drop(dropping);
	}
	if (!OidIsValid(dropping)) {
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		finish_drop(dropping, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	finish_drop(dropping, true);
}

extern "C" {

PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	hasura_events_preloaded = process_shared_preload_libraries_in_progress;
	hasura_events_define_gucs();
	if (!hasura_events_preloaded)
		return; /* CREATE EXTENSION refuses with a hint (hasura_events._assert_preloaded) */
	hasura_events_shmem_init();
	hasura_events_register_launcher();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}

PG_FUNCTION_INFO_V1(hasura_events_assert_preloaded);

/* hasura_events_assert_preloaded: called by the install script; delivery needs the worker. */
PGDLLEXPORT Datum
hasura_events_assert_preloaded(PG_FUNCTION_ARGS)
{
	if (!hasura_events_preloaded)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("hasura_events must be loaded via shared_preload_libraries"),
						errhint("Add hasura_events to shared_preload_libraries in postgresql.conf and restart the "
								"server, then run CREATE EXTENSION hasura_events again.")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(hasura_events_value_problem);

/*
 * hasura_events_value_problem(kind text, value text) returns text: null when value is a valid
 * <kind> (trigger_name, env_name, webhook, header_name, header_value), else what is wrong;
 * trigger_name_hasura gives Hasura's message for an invalid trigger name instead.
 */
PGDLLEXPORT Datum
hasura_events_value_problem(PG_FUNCTION_ARGS)
{
	char *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	text *value = PG_GETARG_TEXT_PP(1);
	std::string_view v(VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));

	/* Plain buffers cross the guard: no std object is alive when ereport or palloc can jump. */
	char problem[512] = "";
	char failure[256] = "";
	bool unknown_kind = false;
	try {
		std::string p;
		if (strcmp(kind, "trigger_name") == 0)
			p = hasura_events::trigger_name_problem(v);
		else if (strcmp(kind, "trigger_name_hasura") == 0)
			p = hasura_events::trigger_name_hasura_error(v);
		else if (strcmp(kind, "env_name") == 0)
			p = hasura_events::env_name_problem(v);
		else if (strcmp(kind, "webhook") == 0)
			p = hasura_events::webhook_problem(v);
		else if (strcmp(kind, "header_name") == 0)
			p = hasura_events::header_name_problem(v);
		else if (strcmp(kind, "header_value") == 0)
			p = hasura_events::header_value_problem(v);
		else
			unknown_kind = true;
		snprintf(problem, sizeof(problem), "%s", p.c_str());
	} catch (const std::exception &e) {
		snprintf(failure, sizeof(failure), "%s", e.what());
	} catch (...) {
		snprintf(failure, sizeof(failure), "unknown C++ exception");
	}
	if (failure[0] != '\0')
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("hasura_events validation failed: %s", failure)));
	if (unknown_kind)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("unknown value kind \"%s\"", kind)));
	if (problem[0] == '\0')
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(problem));
}

} // extern "C"

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_wake);

/* hasura_events_wake: the API records an event (invoke, redeliver): wake the dispatcher at commit. */
PGDLLEXPORT Datum
hasura_events_wake(PG_FUNCTION_ARGS)
{
	/* a redelivered event keeps its old created_at: claims look from the beginning again */
	hasura_events_note_events_recorded(DT_NOBEGIN);
	PG_RETURN_VOID();
}

} // extern "C"

extern "C" {

PG_FUNCTION_INFO_V1(hasura_events_gen_id);

/*
 * hasura_events_new_id / hasura_events.gen_id(): a new event or invocation id: a UUID version 7 as text (48-bit Unix
 * milliseconds, then a per-backend sequence, then random bits). Ids made later sort later, so the
 * primary keys of event_log and event_invocation_logs grow at their right edge (Postgres's
 * fast path for rightmost inserts) instead of touching a random leaf page per event.
 */
text *
hasura_events_new_id(void)
{
	static uint64 last_ms = 0;
	static uint32 seq = 0;

	struct timeval tv;
	gettimeofday(&tv, NULL);
	uint64 ms = (uint64)tv.tv_sec * 1000 + (uint64)(tv.tv_usec / 1000);
	if (ms <= last_ms) {
		/* same (or an earlier) millisecond: keep order with the 12-bit sequence */
		if (++seq > 0xFFF) {
			seq = 0;
			last_ms++;
		}
		ms = last_ms;
	} else {
		last_ms = ms;
		seq = (uint32)(pg_prng_uint32(&pg_global_prng_state) & 0x3FF); /* room to count up */
	}
	uint64 rnd = pg_prng_uint64(&pg_global_prng_state);

	uint8 b[16];
	for (int i = 0; i < 6; i++)
		b[i] = (uint8)(ms >> (40 - 8 * i));
	b[6] = (uint8)(0x70 | ((seq >> 8) & 0x0F)); /* version 7 */
	b[7] = (uint8)(seq & 0xFF);
	b[8] = (uint8)(0x80 | ((rnd >> 56) & 0x3F)); /* variant 10 */
	for (int i = 9; i < 16; i++)
		b[i] = (uint8)(rnd >> (8 * (15 - i)));

	static const char hex[] = "0123456789abcdef";
	char out[37];
	int p = 0;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[p++] = '-';
		out[p++] = hex[b[i] >> 4];
		out[p++] = hex[b[i] & 0x0F];
	}
	return cstring_to_text_with_len(out, 36);
}

PGDLLEXPORT Datum
hasura_events_gen_id(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(hasura_events_new_id());
}

} // extern "C"
