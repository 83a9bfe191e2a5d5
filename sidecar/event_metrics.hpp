/*
 * sidecar/event_metrics.hpp
 *
 * The sidecar's metrics (docs/observability.md lists them): Hasura's event trigger metrics, the
 * figures of the workers' Stats frames, and the sidecar's own gauges. The event loop reports
 * what happens; this class keeps the figures and renders them. Labels are bounded: database and
 * trigger names only, never event ids or URLs. They are named as Hasura names them
 * (`trigger_name`, `source_name`; here the source is the worker's database), so that queries and
 * dashboards written for Hasura's metrics work on these.
 */
#pragma once

#include "metrics.hpp"
#include "protocol.hpp"

#include <cstdint>
#include <string>
#include <unordered_map>

namespace hasura_events::sidecar {

/*
 * final_failure: whether a failed attempt leaves the event with no retry, as Hasura decides it
 * (retryOrSetError in Hasura/Eventing/EventTrigger.hs): its tries before this one reached
 * num_retries and the response had no usable Retry-After. The tries and num_retries are read
 * from the payload's delivery_info (current_retry, max_retries), the last key the worker writes;
 * a body without it counts as final.
 */
bool final_failure(const proto::Deliver &d, int64_t retry_after_sec);

class EventMetrics {
public:
	EventMetrics();

	/* attempt_started: an attempt of the event begins now (Unix ms) */
	void attempt_started(const std::string &database, const proto::Deliver &d, int64_t now_ms);

	struct Finished {
		proto::OutcomeKind kind = proto::OutcomeKind::ClientError;
		bool http_sent = false;       /* the request reached curl (bytes and duration are meaningful) */
		double http_seconds = 0;      /* duration of the HTTP attempt */
		uint64_t request_bytes = 0;   /* body bytes posted */
		uint64_t response_bytes = 0;  /* body bytes received, before the --max-response-bytes cap */
		bool reported = true;         /* the Outcome went to the worker (its connection was still open) */
		int64_t retry_after_sec = -1; /* the Outcome's Retry-After (> 0 keeps a failed event retrying) */
	};
	/* attempt_finished: the attempt of the event has its outcome now (Unix ms) */
	void attempt_finished(const std::string &database, const proto::Deliver &d, const Finished &f, int64_t now_ms);

	/* apply_stats replaces the database's worker figures with the frame's and observes its fetches */
	void apply_stats(const proto::Stats &st);
	/* worker_disconnected forgets the database's gauges (they would go stale) */
	void worker_disconnected(const std::string &database);

	/* webhook_limit sets the concurrency limit kept for a webhook (as stored; from_env: the
	 * name of its variable, never its value); forget_webhook drops it */
	void webhook_limit(const std::string &webhook, bool from_env, uint32_t limit);
	/* webhook_circuit sets whether the webhook's circuit breaker is open (same labels) */
	void webhook_circuit(const std::string &webhook, bool from_env, bool open);
	void forget_webhook(const std::string &webhook, bool from_env);

	/* render sets the sidecar-wide gauges and returns the exposition text */
	std::string render(uint64_t http_workers, uint64_t connected_workers, uint64_t queue_length);

	MetricsRegistry &
	registry()
	{
		return registry_;
	}

private:
	/* The series an attempt moves, per database and trigger, each made on its first use (a series
	 * appears in the output only once something happened to it) and kept: these families never
	 * remove a series, so the pointers stay valid. An attempt then costs one hash lookup instead
	 * of a label vector and a map search per figure. */
	struct TriggerSeries {
		MetricFamily::Series *queue_time = nullptr, *webhook_time = nullptr, *processing_time = nullptr;
		MetricFamily::Series *request_bytes = nullptr, *response_bytes = nullptr;
		MetricFamily::Series *invocations[2] = {}, *processed[2] = {}; /* by status: success, failed */
	};
	TriggerSeries &trigger_series(const std::string &database, const std::string &trigger);
	std::unordered_map<std::string, TriggerSeries> trigger_series_;
	std::string key_; /* trigger_series' lookup key, reused */

	MetricsRegistry registry_;
	MetricFamily &fetch_time_, &fetched_per_batch_;
	MetricFamily &queue_time_, &webhook_time_, &processing_time_;
	MetricFamily &http_workers_, &invocations_, &processed_, &request_bytes_, &response_bytes_;
	MetricFamily &pending_, &oldest_age_, &retries_, &errored_, &inflight_, &restarts_;
	MetricFamily &connected_, &queue_length_, &webhook_limit_, &webhook_circuit_;
};

} // namespace hasura_events::sidecar
