/*
 * extension/src/dispatcher.cpp
 *
 * The dispatcher: one background worker per database that has the extension. It listens on
 * <hasura_events.socket_path>.<database oid> for sidecars, claims due events in batches, hands
 * them out as Deliver frames within the credits the sidecars granted, and records each reported
 * outcome (event row + invocation log) in batched short transactions.
 *
 * Claims live in this process's memory (extension/core/dispatch.cpp), not in event_log.locked:
 * the happy path writes each event row once (the outcome). That is safe because a database has
 * exactly one dispatcher (the launcher starts it; the slot in shared memory says who runs), and
 * because everything a dispatcher claimed is either recorded or forgotten with the process: after
 * a crash the next dispatcher starts with no claims and finds every undelivered event due at
 * once, instead of Hasura's 30-minute lock timeout. Sidecars drop attempts of a connection that
 * closed, so an event is never in the hands of two dispatchers at the same time.
 *
 * The loop (pg_cron style): wait on the latch + sockets, handle interrupts and reload, accept and
 * read sidecars, record outcomes, claim if there is room and a reason (a commit woke us, a batch
 * came back full, a sidecar returned its claims, the retry check came due), write.
 *
 * Postgres regime. Calls into the Dispatch object cross DISPATCH_GUARD; no C++ object lives on
 * the stack of a function that can ereport.
 */
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dispatch.hpp"
#include "repeat_limiter.hpp"
#include "socket_io.hpp"

extern "C" {
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "commands/dbcommands.h"
#include "catalog/pg_database.h"
#include "utils/syscache.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include "hasura_events.hpp"
#include "worker.hpp"

using hasura_events::ClaimedEventView;
using hasura_events::Dispatch;
using hasura_events::DispatchConfig;
using hasura_events::RecordView;

/*
 * DISPATCH_GUARD: runs C++ code; an exception becomes FATAL (the launcher starts a new
 * dispatcher, which finds every unrecorded claim due again) after the catch block is left.
 */
#define DISPATCH_GUARD(step, ...)                                                                                      \
	do {                                                                                                               \
		char guard_err_[256] = "";                                                                                     \
		try {                                                                                                          \
			__VA_ARGS__;                                                                                               \
		} catch (const std::exception &e_) {                                                                           \
			snprintf(guard_err_, sizeof(guard_err_), "%s", e_.what());                                                 \
		} catch (...) {                                                                                                \
			snprintf(guard_err_, sizeof(guard_err_), "unknown C++ exception");                                         \
		}                                                                                                              \
		if (guard_err_[0] != '\0')                                                                                     \
			ereport(FATAL, (errmsg("hasura_events dispatcher: %s failed: %s", step, guard_err_)));                     \
	} while (0)

namespace {

Dispatch *dispatch = NULL;
DispatcherSlot *my_slot = NULL;
int listen_fd = -1;
uint64 requests_seen = 0; /* the slot's request count when we checked for the extension */
char socket_file[sizeof(((struct sockaddr_un *)0)->sun_path)];

SPIPlanPtr claim_plan = NULL;
SPIPlanPtr claim_after_plan = NULL;
SPIPlanPtr definitions_plan = NULL;
/* The key (in event_log_claim_idx's order) of the last event the previous claim went through. */
struct ClaimCursor {
	bool valid;
	TimestampTz due;
	TimestampTz created_at;
	char id[64];
} cursor = {};

/*
 * The claim floor (kClaimSql): DT_NOBEGIN looks at every waiting event. A claim raises it to the
 * created_at of the first fresh event it did not take (DT_NOEND when it took all there were);
 * commits lower it to the created_at of their events (DispatcherSlot.committed_floor; a
 * redelivery to DT_NOBEGIN); claims given back, every 60th retry check and a restart reset it.
 */
TimestampTz claim_floor = DT_NOBEGIN;
constexpr uint64 kFullLookEveryChecks = 60;
SPIPlanPtr outcome_plan = NULL;
SPIPlanPtr delivered_plan = NULL;
SPIPlanPtr invocation_plan = NULL;

MemoryContext loop_ctx = NULL;

constexpr int kMaxConnections = 64; /* sidecars past their Hello */
/* connections waiting for their Hello: when all are taken, the oldest makes room for a new one,
 * so connections that never say Hello cannot lock sidecars out (each is closed after
 * DispatchConfig::hello_timeout_ms anyway) */
constexpr int kMaxHandshakes = 16;
constexpr int kMaxSockets = kMaxConnections + kMaxHandshakes;
constexpr size_t kReadChunk = 256 * 1024;
constexpr size_t kMaxReadPerWake = 8 * 1024 * 1024;

/* dispatcher_config: the Dispatch settings from the GUCs. */
DispatchConfig
dispatcher_config(const char *dbname)
{
	DispatchConfig c;
	c.max_inflight = (uint32_t)hasura_events_max_inflight;
	c.max_retry_after_attempts = (uint32_t)hasura_events_max_retry_after_attempts;
	c.database = dbname;
	c.outcome_grace_ms = hasura_events_outcome_grace_ms;
	c.max_sidecars = kMaxConnections;
	return c;
}

/* extension_present: run inside a transaction. */
bool
extension_present(void)
{
	return OidIsValid(get_extension_oid("hasura_events", true));
}

/*
 * begin_tx / commit_tx: the bracket of every catalog operation (short; never across a wait).
 * begin_tx answers whether the extension is (still) installed; commit_tx puts back the memory
 * context that was current before begin_tx (CommitTransactionCommand changes it).
 */
MemoryContext tx_caller_ctx = NULL;

bool
begin_tx(const char *activity)
{
	tx_caller_ctx = CurrentMemoryContext;
	hasura_events_in_transaction = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "hasura_events dispatcher: SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	return extension_present();
}

void
commit_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	hasura_events_in_transaction = false;
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(tx_caller_ctx);
}

SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *argtypes)
{
	/* generic plans: the hot statements must not be re-planned at every batch */
	SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, argtypes, CURSOR_OPT_GENERIC_PLAN);
	if (plan == NULL)
		elog(ERROR, "hasura_events dispatcher: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/*
 * The claim query. Its cost is bounded by the batch plus the events already claimed (skipped by
 * the id filter), never by the size of event_log: it is one range scan of the partial index
 * event_log_claim_idx, which holds only undelivered events, in due order, stopping at now().
 * CLAIM_QUERY(filter) is the query with the filter that says where the range starts. The rows
 * come in index order, with no sort; the trigger definitions come from kDefinitionsSql, once per
 * trigger in the batch rather than once per event.
 */
#define CLAIM_QUERY(filter)                                                                                            \
	"SELECT e.id, e.trigger_name, e.tries, e.payload, COALESCE(e.next_retry_at, '-infinity'::timestamptz), "           \
	"       e.created_at, e.table_name, e.schema_name "                                                                \
	"  FROM hdb_catalog.event_log e "                                                                                  \
	" WHERE NOT e.delivered AND NOT e.error AND NOT e.archived "                                                       \
	"   AND COALESCE(e.next_retry_at, '-infinity'::timestamptz) <= pg_catalog.now() "                                  \
	"   AND " filter " "                 /* an event whose definition is gone must not take a place in the batch */    \
	"   AND e.trigger_name <> ALL ($6) " /* triggers a sidecar holds (its webhook's circuit breaker is open) */        \
	"   AND EXISTS (SELECT 1 FROM hasura_events.event_triggers t WHERE t.name = e.trigger_name) "                      \
	" ORDER BY COALESCE(e.next_retry_at, '-infinity'::timestamptz), e.created_at, e.id "                               \
	" LIMIT $2"

/*
 * From the claim floor ($3), stepping over the events in flight ($1). The floor is a created_at
 * below which no fresh event (next_retry_at null) is waiting that is not in flight: the index
 * entries of delivered events stay in the claim index until vacuum, and a claim from the very
 * beginning would walk all of them. Events due for a retry sort after every fresh one.
 */
const char *const kClaimSql =
	CLAIM_QUERY("e.id <> ALL ($1) AND (COALESCE(e.next_retry_at, '-infinity'::timestamptz), e.created_at) >= "
				"('-infinity'::timestamptz, $3)");
/* After the last event the previous claim went through ($3, $4, $5): the events in flight are
 * behind it (a few may not be, after a claim from the start; hand_out skips those). $1 unused.
 * Both: $6 the triggers held (Dispatch::held_trigger_ptrs). */
const char *const kClaimAfterSql = CLAIM_QUERY(
	"(COALESCE(e.next_retry_at, '-infinity'::timestamptz), e.created_at, e.id) > ($3, $4, $5 COLLATE \"C\")");

/*
 * The definitions of the triggers named in $1, read in the claim's snapshot (both statements are
 * read-only, so they run in the snapshot claim_in_tx pushed): every trigger the claim's EXISTS saw
 * is here.
 */
const char *const kDefinitionsSql =
	"SELECT t.name, t.webhook, t.webhook_from_env, t.headers::text, "
	"       ARRAY(SELECT h ->> 'name' FROM pg_catalog.jsonb_array_elements(t.headers) h), "
	"       ARRAY(SELECT COALESCE(h ->> 'value', h ->> 'value_from_env') "
	"             FROM pg_catalog.jsonb_array_elements(t.headers) h), "
	"       ARRAY(SELECT h ? 'value_from_env' FROM pg_catalog.jsonb_array_elements(t.headers) h), "
	"       t.timeout_sec, t.num_retries, t.interval_sec "
	"  FROM hasura_events.event_triggers t "
	" WHERE t.name = ANY ($1)";

/*
 * The outcome update of the events that were not delivered: a retry scheduled, or dead. An outcome
 * update is never HOT (the claim index's predicate reads delivered and error), so it adds an entry
 * to every index whose predicate the new version meets. `trigger_name = e.trigger_name` changes
 * nothing but marks the trigger-name index's key as updated: Postgres then does not take the new
 * entry for a duplicate of an old version and spares that index the b-tree bottom-up deletion
 * passes, which never find anything to delete there (the entry is the event's first in that
 * index).
 */
const char *const kOutcomeSql =
	"UPDATE hdb_catalog.event_log e "
	"   SET delivered = false, error = v.dead, tries = e.tries + 1, locked = NULL, "
	"       trigger_name = e.trigger_name, "
	"       next_retry_at = CASE WHEN v.delay >= 0 THEN pg_catalog.now() + pg_catalog.make_interval(secs => v.delay) "
	"END "
	"  FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::bool[]), pg_catalog.unnest($3::float8[]), "
	"                  pg_catalog.unnest($4::int4[])) "
	"       AS v(id, dead, delay, tries_before) "
	/* the decision was made from the tries the claim saw: if they changed since (a
	 * pg_redeliver_event reset the event while this attempt ran), the reset stands and the event
	 * is delivered again, instead of being marked dead or scheduled from the old count */
	" WHERE e.id = v.id AND e.tries = v.tries_before";

/*
 * The outcome update of the delivered events of a batch, nearly all of them in a drain: the same
 * new values for every row, so no join with the outcomes: one scan of the primary key with the
 * ids as its array key (cheaper than kOutcomeSql's join with the unnested outcomes).
 * Retries and dead events go through kOutcomeSql, in the same transaction.
 */
const char *const kDeliveredSql = "UPDATE hdb_catalog.event_log e "
								  "   SET delivered = true, error = false, tries = e.tries + 1, locked = NULL, "
								  "       trigger_name = e.trigger_name, next_retry_at = NULL "
								  " WHERE e.id = ANY ($1)";

const char *const kInvocationSql =
	"INSERT INTO hdb_catalog.event_invocation_logs (event_id, trigger_name, status, request, response) "
	"SELECT v.event_id, v.trigger_name, v.status, v.request, v.response "
	"  FROM ROWS FROM (pg_catalog.unnest($1::text[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::int4[]), "
	"                 pg_catalog.unnest($4::json[]), pg_catalog.unnest($5::json[])) "
	"       AS v(event_id, trigger_name, status, request, response)";

Datum
text_array(const char *const *values, int n)
{
	Datum *d = (Datum *)palloc(sizeof(Datum) * Max(n, 1));
	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* text_array_elems: the elements of a text[] as C strings (NULL elements become ""). */
int
text_array_elems(Datum arr, char ***out)
{
	Datum *elems;
	bool *nulls;
	int n;
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	*out = (char **)palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*out)[i] = nulls[i] ? pstrdup("") : TextDatumGetCString(elems[i]);
	return n;
}

/*
 * webhook_body: Hasura's webhook payload, written from the claimed row's columns: the bytes of
 * jsonb_build_object(...)::text (keys in jsonb's order, its spacing), as to_json renders each
 * value; the stored event is not parsed again.
 */
void
webhook_body(StringInfo out, const char *id, const char *table_name, const char *schema_name, Jsonb *payload,
			 const char *trigger_name, TimestampTz created_at, int max_retries, int current_retry)
{
	char created[MAXDATELEN + 1];
	JsonEncodeDateTime(created, TimestampTzGetDatum(created_at), TIMESTAMPTZOID, NULL);
	appendStringInfoString(out, "{\"id\": ");
	escape_json(out, id);
	appendStringInfoString(out, ", \"event\": ");
	JsonbToCString(out, &payload->root, (int)VARSIZE(payload));
	appendStringInfoString(out, ", \"table\": {\"name\": ");
	escape_json(out, table_name);
	appendStringInfoString(out, ", \"schema\": ");
	escape_json(out, schema_name);
	appendStringInfoString(out, "}, \"trigger\": {\"name\": ");
	escape_json(out, trigger_name);
	appendStringInfo(out, "}, \"created_at\": \"%s\", \"delivery_info\": {\"max_retries\": %d, \"current_retry\": %d}}",
					 created, max_retries, current_retry);
}

/* The claim query's columns (CLAIM_QUERY's select list), 0-based as heap_deform_tuple fills them. */
enum ClaimColumn {
	kClaimId,
	kClaimTriggerName,
	kClaimTries,
	kClaimPayload,
	kClaimDue,
	kClaimCreatedAt,
	kClaimTableName,
	kClaimSchemaName,
	kClaimColumns
};

/* kDefinitionsSql's columns. */
enum DefinitionColumn {
	kDefName,
	kDefWebhook,
	kDefWebhookFromEnv,
	kDefHeadersJson,
	kDefHeaderNames,
	kDefHeaderValues,
	kDefHeaderEnv,
	kDefTimeoutSec,
	kDefNumRetries,
	kDefIntervalSec,
	kDefColumns
};

/* One trigger's definition as the claimed events of a batch share it (palloc'd in the claim). */
struct ClaimDefinition {
	const char *name;
	const char *webhook;
	bool webhook_from_env;
	const char *headers_json;
	int nheaders;
	const char *const *header_names;
	const char *const *header_values;
	const bool *header_from_env;
	uint32_t timeout_sec;
	uint32_t num_retries;
	uint32_t interval_sec;
};

/* claim_text: a text column of a deformed row as a C string, or NULL. */
char *
claim_text(const Datum *col, const bool *null, int c)
{
	return null[c] ? NULL : TextDatumGetCString(col[c]);
}

/* unix_ms: a timestamptz as Unix epoch milliseconds. */
int64_t
unix_ms(TimestampTz t)
{
	return (t + (TimestampTz)(POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY) / 1000;
}

/*
 * load_definitions: the definitions of the `n` distinct triggers in names, read by
 * kDefinitionsSql into defs (palloc'd). Returns how many were found.
 */
int
load_definitions(const char *const *names, int n, ClaimDefinition **defs)
{
	if (definitions_plan == NULL) {
		Oid types[1] = {TEXTARRAYOID};
		definitions_plan = keep_plan(kDefinitionsSql, 1, types);
	}
	Datum args[1] = {text_array(names, n)};
	int rc = SPI_execute_plan(definitions_plan, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "hasura_events dispatcher: reading the trigger definitions failed: %s", SPI_result_code_string(rc));
	int found = (int)SPI_processed;
	TupleDesc desc = SPI_tuptable->tupdesc;
	if (desc->natts != kDefColumns)
		elog(ERROR, "hasura_events dispatcher: the definitions query returned %d columns, not %d", desc->natts,
			 kDefColumns);
	ClaimDefinition *out = (ClaimDefinition *)palloc0(sizeof(ClaimDefinition) * Max(found, 1));
	Datum col[kDefColumns];
	bool null[kDefColumns];
	for (int i = 0; i < found; i++) {
		heap_deform_tuple(SPI_tuptable->vals[i], desc, col, null);
		ClaimDefinition *d = &out[i];
		d->name = claim_text(col, null, kDefName);
		char *webhook = claim_text(col, null, kDefWebhook);
		char *webhook_env = claim_text(col, null, kDefWebhookFromEnv);
		d->webhook_from_env = webhook == NULL;
		d->webhook = webhook != NULL ? webhook : (webhook_env != NULL ? webhook_env : "");
		d->headers_json = claim_text(col, null, kDefHeadersJson);
		char **hnames, **hvalues;
		d->nheaders = text_array_elems(col[kDefHeaderNames], &hnames);
		text_array_elems(col[kDefHeaderValues], &hvalues);
		d->header_names = hnames;
		d->header_values = hvalues;
		Datum *elems;
		bool *enulls;
		int ne;
		deconstruct_array(DatumGetArrayTypeP(col[kDefHeaderEnv]), BOOLOID, 1, true, TYPALIGN_CHAR, &elems, &enulls,
						  &ne);
		bool *from_env = (bool *)palloc0(sizeof(bool) * Max(ne, 1));
		for (int k = 0; k < ne; k++)
			from_env[k] = !enulls[k] && DatumGetBool(elems[k]);
		d->header_from_env = from_env;
		d->timeout_sec = (uint32_t)DatumGetInt32(col[kDefTimeoutSec]);
		d->num_retries = (uint32_t)DatumGetInt32(col[kDefNumRetries]);
		d->interval_sec = (uint32_t)DatumGetInt32(col[kDefIntervalSec]);
	}
	*defs = out;
	return found;
}

/* find_definition: the definition named name among n, or NULL. */
const ClaimDefinition *
find_definition(const ClaimDefinition *defs, int n, const char *name)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(defs[i].name, name) == 0)
			return &defs[i];
	}
	return NULL;
}

/*
 * claim_in_tx: claims up to `want` due events and hands them to the sidecars, inside the loop's
 * transaction (after this turn's outcomes are written, when there were any). Returns how many
 * were claimed.
 */
int
claim_in_tx(int want, bool after_cursor, bool full_scan)
{
	after_cursor = after_cursor && cursor.valid;
	/* what commits announced, read before the claim's snapshot is taken: an event announced
	 * before this point is visible to the claim; one announced after it lowers the next floor */
	TimestampTz committed = DT_NOEND;
	if (!after_cursor) {
		SpinLockAcquire(&hasura_events_shmem->mutex);
		committed = my_slot->committed_floor;
		my_slot->committed_floor = DT_NOEND;
		SpinLockRelease(&hasura_events_shmem->mutex);
	}
	/* the claim's snapshot, taken now: it sees what was committed before the floor was read, and
	 * this transaction's own outcome updates (an event just recorded is not in flight any more,
	 * and must not look due to the claim) */
	CommandCounterIncrement();
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "hasura_events: claiming events");
	if (claim_plan == NULL) {
		Oid types[6] = {TEXTARRAYOID, INT4OID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, TEXTARRAYOID};
		claim_plan = keep_plan(kClaimSql, 6, types);
		claim_after_plan = keep_plan(kClaimAfterSql, 6, types);
	}
	Datum args[6];
	/* $4 and $5 are not used by kClaimSql: any value of their type */
	args[3] = TimestampTzGetDatum(DT_NOBEGIN);
	args[4] = CStringGetTextDatum("");
	{
		const std::vector<const char *> *held = NULL;
		DISPATCH_GUARD("listing holds", held = &dispatch->held_trigger_ptrs());
		args[5] = text_array(held->data(), (int)held->size());
	}
	if (after_cursor) {
		args[0] = text_array(NULL, 0);
		args[2] = TimestampTzGetDatum(cursor.due);
		args[3] = TimestampTzGetDatum(cursor.created_at);
		args[4] = CStringGetTextDatum(cursor.id);
	} else {
		const std::vector<const char *> *ids = NULL;
		DISPATCH_GUARD("listing claims", ids = &dispatch->claimed_id_ptrs());
		args[0] = text_array(ids->data(), (int)ids->size());
		claim_floor = full_scan ? DT_NOBEGIN : Min(claim_floor, committed);
		args[2] = TimestampTzGetDatum(claim_floor);
	}
	args[1] = Int32GetDatum(want);
	TimestampTz started = GetCurrentTimestamp();
	int rc = SPI_execute_plan(after_cursor ? claim_after_plan : claim_plan, args, NULL, true, want);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "hasura_events dispatcher: claim query failed: %s", SPI_result_code_string(rc));

	int n = (int)SPI_processed;
	SPITupleTable *rows = SPI_tuptable; /* kept: the definitions query makes a new SPI_tuptable */
	TupleDesc desc = rows->tupdesc;
	if (desc->natts != kClaimColumns)
		elog(ERROR, "hasura_events dispatcher: the claim query returned %d columns, not %d", desc->natts,
			 kClaimColumns);
	/* one deform a row: column by column, every column after the first varlena one would be
	 * found by walking the row from its start again */
	Datum *cols = (Datum *)palloc(sizeof(Datum) * kClaimColumns * Max(n, 1));
	bool *nulls = (bool *)palloc(sizeof(bool) * kClaimColumns * Max(n, 1));
	ClaimedEventView *views = (ClaimedEventView *)palloc0(sizeof(ClaimedEventView) * Max(n, 1));
	const char **trigger_names = (const char **)palloc(sizeof(char *) * Max(n, 1));
	int ntriggers = 0;
	for (int i = 0; i < n; i++) {
		Datum *col = &cols[i * kClaimColumns];
		bool *null = &nulls[i * kClaimColumns];
		heap_deform_tuple(rows->vals[i], desc, col, null);
		views[i].id = claim_text(col, null, kClaimId);
		views[i].trigger_name = claim_text(col, null, kClaimTriggerName);
		/* the batch's triggers: one or a few, so a list is enough */
		bool seen = false;
		for (int k = 0; k < ntriggers && !seen; k++)
			seen = strcmp(trigger_names[k], views[i].trigger_name) == 0;
		if (!seen)
			trigger_names[ntriggers++] = views[i].trigger_name;
	}
	ClaimDefinition *defs = NULL;
	int ndefs = n > 0 ? load_definitions(trigger_names, ntriggers, &defs) : 0;
	double seconds = (double)(GetCurrentTimestamp() - started) / USECS_PER_SEC; /* both queries */

	for (int i = 0; i < n; i++) {
		const Datum *col = &cols[i * kClaimColumns];
		const bool *null = &nulls[i * kClaimColumns];
		ClaimedEventView *v = &views[i];
		const ClaimDefinition *d = find_definition(defs, ndefs, v->trigger_name);
		if (d == NULL) /* the claim's EXISTS saw it, in the same snapshot */
			elog(ERROR, "hasura_events dispatcher: no definition for trigger \"%s\" of claimed event %s",
				 v->trigger_name, v->id);
		v->webhook = d->webhook;
		v->webhook_from_env = d->webhook_from_env;
		v->headers_json = d->headers_json;
		v->nheaders = d->nheaders;
		v->header_names = d->header_names;
		v->header_values = d->header_values;
		v->header_from_env = d->header_from_env;
		v->timeout_sec = d->timeout_sec;
		v->num_retries = d->num_retries;
		v->interval_sec = d->interval_sec;
		v->tries = (uint32_t)DatumGetInt32(col[kClaimTries]);
		TimestampTz created_at = DatumGetTimestampTz(col[kClaimCreatedAt]);
		StringInfoData body;
		initStringInfo(&body);
		webhook_body(&body, v->id, claim_text(col, null, kClaimTableName), claim_text(col, null, kClaimSchemaName),
					 DatumGetJsonbP(col[kClaimPayload]), v->trigger_name, created_at, (int)v->num_retries,
					 (int)v->tries);
		v->body = body.data;
		v->body_len = (size_t)body.len;
		v->created_at_ms = unix_ms(created_at);
	}
	size_t through = 0;
	DISPATCH_GUARD("handing out events", through = dispatch->hand_out(views, (size_t)n);
				   dispatch->note_fetch((size_t)n, seconds));
	/* the next claim may go on after the last event this one went through */
	cursor.valid = through > 0;
	if (through > 0) {
		const Datum *last = &cols[(through - 1) * kClaimColumns];
		cursor.due = DatumGetTimestampTz(last[kClaimDue]);
		cursor.created_at = DatumGetTimestampTz(last[kClaimCreatedAt]);
		strlcpy(cursor.id, views[through - 1].id, sizeof(cursor.id));
		if (strlen(views[through - 1].id) >= sizeof(cursor.id))
			cursor.valid = false; /* not an id of ours: start from the beginning next time */
	}

	/* every fresh event before the first one not gone through is in flight now (the rows come
	 * in index order); a claim that was not full saw every waiting event */
	if (through < (size_t)n || n == want) {
		const Datum *next = &cols[(through < (size_t)n ? through : (size_t)n - 1) * kClaimColumns];
		bool fresh = DatumGetTimestampTz(next[kClaimDue]) == DT_NOBEGIN;
		claim_floor = fresh ? DatumGetTimestampTz(next[kClaimCreatedAt]) : DT_NOEND;
	} else
		claim_floor = DT_NOEND;

	SpinLockAcquire(&hasura_events_shmem->mutex);
	my_slot->last_fetch_at = GetCurrentTimestamp();
	SpinLockRelease(&hasura_events_shmem->mutex);
	return (int)through; /* fewer than want when the credits ran out: not a full batch */
}

/*
 * The attempt-failure lines of the server log are rate-limited: per interval, the first failure
 * of each kind (trigger, outcome kind, status, result (retry or dead), error) is written, the
 * others are counted, and one line says how many were left out (log_suppressed_attempts). A
 * webhook that keeps failing the same way costs a few lines per interval instead of one each.
 */
constexpr int64_t kAttemptLogIntervalMs = 10000;
hasura_events::RepeatLimiter *attempt_log_limiter = NULL;
std::string *attempt_log_summary = NULL; /* pop_summary's line; not on a stack that can ereport */
int64 monotonic_ms(void);

/* attempt_log_admits: false when this failure's line is only counted (see above). Not inlined:
 * inlined into write_outcomes, its guard makes gcc see the record's fields as maybe unset. */
pg_noinline bool
attempt_log_admits(const RecordView *r)
{
	StringInfoData key;
	initStringInfo(&key);
	appendStringInfoString(&key, "\"trigger\": ");
	escape_json(&key, r->trigger_name);
	appendStringInfo(&key, ", \"kind\": \"%s\", \"status\": %d, \"result\": \"%s\"", r->outcome, r->http_status,
					 r->dead ? "dead" : "retry");
	if (r->error[0] != '\0') {
		appendStringInfoString(&key, ", \"error\": ");
		escape_json(&key, r->error);
	}
	bool admit = true;
	int64 now_ms = monotonic_ms();
	DISPATCH_GUARD("rate-limiting the attempt log",
				   admit = attempt_log_limiter->admit(std::string(key.data, (size_t)key.len), now_ms));
	pfree(key.data);
	return admit;
}

/* log_suppressed_attempts: the summary line of every interval that is over and left lines out. */
void
log_suppressed_attempts(int64 now_ms)
{
	for (;;) {
		bool got = false;
		DISPATCH_GUARD("summarizing the attempt log",
					   got = attempt_log_limiter->pop_summary(now_ms, *attempt_log_summary));
		if (!got)
			return;
		ereport(LOG, (errmsg("hasura_events: %s", attempt_log_summary->c_str()), errhidestmt(true)));
	}
}

/*
 * log_attempt: one JSON line per attempt in the server log (hasura_events.log_attempts), with
 * the fields of the sidecar's attempt log. Header values and URLs are never part of it. Failures
 * are rate-limited (attempt_log_admits).
 */
void
log_attempt(const RecordView *r)
{
	if (hasura_events_log_attempts == LOG_ATTEMPTS_NONE ||
		(hasura_events_log_attempts == LOG_ATTEMPTS_FAILURES && r->delivered))
		return;
	if (!r->delivered && !attempt_log_admits(r))
		return;
	StringInfoData buf;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"msg\": \"attempt\", \"event_id\": ");
	escape_json(&buf, r->event_id);
	appendStringInfoString(&buf, ", \"trigger\": ");
	escape_json(&buf, r->trigger_name);
	appendStringInfo(&buf, ", \"kind\": \"%s\", \"status\": %d, \"duration_ms\": %u, \"attempt\": %u, ", r->outcome,
					 r->http_status, r->duration_ms, r->attempt);
	appendStringInfo(&buf, "\"result\": \"%s\"", r->delivered ? "delivered" : (r->dead ? "dead" : "retry"));
	if (r->retry_delay_sec >= 0)
		appendStringInfo(&buf, ", \"retry_in_sec\": " INT64_FORMAT, (int64)r->retry_delay_sec);
	if (r->error[0] != '\0') {
		appendStringInfoString(&buf, ", \"error\": ");
		escape_json(&buf, r->error);
	}
	appendStringInfoChar(&buf, '}');
	ereport(LOG, (errmsg("hasura_events: %s", buf.data), errhidestmt(true)));
	pfree(buf.data);
}

/* The columns of hdb_catalog.event_invocation_logs, in table order. */
const CatalogColumn kInvocationColumns[] = {
	{"id", TEXTOID},      {"trigger_name", TEXTOID}, {"event_id", TEXTOID},          {"status", INT4OID},
	{"request", JSONOID}, {"response", JSONOID},     {"created_at", TIMESTAMPTZOID},
};

/*
 * insert_invocations_direct: the invocation logs of a batch through the executor's simple-insert
 * path (direct_insert.cpp), with the install script's defaults (id, created_at) computed here.
 * False, with nothing written, when the table is not as the install script made it: the caller
 * then runs the SQL.
 */
bool
insert_invocations_direct(size_t n, const Datum *event_ids, const Datum *triggers, const Datum *status,
						  const bool *status_null, const Datum *request, const Datum *response)
{
	Oid relid = get_relname_relid("event_invocation_logs", get_namespace_oid("hdb_catalog", false));
	if (!OidIsValid(relid))
		return false;
	Relation rel = table_open(relid, RowExclusiveLock);
	if (!relation_has_layout(rel, kInvocationColumns, lengthof(kInvocationColumns))) {
		table_close(rel, RowExclusiveLock);
		return false;
	}
	DirectInsert di;
	direct_insert_begin(&di, rel);
	Datum created_at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()); /* now() */
	for (size_t i = 0; i < n; i++) {
		TupleTableSlot *slot = direct_insert_slot(&di);
		Datum *v = slot->tts_values;
		bool *isnull = slot->tts_isnull;
		memset(isnull, 0, sizeof(bool) * lengthof(kInvocationColumns));
		v[0] = PointerGetDatum(hasura_events_new_id());
		v[1] = triggers[i];
		v[2] = event_ids[i];
		v[3] = status[i];
		isnull[3] = status_null[i];
		v[4] = request[i];
		v[5] = response[i];
		v[6] = created_at;
		direct_insert_row(&di);
	}
	direct_insert_end(&di);
	table_close(rel, NoLock);
	return true;
}

/*
 * write_outcomes: writes every reported attempt (n of them), inside the loop's transaction: an
 * UPDATE of event_log for the delivered events and one for the others, and the invocation logs of
 * the whole batch. All or nothing, with the claim that may follow in the same transaction.
 */
void
write_outcomes(size_t n)
{
	if (outcome_plan == NULL) {
		Oid t1[4] = {TEXTARRAYOID, BOOLARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID};
		outcome_plan = keep_plan(kOutcomeSql, 4, t1);
		Oid t3[1] = {TEXTARRAYOID};
		delivered_plan = keep_plan(kDeliveredSql, 1, t3);
		Oid t2[5] = {TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, JSONARRAYOID, JSONARRAYOID};
		invocation_plan = keep_plan(kInvocationSql, 5, t2);
	}
	Datum *ids = (Datum *)palloc(sizeof(Datum) * n);
	Datum *triggers = (Datum *)palloc(sizeof(Datum) * n);
	bool *delivered = (bool *)palloc(sizeof(bool) * n);
	Datum *dead = (Datum *)palloc(sizeof(Datum) * n);
	Datum *delay = (Datum *)palloc(sizeof(Datum) * n);
	Datum *tries_before = (Datum *)palloc(sizeof(Datum) * n);
	/* split below: the delivered events' ids (kDeliveredSql), the others' (kOutcomeSql) */
	Datum *delivered_ids = (Datum *)palloc(sizeof(Datum) * n);
	Datum *other_ids = (Datum *)palloc(sizeof(Datum) * n);
	int ndelivered = 0;
	int nother = 0;
	Datum *status = (Datum *)palloc(sizeof(Datum) * n);
	bool *status_null = (bool *)palloc(sizeof(bool) * n);
	Datum *request = (Datum *)palloc(sizeof(Datum) * n);
	Datum *response = (Datum *)palloc(sizeof(Datum) * n);
	for (size_t i = 0; i < n; i++) {
		RecordView r = {};
		DISPATCH_GUARD("reading an outcome", r = dispatch->record(i));
		ids[i] = CStringGetTextDatum(r.event_id);
		triggers[i] = CStringGetTextDatum(r.trigger_name);
		delivered[i] = r.delivered;
		dead[i] = BoolGetDatum(r.dead);
		delay[i] = Float8GetDatum((double)r.retry_delay_sec);
		tries_before[i] = Int32GetDatum((int32)(r.attempt - 1));
		status[i] = Int32GetDatum(r.http_status);
		status_null[i] = r.http_status <= 0;
		request[i] = CStringGetTextDatum(r.request_json);
		response[i] = CStringGetTextDatum(r.response_json);
		log_attempt(&r);
	}
	for (size_t i = 0; i < n; i++) {
		if (delivered[i])
			delivered_ids[ndelivered++] = ids[i];
		else { /* compacted in place: nother <= i */
			other_ids[nother] = ids[i];
			dead[nother] = dead[i];
			delay[nother] = delay[i];
			tries_before[nother] = tries_before[i];
			nother++;
		}
	}
	int dims[1] = {(int)n};
	int lbs[1] = {1};
	int rc;
	if (ndelivered > 0) {
		Datum a[1] = {PointerGetDatum(construct_array(delivered_ids, ndelivered, TEXTOID, -1, false, TYPALIGN_INT))};
		rc = SPI_execute_plan(delivered_plan, a, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "hasura_events dispatcher: recording outcomes failed: %s", SPI_result_code_string(rc));
	}
	if (nother > 0) {
		Datum a1[4] = {
			PointerGetDatum(construct_array(other_ids, nother, TEXTOID, -1, false, TYPALIGN_INT)),
			PointerGetDatum(construct_array(dead, nother, BOOLOID, 1, true, TYPALIGN_CHAR)),
			PointerGetDatum(construct_array(delay, nother, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE)),
			PointerGetDatum(construct_array(tries_before, nother, INT4OID, 4, true, TYPALIGN_INT)),
		};
		rc = SPI_execute_plan(outcome_plan, a1, NULL, false, 0);
		if (rc != SPI_OK_UPDATE)
			elog(ERROR, "hasura_events dispatcher: recording outcomes failed: %s", SPI_result_code_string(rc));
	}
	if (!insert_invocations_direct(n, ids, triggers, status, status_null, request, response)) {
		Datum a2[5] = {
			PointerGetDatum(construct_array(ids, (int)n, TEXTOID, -1, false, TYPALIGN_INT)),
			PointerGetDatum(construct_array(triggers, (int)n, TEXTOID, -1, false, TYPALIGN_INT)),
			PointerGetDatum(construct_md_array(status, status_null, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT)),
			/* json datums as built (json is stored as text): the request wraps the payload the claim
			 * query rendered and the stored headers, the response is written by response_json with
			 * full escaping (unit-tested), so parsing them again would only cost time */
			PointerGetDatum(construct_array(request, (int)n, JSONOID, -1, false, TYPALIGN_INT)),
			PointerGetDatum(construct_array(response, (int)n, JSONOID, -1, false, TYPALIGN_INT)),
		};
		rc = SPI_execute_plan(invocation_plan, a2, NULL, false, 0);
		if (rc != SPI_OK_INSERT)
			elog(ERROR, "hasura_events dispatcher: writing invocation logs failed: %s", SPI_result_code_string(rc));
	}
}

/*
 * record_and_claim: one transaction for this turn's work: the reported outcomes (if any), then a
 * claim of up to `want` events (if want > 0; 0 claims nothing). One begin and one commit a turn
 * instead of two. The recorded events leave the Dispatch before the claim, which must neither
 * skip them as in flight nor count them against max_inflight; should the transaction fail, the
 * process exits and its claims are forgotten anyway. Returns the number of events claimed, or -1
 * when the extension is gone.
 */
int
record_and_claim(int *want, bool after_cursor, bool full_scan)
{
	size_t n = 0;
	DISPATCH_GUARD("counting outcomes", n = dispatch->record_count());
	size_t room = 0;
	if (n == 0) { /* no transaction at all when there is nothing to claim either */
		if (*want > 0)
			DISPATCH_GUARD("computing room", room = dispatch->claimable());
		if (room == 0) {
			*want = 0;
			return 0;
		}
	}
	int claimed = 0;
	bool gone = !begin_tx(n > 0 ? "hasura_events: recording outcomes" : "hasura_events: claiming events");
	if (!gone && n > 0)
		write_outcomes(n);
	/* written (or the extension is gone): these claims end here */
	DISPATCH_GUARD("clearing outcomes", dispatch->clear_records());
	if (!gone && *want > 0) {
		DISPATCH_GUARD("computing room", room = dispatch->claimable());
		*want = (int)Min((size_t)*want, room);
		if (*want > 0)
			claimed = claim_in_tx(*want, after_cursor, full_scan);
	}
	commit_tx();
	return gone ? -1 : claimed;
}

/* record_outcomes: the outcomes alone, at shutdown. False when the extension is gone. */
bool
record_outcomes(void)
{
	int none = 0;
	return record_and_claim(&none, false, false) >= 0;
}

/*
 * send_stats: the queue figures of every trigger (hasura_events._queue_stats, which reads only
 * undelivered and dead events) to the connected sidecars, for their metrics.
 */
void
send_stats(void)
{
	if (begin_tx("hasura_events: queue statistics")) {
		int rc = SPI_execute("SELECT name, pending, oldest_pending_age_sec, retries_scheduled, errored "
							 "FROM hasura_events._queue_stats()",
							 true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "hasura_events dispatcher: queue statistics failed: %s", SPI_result_code_string(rc));
		int n = (int)SPI_processed;
		hasura_events::TriggerStatsView *views =
			(hasura_events::TriggerStatsView *)palloc0(sizeof(hasura_events::TriggerStatsView) * Max(n, 1));
		TupleDesc desc = SPI_tuptable->tupdesc;
		for (int i = 0; i < n; i++) {
			HeapTuple tup = SPI_tuptable->vals[i];
			bool isnull;
			views[i].name = SPI_getvalue(tup, desc, 1);
			views[i].pending = (uint64_t)DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
			views[i].oldest_pending_age_sec = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &isnull));
			views[i].retries_scheduled = (uint64_t)DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
			views[i].errored = (uint64_t)DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		}
		uint64_t restarts = my_slot->starts > 0 ? my_slot->starts - 1 : 0;
		DISPATCH_GUARD("sending statistics", dispatch->broadcast_stats(restarts, views, (size_t)n));
	}
	commit_tx();
}

/* publish_status: what hasura_events.worker_status() shows for this database. */
void
publish_status(void)
{
	size_t ready = 0, inflight = 0;
	hasura_events::DispatchStats st;
	DISPATCH_GUARD("reading status", {
		ready = dispatch->ready_connections();
		inflight = dispatch->inflight();
		st = dispatch->stats();
	});
	SpinLockAcquire(&hasura_events_shmem->mutex);
	my_slot->sidecars = (int32)ready;
	my_slot->inflight = (int64)inflight;
	my_slot->events_fetched = st.events_fetched;
	my_slot->fetches = st.fetches;
	my_slot->delivered = st.delivered;
	my_slot->retried = st.retried;
	my_slot->dead = st.dead;
	SpinLockRelease(&hasura_events_shmem->mutex);
}

/* open_listen_socket: <socket_path>.<dboid>, owner-only. */
void
open_listen_socket(Oid dboid)
{
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	int len = snprintf(socket_file, sizeof(socket_file), "%s.%u", hasura_events_socket_path, dboid);
	if (len < 0 || (size_t)len >= sizeof(addr.sun_path))
		ereport(FATAL,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hasura_events.socket_path \"%s\" is too long for a Unix socket", hasura_events_socket_path),
				 errhint("Unix socket paths are limited to %zu bytes, including the \".<database oid>\" suffix.",
						 sizeof(addr.sun_path) - 1)));
	strcpy(addr.sun_path, socket_file);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		ereport(FATAL, (errcode_for_socket_access(), errmsg("hasura_events: could not create socket: %m")));
	unlink(socket_file); /* a previous incarnation's; we are the only dispatcher of this database */
	mode_t old_umask = umask(0077);
	int rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (rc < 0)
		ereport(FATAL,
				(errcode_for_socket_access(), errmsg("hasura_events: could not bind socket \"%s\": %m", socket_file),
				 errhint("Check that the directory of hasura_events.socket_path exists and is writable by the "
						 "server's user.")));
	chmod(socket_file, 0600);
	if (listen(fd, 64) < 0)
		ereport(FATAL,
				(errcode_for_socket_access(), errmsg("hasura_events: could not listen on \"%s\": %m", socket_file)));
	listen_fd = fd;
	ereport(LOG, (errmsg("hasura_events dispatcher listening on \"%s\"", socket_file)));
}

/* peer_allowed: the server's own OS user, or one listed in hasura_events.allowed_peer_uids. */
bool
peer_allowed(int fd, uid_t *uid_out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid_out = cred.uid;
	if (cred.uid == geteuid())
		return true;
	char *list = pstrdup(hasura_events_allowed_peer_uids);
	for (char *tok = strtok(list, ", "); tok != NULL; tok = strtok(NULL, ", ")) {
		char *end = NULL;
		errno = 0;
		unsigned long uid = strtoul(tok, &end, 10);
		if (errno == 0 && end != tok && *end == '\0' && uid == cred.uid)
			return true;
	}
	return false;
}

/*
 * What the next claim should be. A claim goes on after the previous one only when that one was
 * full and nothing happened in between: a commit, a retry coming due, claims given back (a
 * sidecar gone) may all have put events ahead of it.
 */
struct ClaimPlan {
	bool want = true;       /* claim at all; events may be waiting from before we started */
	bool from_start = true; /* from the claim floor, not after the previous claim */
	bool full_scan = true;  /* from the very beginning of the claim index, not from the floor */

	/* something may have put events ahead of the previous claim */
	void
	look_again()
	{
		want = from_start = true;
	}
	/* ... or behind the claim floor (events given back) */
	void
	look_everywhere()
	{
		want = from_start = full_scan = true;
	}
};

/*
 * The loop's wait set: the latch, postmaster death, the listening socket and every sidecar. Built
 * again only when the connections change (an fd number may be reused by the next connection, and
 * epoll forgets a closed one), a connection's interest in writability changed in place: not an
 * epoll instance and a system call per socket at every turn.
 */
struct WaitSetState {
	WaitEventSet *set;
	bool stale;
	int nconn;
	int fds[kMaxSockets];
	bool out[kMaxSockets];
} waits = {NULL, true, 0, {}, {}};

WaitEventSet *
wait_set(const int *fds, const bool *out, int nconn)
{
	if (waits.set != NULL && !waits.stale && nconn == waits.nconn && memcmp(fds, waits.fds, sizeof(int) * nconn) == 0) {
		for (int i = 0; i < nconn; i++)
			if (out[i] != waits.out[i]) {
				ModifyWaitEvent(waits.set, 3 + i, WL_SOCKET_READABLE | (out[i] ? WL_SOCKET_WRITEABLE : 0), NULL);
				waits.out[i] = out[i];
			}
		return waits.set;
	}
	if (waits.set != NULL)
		FreeWaitEventSet(waits.set);
	waits.set = CreateWaitEventSet(TopMemoryContext, 3 + kMaxSockets);
	AddWaitEventToSet(waits.set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(waits.set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(waits.set, WL_SOCKET_READABLE, listen_fd, NULL, (void *)(intptr_t)-1);
	for (int i = 0; i < nconn; i++) /* positions 3 + i */
		AddWaitEventToSet(waits.set, WL_SOCKET_READABLE | (out[i] ? WL_SOCKET_WRITEABLE : 0), fds[i], NULL,
						  (void *)(intptr_t)fds[i]);
	waits.stale = false;
	waits.nconn = nconn;
	memcpy(waits.fds, fds, sizeof(int) * nconn);
	memcpy(waits.out, out, sizeof(bool) * nconn);
	return waits.set;
}

/* lose_connection: closes a sidecar's connection; the events it had are due again, anywhere in
 * the claim index. */
void
lose_connection(int fd, const char *why, ClaimPlan &plan)
{
	size_t returned = 0;
	DISPATCH_GUARD("closing a connection", returned = dispatch->remove_connection(fd));
	close(fd);
	waits.stale = true;
	ereport(LOG, (errmsg("hasura_events: sidecar connection closed: %s; %zu undelivered events returned to the queue",
						 why, returned)));
	plan.look_everywhere();
}

/*
 * note_releases: claims a sidecar gave back (Release) and holds that ended put events due again
 * behind the claim cursor and floor (a held trigger's events stay there while held): the next
 * claim looks everywhere, as after a lost connection.
 */
void
note_releases(ClaimPlan &plan)
{
	bool again = false;
	DISPATCH_GUARD("checking releases and holds", {
		again = dispatch->take_released();
		again = dispatch->expire_holds() || again;
	});
	if (again)
		plan.look_everywhere();
}

/*
 * check_deadlines: the Dispatch's deadlines (Dispatch::check_deadlines). Claims it took back are
 * due again anywhere in the claim index, as those of a closed connection.
 */
void
check_deadlines(ClaimPlan &plan)
{
	size_t overdue = 0;
	DISPATCH_GUARD("checking deadlines", overdue = dispatch->check_deadlines());
	if (overdue == 0)
		return;
	plan.look_everywhere();
	ereport(LOG, (errmsg("hasura_events: %zu events returned to the queue: no outcome within their trigger's "
						 "timeout_sec plus hasura_events.outcome_grace (%d ms); their sidecars were sent a Cancel",
						 overdue, hasura_events_outcome_grace_ms)));
}

void
accept_connections(ClaimPlan &plan)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				ereport(LOG, (errmsg("hasura_events: accept failed: %m")));
			return;
		}
		uid_t uid = (uid_t)-1;
		size_t nconn = 0, ready = 0, handshaking = 0;
		int oldest = -1;
		DISPATCH_GUARD("counting connections", {
			nconn = dispatch->connection_count();
			ready = dispatch->ready_connections();
			handshaking = dispatch->handshaking_count();
			oldest = dispatch->oldest_handshake();
		});
		if (!peer_allowed(fd, &uid)) {
			ereport(LOG, (errmsg("hasura_events: refused a sidecar running as OS user %d", (int)uid),
						  errhint("Run the sidecar as the server's OS user, or list its uid in "
								  "hasura_events.allowed_peer_uids.")));
			/* a Reject frame, best effort */
			char frame[128];
			size_t flen = 0;
			DISPATCH_GUARD("encoding a Reject", {
				std::string out;
				hasura_events::proto::encode(hasura_events::proto::Reject{"peer OS user is not allowed"}, out);
				flen = std::min(out.size(), sizeof(frame));
				memcpy(frame, out.data(), flen);
			});
			(void)!send(fd, frame, flen, MSG_NOSIGNAL);
			close(fd);
			continue;
		}
		if (ready >= (size_t)kMaxConnections) {
			ereport(LOG, (errmsg("hasura_events: refused a sidecar: %d connections already", kMaxConnections)));
			close(fd);
			continue;
		}
		if ((handshaking >= (size_t)kMaxHandshakes || nconn >= (size_t)kMaxSockets) && oldest >= 0) {
			char why[128];
			snprintf(why, sizeof(why), "closed to make room: %d connections were waiting for their Hello",
					 (int)handshaking);
			lose_connection(oldest, why, plan);
		}
		DISPATCH_GUARD("adding a connection", dispatch->add_connection(fd));
		waits.stale = true;
		ereport(LOG, (errmsg("hasura_events: sidecar connected (OS user %d)", (int)uid)));
	}
}

/* read_connection: false when the peer closed or failed. */
bool
read_connection(int fd, char *buf)
{
	size_t total = 0;
	while (total < kMaxReadPerWake) {
		ssize_t n = recv(fd, buf, kReadChunk, 0);
		if (n > 0) {
			DISPATCH_GUARD("reading frames", dispatch->on_bytes(fd, buf, (size_t)n));
			total += (size_t)n;
			continue;
		}
		if (n == 0)
			return false;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK;
	}
	return true;
}

/* write_connection: writes what is buffered; false on a broken connection. */
bool
write_connection(int fd)
{
	bool ok = true;
	DISPATCH_GUARD("writing frames", {
		std::string &out = dispatch->outbuf(fd);
		size_t done = 0;
		ok = hasura_events::send_buffered(fd, out, done) != hasura_events::SendResult::Failed;
		out.erase(0, done);
	});
	return ok;
}

/* monotonic_ms: what sidecars' silence is measured with; unlike GetCurrentTimestamp, a clock
 * set back or forward does not make every sidecar look silent. */
int64
monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* list_connections: the sidecar sockets, and whether each has output waiting. */
int
list_connections(int fds[kMaxSockets], bool has_output[kMaxSockets])
{
	int n = 0;
	DISPATCH_GUARD("listing connections", {
		std::vector<int> ids = dispatch->connection_ids();
		n = (int)std::min(ids.size(), (size_t)kMaxSockets);
		for (int i = 0; i < n; i++) {
			fds[i] = ids[i];
			has_output[i] = !dispatch->outbuf(ids[i]).empty();
		}
	});
	return n;
}

void
log_stats(void)
{
	char line[1024];
	DISPATCH_GUARD("formatting statistics", snprintf(line, sizeof(line), "%s", dispatch->stats_json().c_str()));
	ereport(LOG, (errmsg("hasura_events: %s", line)));
}

void
dispatcher_exit(int code, Datum arg)
{
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(socket_file);
		listen_fd = -1;
	}
	if (my_slot != NULL) {
		SpinLockAcquire(&hasura_events_shmem->mutex);
		my_slot->pid = 0;
		my_slot->latch = NULL;
		Latch *launcher = hasura_events_shmem->launcher_latch;
		SpinLockRelease(&hasura_events_shmem->mutex);
		/* a launcher that did not start us (it restarted since) gets no exit notice otherwise */
		if (launcher != NULL)
			SetLatch(launcher);
	}
}

/* leave_for_good: the extension is not (or no longer) here; no dispatcher until asked again. */
void
leave_for_good(void)
{
	SpinLockAcquire(&hasura_events_shmem->mutex);
	/* a request that came in since we looked (say, CREATE EXTENSION committing while we
	 * started) keeps the database wanted: the launcher starts a dispatcher again to look */
	if (my_slot->requests == requests_seen) {
		my_slot->wanted = false;
		my_slot->no_extension = true;
	}
	SpinLockRelease(&hasura_events_shmem->mutex);
	ereport(LOG, (errmsg("hasura_events dispatcher: the extension is not installed in this database; exiting")));
	proc_exit(0);
}

} // namespace

extern "C" {

/*
 * hasura_events_dispatcher_main: entry point of a dispatcher; the argument is its database's OID.
 */
PGDLLEXPORT void
hasura_events_dispatcher_main(Datum main_arg)
{
	Oid dboid = DatumGetObjectId(main_arg);

	pqsignal(SIGTERM, hasura_events_handle_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();
	/* a reload signalled between our fork and the handler above was ignored: read the settings
	 * once now (a dispatcher started by a commit right before "SELECT pg_reload_conf()" kept an
	 * old hasura_events.paused otherwise) */
	ProcessConfigFile(PGC_SIGHUP);

	/* find our slot (the launcher filled it) and publish our pid and latch, before connecting:
	 * DROP DATABASE looks here for the process to stop */
	SpinLockAcquire(&hasura_events_shmem->mutex);
	for (int i = 0; i < HASURA_EVENTS_MAX_DATABASES; i++)
		if (hasura_events_shmem->slots[i].dboid == dboid)
			my_slot = &hasura_events_shmem->slots[i];
	if (my_slot != NULL && my_slot->pid != 0 && my_slot->pid != MyProcPid)
		my_slot = NULL; /* another dispatcher runs: never two per database */
	if (my_slot != NULL && my_slot->dropping)
		my_slot = NULL; /* the database is being dropped */
	if (my_slot != NULL) {
		my_slot->pid = MyProcPid;
		my_slot->latch = MyLatch;
		my_slot->starts++;
		requests_seen = my_slot->requests;
		my_slot->commit_wakeups = false;
		my_slot->committed_floor = DT_NOEND; /* the first claim looks at everything */
		my_slot->started_at = GetCurrentTimestamp();
		my_slot->sidecars = 0;
		my_slot->inflight = 0;
		my_slot->events_fetched = my_slot->fetches = 0;
		my_slot->delivered = my_slot->retried = my_slot->dead = 0;
		my_slot->last_fetch_at = 0;
	}
	SpinLockRelease(&hasura_events_shmem->mutex);
	if (my_slot == NULL) {
		ereport(LOG,
				(errmsg("hasura_events dispatcher: database %u already has a dispatcher or is being dropped", dboid)));
		proc_exit(0);
	}
	before_shmem_exit(dispatcher_exit, 0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("hasura_events dispatcher");

	StartTransactionCommand();
	/* payload timestamps are rendered in UTC whatever the server's TimeZone */
	SetConfigOption("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION);
	/* An outcome lost with the last few commits of a crash only means the event is delivered
	 * again (at least once); the dispatcher need not wait for WAL flushes. */
	SetConfigOption("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION);
	/* The kept plans are made once, often while event_log is tiny and has no statistics, and kept
	 * until something invalidates them: made then, the outcome updates read the whole table (a
	 * sequential scan, or a hash join over one), for every batch, for as long as nothing
	 * analyzes the log (autovacuum off or behind). Every statement of ours has an index to
	 * follow; a sequential scan of event_log is never the right plan for one. */
	SetConfigOption("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION);
	bool present = extension_present();
	bool serves = true;
	{
		HeapTuple tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(dboid));
		if (HeapTupleIsValid(tup)) {
			Form_pg_database db = (Form_pg_database)GETSTRUCT(tup);
			/* a dispatcher connected to a template would make CREATE DATABASE fail */
			serves = !db->datistemplate && db->datallowconn;
			ReleaseSysCache(tup);
		}
	}
	char *dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(dboid));
	CommitTransactionCommand();
	if (!present || !serves)
		leave_for_good();
	SpinLockAcquire(&hasura_events_shmem->mutex);
	my_slot->serving = true; /* if the launcher was looking at this database, that look is over */
	Latch *launcher = hasura_events_shmem->launcher_latch;
	SpinLockRelease(&hasura_events_shmem->mutex);
	if (launcher != NULL)
		SetLatch(launcher); /* it may go on with the next database */

	open_listen_socket(dboid);
	DISPATCH_GUARD("creating the dispatcher state", {
		dispatch = new Dispatch(dispatcher_config(dbname));
		attempt_log_limiter = new hasura_events::RepeatLimiter("attempt failures suppressed", kAttemptLogIntervalMs);
		attempt_log_summary = new std::string();
	});

	loop_ctx = AllocSetContextCreate(TopMemoryContext, "hasura_events dispatcher loop", ALLOCSET_DEFAULT_SIZES);
	char *readbuf = (char *)MemoryContextAlloc(TopMemoryContext, kReadChunk);

	ClaimPlan plan;
	uint64 retry_checks = 0;
	bool commit_wakeups = false;
	TimestampTz next_retry_check = GetCurrentTimestamp();
	TimestampTz next_stats =
		TimestampTzPlusMilliseconds(GetCurrentTimestamp(), hasura_events_stats_log_interval_s * 1000L);
	TimestampTz next_metrics = GetCurrentTimestamp();
	int64 next_silence_check_ms = monotonic_ms();
	int64 next_summary_ms = monotonic_ms();

	while (!hasura_events_got_sigterm) {
		MemoryContextSwitchTo(loop_ctx);
		MemoryContextReset(loop_ctx);

		/* wait: latch, postmaster death, the listening socket, every sidecar */
		int conn_fds[kMaxSockets];
		bool conn_out[kMaxSockets];
		int nconn = list_connections(conn_fds, conn_out);

		size_t room = 0;
		DISPATCH_GUARD("computing room", room = dispatch->claimable());
		/* commits wake us only while a claim could hand something out; when that becomes true,
		 * claim once more, for events committed while the wakeups were off */
		bool wakeups = room > 0 && !hasura_events_paused;
		if (wakeups != commit_wakeups) {
			SpinLockAcquire(&hasura_events_shmem->mutex);
			my_slot->commit_wakeups = wakeups;
			SpinLockRelease(&hasura_events_shmem->mutex);
			commit_wakeups = wakeups;
			if (wakeups)
				plan.look_again();
		}
		long timeout_ms;
		TimestampTz now = GetCurrentTimestamp();
		size_t inflight = 0;
		DISPATCH_GUARD("counting claims", inflight = dispatch->inflight());
		if (plan.want && room > 0 && !hasura_events_paused)
			timeout_ms = 0;
		else {
			TimestampTz next = Min(Min(next_retry_check, next_stats), next_metrics);
			timeout_ms = Max(0L, (long)((next - now) / 1000));
			if (inflight > 0) /* sidecars hold events: their silence is checked every second */
				timeout_ms = Min(timeout_ms, Max(0L, (long)(next_silence_check_ms - monotonic_ms())));
			/* the earliest outcome, Hello or frame deadline (no polling for them) */
			int64 deadline = INT64_MAX;
			DISPATCH_GUARD("reading deadlines", deadline = dispatch->next_deadline_ms());
			if (deadline != INT64_MAX)
				timeout_ms = Min(timeout_ms, (long)Max((int64)0, deadline - monotonic_ms()));
			int64 hold_end = -1;
			DISPATCH_GUARD("reading holds", hold_end = dispatch->next_hold_end_ms());
			if (hold_end >= 0) /* a held trigger's events are due again when its hold ends */
				timeout_ms = Min(timeout_ms, Max(0L, (long)(hold_end - monotonic_ms())));
		}

		WaitEventSet *set = wait_set(conn_fds, conn_out, nconn);
		WaitEvent events[3 + kMaxSockets];
		int nev = WaitEventSetWait(set, timeout_ms, events, 3 + nconn, PG_WAIT_EXTENSION);

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			DISPATCH_GUARD("applying settings", dispatch->set_config(dispatcher_config(dbname)));
		}
		if (hasura_events_got_sigterm)
			break;
		int64 mono_now = monotonic_ms();
		DISPATCH_GUARD("setting the clock", dispatch->set_now(mono_now));

		bool accept_now = false;
		int closed[kMaxSockets];
		int nclosed = 0;
		for (int i = 0; i < nev; i++) {
			WaitEvent *ev = &events[i];
			if (ev->events & WL_LATCH_SET) {
				ResetLatch(MyLatch);
				plan.look_again(); /* a commit recorded events, or someone asked */
				continue;
			}
			intptr_t fd = (intptr_t)ev->user_data;
			if (fd == -1) {
				accept_now = true;
				continue;
			}
			bool ok = true;
			if (ev->events & WL_SOCKET_READABLE)
				ok = read_connection((int)fd, readbuf);
			if (ok && (ev->events & WL_SOCKET_WRITEABLE))
				ok = write_connection((int)fd);
			if (!ok)
				closed[nclosed++] = (int)fd;
		}
		for (int i = 0; i < nclosed; i++)
			lose_connection(closed[i], "the sidecar disconnected", plan);
		/* claims whose outcome is overdue go back to the queue; connections late with their Hello
		 * or in the middle of a frame for too long are failed, and closed below */
		check_deadlines(plan);
		/* sidecars that hold events and went silent (stopped, hung) are failed here, and closed
		 * below: their events go back to the queue */
		if (mono_now >= next_silence_check_ms) {
			DISPATCH_GUARD("checking silent sidecars", dispatch->check_silence(hasura_events_sidecar_timeout_ms));
			next_silence_check_ms = mono_now + 1000;
		}
		/* protocol errors: the Dispatch asks for the close, with a reason */
		for (int i = 0; i < nconn; i++) {
			char why[512] = "";
			bool must_close = false;
			bool already = false;
			for (int k = 0; k < nclosed; k++)
				already |= closed[k] == conn_fds[i];
			if (already)
				continue;
			DISPATCH_GUARD("checking a connection", {
				std::string reason;
				must_close = dispatch->wants_close(conn_fds[i], reason);
				snprintf(why, sizeof(why), "%s", reason.c_str());
			});
			if (must_close) {
				write_connection(conn_fds[i]); /* a Reject, if any */
				lose_connection(conn_fds[i], why, plan);
			}
		}
		if (accept_now)
			accept_connections(plan);
		note_releases(plan);

		now = GetCurrentTimestamp();
		if (now >= next_retry_check) {
			plan.look_again();
			/* every 60th check looks from the very beginning: it finds what no commit announced
			 * (a committed prepared transaction, a row changed by hand). Rarely: until vacuum has
			 * been, it walks the claim index entries of every event delivered since, and the
			 * claims waiting behind it wait that long */
			if (++retry_checks % kFullLookEveryChecks == 0)
				plan.full_scan = true;
			next_retry_check = TimestampTzPlusMilliseconds(now, hasura_events_retry_check_interval_ms);
		}

		/* the outcomes reported, then a claim if one is due and the sidecars have credit: one
		 * transaction */
		int want = plan.want && !hasura_events_paused ? hasura_events_batch_size : 0;
		int got = record_and_claim(&want, !plan.from_start, plan.full_scan);
		if (got < 0)
			leave_for_good();
		if (want > 0) { /* a claim ran */
			if (plan.from_start)
				plan.full_scan = false;
			plan.want = got == want; /* a full batch: there may be more */
			plan.from_start = !plan.want;
		}

		if (now >= next_metrics) {
			size_t ready = 0;
			DISPATCH_GUARD("counting sidecars", ready = dispatch->ready_connections());
			long took_ms = 0;
			if (ready > 0) {
				TimestampTz started = GetCurrentTimestamp();
				send_stats();
				took_ms = (long)((GetCurrentTimestamp() - started) / 1000);
			}
			/* the figures walk the whole backlog, and claims
			 * wait meanwhile: with a big backlog they are sent less often, so that they never take
			 * more than ~5 % of the dispatcher's time */
			next_metrics = TimestampTzPlusMilliseconds(now, Max((long)hasura_events_metrics_interval_ms, 20 * took_ms));
		}
		publish_status();

		/* write what the claims and handshakes produced without waiting for writability */
		nconn = list_connections(conn_fds, conn_out);
		for (int i = 0; i < nconn; i++)
			if (conn_out[i] && !write_connection(conn_fds[i]))
				lose_connection(conn_fds[i], "writing to the sidecar failed", plan);

		if (mono_now >= next_summary_ms) {
			log_suppressed_attempts(mono_now);
			next_summary_ms = mono_now + 1000;
		}
		if (now >= next_stats) {
			log_stats();
			next_stats = TimestampTzPlusMilliseconds(now, hasura_events_stats_log_interval_s * 1000L);
		}
	}

	/* shutdown: record what was reported; unreported claims are simply due again at restart */
	record_outcomes();
	log_suppressed_attempts(INT64_MAX);
	log_stats();
	proc_exit(0);
}

} // extern "C"
