/*
 * extension/src/status.cpp
 *
 * hasura_events._worker_status(): what each database's dispatcher publishes in shared memory
 * (see publish_status in dispatcher.cpp), one row per database slot, for the view
 * hasura_events.worker_status.
 */
extern "C" {
#include "postgres.h"

#include "access/htup_details.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
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
