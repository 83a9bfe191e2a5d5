/*
 * sidecar/event_metrics.cpp
 *
 * Definitions of the sidecar's metrics and how each event, attempt and Stats frame moves them.
 * Times from created_at use the wall clock (the worker's created_at is wall-clock time); an
 * event without created_at (0, from an older worker) is left out of those two histograms.
 */
#include "event_metrics.hpp"

#include <cstring>

namespace hasura_events::sidecar {

namespace {

using Type = MetricFamily::Type;

const char *
status_label(proto::OutcomeKind kind)
{
	return kind == proto::OutcomeKind::Delivered ? "success" : "failed";
}

double
seconds_since(int64_t created_at_ms, int64_t now_ms)
{
	if (created_at_ms >= now_ms)
		return 0.0; /* clocks of two hosts may disagree a little */
	/* created_at_ms is any i64 from the wire: the difference fits in a u64, not in an i64 */
	return double(uint64_t(now_ms) - uint64_t(created_at_ms)) / 1000.0;
}

/* made: the series of `family` for (database, trigger[, status]), found on first use and kept in
 * `slot` (the labels are only built then) */
MetricFamily::Series &
made(MetricFamily::Series *&slot, MetricFamily &family, const std::string &database, const std::string &trigger,
	 const char *status = nullptr)
{
	if (slot == nullptr)
		slot =
			family.series(status != nullptr ? LabelValues{database, trigger, status} : LabelValues{database, trigger});
	return *slot;
}

/* the integer after the first "key": at or after `from` in body, or -1 */
long long
int_after(const std::string &body, size_t from, const char *key)
{
	size_t k = body.find(key, from);
	if (k == std::string::npos)
		return -1;
	size_t i = k + strlen(key);
	while (i < body.size() && (body[i] == ' ' || body[i] == ':'))
		i++;
	long long v = 0;
	size_t start = i;
	for (; i < body.size() && body[i] >= '0' && body[i] <= '9' && v < (1LL << 40); i++)
		v = v * 10 + (body[i] - '0');
	return i > start ? v : -1;
}

} // namespace

bool
final_failure(const proto::Deliver &d, int64_t retry_after_sec)
{
	if (retry_after_sec > 0)
		return false;
	size_t info = d.body.rfind("\"delivery_info\"");
	if (info == std::string::npos)
		return true;
	long long max_retries = int_after(d.body, info, "\"max_retries\"");
	long long current = int_after(d.body, info, "\"current_retry\"");
	if (max_retries < 0 || current < 0)
		return true;
	return current >= max_retries;
}

EventMetrics::EventMetrics()
	: fetch_time_(registry_.add("hasura_event_fetch_time_per_batch_seconds",
								"Time the worker took to claim one batch of events from the event log.",
								Type::Histogram, {"source_name"}, kLatencyBuckets)),
	  fetched_per_batch_(registry_.add("hasura_events_fetched_per_batch",
									   "Number of events in the last batch the worker claimed.", Type::Gauge,
									   {"source_name"})),
	  queue_time_(registry_.add("hasura_event_queue_time_seconds",
								"Time from an event's creation to the start of its delivery attempt.", Type::Histogram,
								{"source_name", "trigger_name"}, kAgeBuckets)),
	  webhook_time_(registry_.add("hasura_event_webhook_processing_time_seconds",
								  "Duration of one HTTP attempt to the webhook.", Type::Histogram,
								  {"source_name", "trigger_name"}, kLatencyBuckets)),
	  processing_time_(registry_.add("hasura_event_processing_time_seconds",
									 "Time from an event's creation to the outcome of its delivery attempt.",
									 Type::Histogram, {"source_name", "trigger_name"}, kAgeBuckets)),
	  http_workers_(registry_.add("hasura_event_trigger_http_workers",
								  "Delivery attempts in flight (HTTP workers busy).", Type::Gauge)),
	  invocations_(registry_.add("hasura_event_invocations_total",
								 "Delivery attempts that ended, by result: success (2xx) or failed.", Type::Counter,
								 {"source_name", "trigger_name", "status"})),
	  processed_(registry_.add("hasura_event_processed_total",
							   "Events processed, as Hasura counts them: success when delivered, failed when a "
							   "failed attempt leaves no retry.",
							   Type::Counter, {"source_name", "trigger_name", "status"})),
	  request_bytes_(registry_.add("hasura_event_trigger_request_bytes_total", "Payload bytes sent to webhooks.",
								   Type::Counter, {"source_name", "trigger_name"})),
	  response_bytes_(registry_.add("hasura_event_trigger_response_bytes_total",
									"Response body bytes received from webhooks.", Type::Counter,
									{"source_name", "trigger_name"})),
	  pending_(registry_.add("hasura_events_pending_events",
							 "Undelivered events that are not errored, as last reported by the worker.", Type::Gauge,
							 {"source_name", "trigger_name"})),
	  oldest_age_(registry_.add("hasura_events_oldest_pending_age_seconds",
								"Age of the oldest pending event, as last reported by the worker.", Type::Gauge,
								{"source_name", "trigger_name"})),
	  retries_(registry_.add("hasura_events_retries_scheduled",
							 "Pending events waiting for a retry, as last reported by the worker.", Type::Gauge,
							 {"source_name", "trigger_name"})),
	  errored_(registry_.add("hasura_events_error_events",
							 "Events whose retries are exhausted (error = true), as last reported by the worker.",
							 Type::Gauge, {"source_name", "trigger_name"})),
	  inflight_(registry_.add("hasura_events_inflight",
							  "Events the worker has claimed and not yet recorded an outcome for.", Type::Gauge,
							  {"source_name"})),
	  restarts_(registry_.add("hasura_events_worker_restarts_total",
							  "Times the database's dispatcher worker was restarted since the server started.",
							  Type::Counter, {"source_name"})),
	  connected_(registry_.add("hasura_events_connected_workers",
							   "Workers (databases) this sidecar has completed the handshake with.", Type::Gauge)),
	  queue_length_(registry_.add(
		  "hasura_events_sidecar_queue_length",
		  "Deliveries received from the workers and waiting for a free HTTP worker (or their webhook's limit).",
		  Type::Gauge)),
	  webhook_limit_(registry_.add("hasura_events_webhook_concurrency_limit",
								   "Attempts a webhook may have in flight: its adaptive limit, as last settled.",
								   Type::Gauge, {"webhook", "from_env"})),
	  webhook_circuit_(registry_.add("hasura_events_webhook_circuit_open",
									 "1 while the webhook's circuit breaker holds its deliveries back after failures "
									 "to connect (a probe attempt pending or not), else 0.",
									 Type::Gauge, {"webhook", "from_env"}))
{
}

void
EventMetrics::webhook_limit(const std::string &webhook, bool from_env, uint32_t limit)
{
	webhook_limit_.set({webhook, from_env ? "true" : "false"}, double(limit));
}

void
EventMetrics::webhook_circuit(const std::string &webhook, bool from_env, bool open)
{
	webhook_circuit_.set({webhook, from_env ? "true" : "false"}, open ? 1.0 : 0.0);
}

void
EventMetrics::forget_webhook(const std::string &webhook, bool from_env)
{
	webhook_limit_.remove({webhook, from_env ? "true" : "false"});
	webhook_circuit_.remove({webhook, from_env ? "true" : "false"});
}

EventMetrics::TriggerSeries &
EventMetrics::trigger_series(const std::string &database, const std::string &trigger)
{
	key_.assign(database);
	key_.push_back('\0'); /* names cannot hold a NUL: the key is unambiguous */
	key_.append(trigger);
	auto it = trigger_series_.find(key_);
	if (it == trigger_series_.end())
		it = trigger_series_.emplace(key_, TriggerSeries()).first;
	return it->second;
}

void
EventMetrics::attempt_started(const std::string &database, const proto::Deliver &d, int64_t now_ms)
{
	if (d.created_at_ms == 0)
		return;
	TriggerSeries &t = trigger_series(database, d.trigger_name);
	queue_time_.observe_in(made(t.queue_time, queue_time_, database, d.trigger_name),
						   seconds_since(d.created_at_ms, now_ms));
}

void
EventMetrics::attempt_finished(const std::string &database, const proto::Deliver &d, const Finished &f, int64_t now_ms)
{
	const std::string &trigger = d.trigger_name;
	TriggerSeries &t = trigger_series(database, trigger);
	int k = f.kind == proto::OutcomeKind::Delivered ? 0 : 1;
	const char *status = status_label(f.kind);
	made(t.invocations[k], invocations_, database, trigger, status).value += 1;
	/* as Hasura: an event is processed once, when delivered or when its last try failed; a failed
	 * attempt that will be retried is an invocation only */
	if (f.reported && (k == 0 || final_failure(d, f.retry_after_sec)))
		made(t.processed[k], processed_, database, trigger, status).value += 1;
	if (f.http_sent) {
		webhook_time_.observe_in(made(t.webhook_time, webhook_time_, database, trigger), f.http_seconds);
		made(t.request_bytes, request_bytes_, database, trigger).value += double(f.request_bytes);
		made(t.response_bytes, response_bytes_, database, trigger).value += double(f.response_bytes);
	}
	if (d.created_at_ms != 0)
		processing_time_.observe_in(made(t.processing_time, processing_time_, database, trigger),
									seconds_since(d.created_at_ms, now_ms));
}

/*
 * EventMetrics::apply_stats: the per-trigger gauges are replaced as a whole, so a trigger that
 * was dropped (or has nothing left to report) disappears from the output.
 */
void
EventMetrics::apply_stats(const proto::Stats &st)
{
	const std::string &db = st.database;
	for (MetricFamily *f : {&pending_, &oldest_age_, &retries_, &errored_})
		f->remove_where(0, db);
	for (const proto::TriggerStats &t : st.triggers) {
		pending_.set({db, t.name}, double(t.pending));
		oldest_age_.set({db, t.name}, t.oldest_pending_age_sec);
		retries_.set({db, t.name}, double(t.retries_scheduled));
		errored_.set({db, t.name}, double(t.errored));
	}
	inflight_.set({db}, double(st.inflight));
	restarts_.set({db}, double(st.worker_restarts));
	for (const proto::FetchSample &f : st.fetches)
		fetch_time_.observe({db}, f.seconds);
	if (!st.fetches.empty())
		fetched_per_batch_.set({db}, double(st.fetches.back().events));
}

void
EventMetrics::worker_disconnected(const std::string &database)
{
	for (MetricFamily *f : {&pending_, &oldest_age_, &retries_, &errored_, &inflight_, &fetched_per_batch_})
		f->remove_where(0, database);
}

std::string
EventMetrics::render(uint64_t http_workers, uint64_t connected_workers, uint64_t queue_length)
{
	http_workers_.set({}, double(http_workers));
	connected_.set({}, double(connected_workers));
	queue_length_.set({}, double(queue_length));
	return registry_.render();
}

} // namespace hasura_events::sidecar
