/*
 * extension/src/worker.hpp
 *
 * Settings, shared memory and entry points of the delivery side of the module: the launcher
 * (one per cluster) and the dispatcher (one per database that has the extension).
 * Include after postgres.h.
 */
#pragma once

#ifndef PG_VERSION_NUM
#error "include postgres.h before worker.hpp"
#endif

extern "C" {
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "storage/spin.h"
}

/* GUCs (gucs.cpp) */
extern char *hasura_events_socket_path;
extern int hasura_events_batch_size;
extern int hasura_events_max_inflight;
extern int hasura_events_retry_check_interval_ms;
extern int hasura_events_sidecar_timeout_ms;
extern int hasura_events_outcome_grace_ms;
extern bool hasura_events_paused;
extern int hasura_events_stats_log_interval_s;
extern int hasura_events_max_retry_after_attempts;
extern char *hasura_events_allowed_peer_uids;
extern int hasura_events_metrics_interval_ms;
extern int hasura_events_log_attempts;

enum { LOG_ATTEMPTS_NONE, LOG_ATTEMPTS_FAILURES, LOG_ATTEMPTS_ALL };

extern void hasura_events_define_gucs(void);

/* Shared memory (wake.cpp) */
#define HASURA_EVENTS_MAX_DATABASES 64

typedef struct DispatcherSlot {
	Oid dboid;           /* InvalidOid: slot free */
	pid_t pid;           /* 0 until the dispatcher runs */
	Latch *latch;        /* the dispatcher's latch while it runs */
	bool wanted;         /* someone asked for a dispatcher here (CREATE EXTENSION, a commit) */
	bool dropping;       /* DROP DATABASE in progress: do not start one */
	bool no_extension;   /* last dispatcher found no extension: start only when wanted */
	bool commit_wakeups; /* the running dispatcher could claim now: commits should wake it */
	bool serving;        /* a dispatcher found the extension here since the slot was taken */
	uint64 requests;     /* hasura_events_request_dispatcher calls, to spot one during start-up */
	/* the lowest created_at of fresh events committed since the dispatcher last looked (DT_NOEND:
	 * none); DT_NOBEGIN when an event came back with its old created_at (redeliver) */
	TimestampTz committed_floor;
	/* what the running dispatcher reports (hasura_events.worker_status) */
	uint32 starts; /* dispatcher starts since the slot was taken */
	TimestampTz started_at;
	int32 sidecars; /* connected and past the handshake */
	int64 inflight; /* claims not yet recorded */
	uint64 events_fetched;
	uint64 fetches;
	TimestampTz last_fetch_at;
	uint64 delivered;
	uint64 retried;
	uint64 dead;
} DispatcherSlot;

typedef struct HasuraEventsShmem {
	slock_t mutex;
	Latch *launcher_latch;
	pid_t launcher_pid;
	/* databases whose request found every slot taken, until one of them gets a slot (the
	 * launcher looks at them first when slots free up); if more wait than fit, waiting_lost */
	Oid waiting[HASURA_EVENTS_MAX_DATABASES];
	int nwaiting;
	bool waiting_lost; /* the launcher then looks at every database again */
	DispatcherSlot slots[HASURA_EVENTS_MAX_DATABASES];
} HasuraEventsShmem;

extern HasuraEventsShmem *hasura_events_shmem;

/* SIGTERM of the launcher and the dispatchers: sets the flag and the latch, nothing else. */
extern volatile sig_atomic_t hasura_events_got_sigterm;
extern volatile sig_atomic_t hasura_events_in_transaction;
extern void hasura_events_handle_sigterm(SIGNAL_ARGS);

/* Asks the launcher for a dispatcher in database dboid (and wakes the running one). */
extern void hasura_events_request_dispatcher(Oid dboid, TimestampTz committed_floor = DT_NOBEGIN);
/* The slot of dboid, or a free one taken for it (wake.cpp); call with the mutex held. */
extern DispatcherSlot *hasura_events_find_slot(Oid dboid, bool want, bool *taken);
/* The launcher's look at a database (wake.cpp): the slot taken for it, or -1. */
extern int hasura_events_look_at_database(Oid dboid, bool *no_slot);

/* launcher.cpp / dispatcher.cpp */
extern void hasura_events_register_launcher(void);
extern "C" PGDLLEXPORT void hasura_events_launcher_main(Datum arg);
extern "C" PGDLLEXPORT void hasura_events_dispatcher_main(Datum arg);
