/*
 * extension/src/wake.cpp
 *
 * Shared memory of the module and the wake-at-commit path: a transaction that recorded events
 * registers (once per backend) a transaction callback; at COMMIT it sets the latch of its
 * database's dispatcher, or asks the launcher for one. A rollback wakes nobody, and a statement
 * that records a million rows still wakes the dispatcher once. The commit also lowers the slot's
 * committed_floor to the created_at of its events: the dispatcher's claims start there instead
 * of at the beginning of the claim index (see dispatcher.cpp, "claim floor").
 */
extern "C" {
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
}

#include "hasura_events.hpp"
#include "worker.hpp"

HasuraEventsShmem *hasura_events_shmem = NULL;
volatile sig_atomic_t hasura_events_got_sigterm = false;
volatile sig_atomic_t hasura_events_in_transaction = false;

/*
 * hasura_events_handle_sigterm: the SIGTERM handler of both background workers. Between
 * transactions it only asks the loop to finish (it records what sidecars reported, then exits);
 * inside one (which may wait on a row lock) it also asks to die at the next interrupt check,
 * as a backend would.
 */
void
hasura_events_handle_sigterm(SIGNAL_ARGS)
{
	int save_errno = errno;
	hasura_events_got_sigterm = true;
	if (hasura_events_in_transaction) {
		InterruptPending = true;
		ProcDiePending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool events_recorded_in_xact = false;
/* the lowest created_at of the events this transaction recorded (DT_NOBEGIN: made due again) */
static TimestampTz xact_floor = DT_NOBEGIN;
static bool xact_callback_registered = false;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(HasuraEventsShmem)));
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bool found;
	hasura_events_shmem = (HasuraEventsShmem *)ShmemInitStruct("hasura_events", sizeof(HasuraEventsShmem), &found);
	if (!found) {
		memset(hasura_events_shmem, 0, sizeof(HasuraEventsShmem));
		SpinLockInit(&hasura_events_shmem->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* hasura_events_shmem_init: installs the shared memory hooks (preload only). */
void
hasura_events_shmem_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
}

/*
 * hasura_events_find_slot: the slot of dboid, or else the first free one, taken for it (*taken
 * then says so; wanted as asked, and a wanted database no longer waits for a slot), or NULL when
 * every slot belongs to another database. Call with the mutex held.
 */
DispatcherSlot *
hasura_events_find_slot(Oid dboid, bool want, bool *taken)
{
	DispatcherSlot *free_slot = NULL;
	*taken = false;
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++) {
		DispatcherSlot *s = &hasura_events_shmem->slots[i];
		if (s->dboid == dboid)
			return s;
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (free_slot != NULL) {
		memset(free_slot, 0, sizeof(*free_slot));
		free_slot->dboid = dboid;
		free_slot->wanted = want;
		*taken = true;
		/* no longer waiting for a slot */
		int n = want ? hasura_events_shmem->nwaiting : 0;
		for (int i = 0; i < n; i++)
			if (hasura_events_shmem->waiting[i] == dboid) {
				hasura_events_shmem->waiting[i] = hasura_events_shmem->waiting[n - 1];
				hasura_events_shmem->nwaiting = n - 1;
				break;
			}
	}
	return free_slot;
}

/* add_waiting: dboid waits for a slot; false when it already did. Call with the mutex held. */
static bool
add_waiting(Oid dboid)
{
	for (int i = 0; i < hasura_events_shmem->nwaiting; i++)
		if (hasura_events_shmem->waiting[i] == dboid)
			return false;
	if (hasura_events_shmem->nwaiting < HASURA_EVENTS_MAX_DATABASES)
		hasura_events_shmem->waiting[hasura_events_shmem->nwaiting++] = dboid;
	else
		hasura_events_shmem->waiting_lost = true;
	return true;
}

/*
 * hasura_events_request_dispatcher: wakes the dispatcher of dboid, or, when none runs, marks the
 * database as wanting one and wakes the launcher. When every slot is taken, the database waits
 * for one (a WARNING the first time): the launcher looks at the waiting databases first when a
 * slot frees up.
 */
void
hasura_events_request_dispatcher(Oid dboid, TimestampTz committed_floor)
{
	if (hasura_events_shmem == NULL)
		return;
	Latch *wake = NULL;
	bool taken;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	DispatcherSlot *slot = hasura_events_find_slot(dboid, true, &taken);
	if (slot != NULL) {
		slot->requests++;
		slot->committed_floor = Min(slot->committed_floor, committed_floor);
		if (slot->latch != NULL) {
			/* a dispatcher without room to claim (no sidecar credit, paused) is not woken: it
			 * claims when room comes back anyway, and each wake would cost a signal */
			if (slot->commit_wakeups)
				wake = slot->latch;
		} else {
			slot->wanted = true;
			slot->no_extension = false;
			wake = hasura_events_shmem->launcher_latch;
		}
	}
	bool first_wait = slot == NULL && add_waiting(dboid);
	if (first_wait)
		wake = hasura_events_shmem->launcher_latch;
	SpinLockRelease(&hasura_events_shmem->mutex);
	if (first_wait)
		ereport(WARNING,
				(errmsg("hasura_events: all %d dispatcher slots are taken; database %u waits for one",
						HASURA_EVENTS_MAX_DATABASES, dboid),
				 errhint("The launcher looks at this database again when a slot frees up. At most %d databases "
						 "with the extension are served at once.",
						 HASURA_EVENTS_MAX_DATABASES)));
	if (wake != NULL)
		SetLatch(wake);
}

/*
 * hasura_events_look_at_database: the launcher's look at a database that may not have the
 * extension: a dispatcher is wanted there unless the database has a slot already. Returns the
 * slot it took, or -1 when it took none (*no_slot: because every slot is taken).
 */
int
hasura_events_look_at_database(Oid dboid, bool *no_slot)
{
	bool taken;
	SpinLockAcquire(&hasura_events_shmem->mutex);
	DispatcherSlot *slot = hasura_events_find_slot(dboid, true, &taken);
	SpinLockRelease(&hasura_events_shmem->mutex);
	*no_slot = slot == NULL;
	return taken ? (int)(slot - hasura_events_shmem->slots) : -1;
}

static void
xact_callback(XactEvent event, void *arg)
{
	switch (event) {
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_PARALLEL_COMMIT:
		if (events_recorded_in_xact) {
			events_recorded_in_xact = false;
			hasura_events_request_dispatcher(MyDatabaseId, xact_floor);
		}
		break;
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PARALLEL_ABORT:
	case XACT_EVENT_PREPARE: /* COMMIT PREPARED runs elsewhere: the retry check finds those events */
		events_recorded_in_xact = false;
		break;
	default: break;
	}
}

/* hasura_events_note_events_recorded: see the banner. */
void
hasura_events_note_events_recorded(TimestampTz created_at)
{
	if (!xact_callback_registered) {
		RegisterXactCallback(xact_callback, NULL);
		xact_callback_registered = true;
	}
	xact_floor = events_recorded_in_xact ? Min(xact_floor, created_at) : created_at;
	events_recorded_in_xact = true;
}
