/*
 * extension/src/gucs.cpp
 *
 * Every setting of the module, under the reserved prefix hasura_events. Settings marked SIGHUP
 * are re-read by the dispatchers on reload.
 */
extern "C" {
#include "postgres.h"

#include "utils/guc.h"
}

#include "worker.hpp"

char *hasura_events_socket_path = NULL;
int hasura_events_batch_size = 100;
int hasura_events_max_inflight = 1000;
int hasura_events_retry_check_interval_ms = 1000;
bool hasura_events_paused = false;
int hasura_events_stats_log_interval_s = 600;
int hasura_events_max_retry_after_attempts = 100;
char *hasura_events_allowed_peer_uids = NULL;
int hasura_events_metrics_interval_ms = 5000;
int hasura_events_sidecar_timeout_ms = 30000;
int hasura_events_outcome_grace_ms = 60000;
int hasura_events_log_attempts = LOG_ATTEMPTS_FAILURES;

static const struct config_enum_entry log_attempts_options[] = {
	{"none", LOG_ATTEMPTS_NONE, false},
	{"failures", LOG_ATTEMPTS_FAILURES, false},
	{"all", LOG_ATTEMPTS_ALL, false},
	{NULL, 0, false},
};

/* hasura_events_define_gucs: registers every setting; called from _PG_init in every backend. */
void
hasura_events_define_gucs(void)
{
	DefineCustomStringVariable(
		"hasura_events.socket_path", "Unix socket path prefix on which dispatchers listen for sidecars.",
		"The dispatcher of the database with OID D listens on <socket_path>.<D>; "
		"hasura-events-sidecar --socket takes the same value.",
		&hasura_events_socket_path, "/var/run/postgresql/hasura_events.sock", PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.batch_size", "Events claimed per fetch.", NULL, &hasura_events_batch_size,
							100, 1, 10000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.max_inflight",
							"Most events handed to sidecars and not yet reported, per database.", NULL,
							&hasura_events_max_inflight, 1000, 1, 1000000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.retry_check_interval", "How often due retries are looked for.", NULL,
							&hasura_events_retry_check_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.sidecar_timeout",
							"How long a sidecar holding events may send nothing before its connection is closed.",
							"A third of the way in the dispatcher pings it, and a live sidecar answers at once; one "
							"that stays silent (stopped, hung) is disconnected and its events go back to the queue.",
							&hasura_events_sidecar_timeout_ms, 30000, 1000, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.outcome_grace",
							"How long after its trigger's timeout_sec an event handed to a sidecar may wait for its "
							"outcome.",
							"Then the dispatcher takes it back (it is delivered again, maybe by another sidecar), "
							"sends that sidecar a Cancel, and gives that sidecar no more events until it reports an "
							"outcome. Applies to events handed out after a reload.",
							&hasura_events_outcome_grace_ms, 60000, 1000, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("hasura_events.paused", "Pauses delivery: events are still recorded, none is sent.", NULL,
							 &hasura_events_paused, false, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.stats_log_interval", "How often fetch statistics are logged.", NULL,
							&hasura_events_stats_log_interval_s, 600, 1, 7 * 24 * 3600, PGC_SIGHUP, GUC_UNIT_S, NULL,
							NULL, NULL);
	DefineCustomIntVariable("hasura_events.max_retry_after_attempts",
							"Most attempts of one event while webhooks keep answering with Retry-After.",
							"Retry-After schedules a retry even after retry_conf.num_retries is used up, as in "
							"Hasura, but only up to this many attempts in all.",
							&hasura_events_max_retry_after_attempts, 100, 1, 1000000, PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("hasura_events.allowed_peer_uids",
							   "Comma-separated OS user ids, besides the server's own, allowed to connect as sidecars.",
							   NULL, &hasura_events_allowed_peer_uids, "", PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("hasura_events.metrics_interval",
							"How often the dispatcher sends queue figures to connected sidecars (for their metrics).",
							"At least 20 times as long as computing the figures took (they walk the backlog).",
							&hasura_events_metrics_interval_ms, 5000, 100, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, NULL,
							NULL, NULL);
	DefineCustomEnumVariable("hasura_events.log_attempts",
							 "Which delivery attempts the dispatcher writes to the server log (one JSON line each).",
							 NULL, &hasura_events_log_attempts, LOG_ATTEMPTS_FAILURES, log_attempts_options, PGC_SIGHUP,
							 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("hasura_events");
}
