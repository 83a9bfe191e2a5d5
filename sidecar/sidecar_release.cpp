/*
 * sidecar/sidecar_release.cpp
 *
 * The parts of the event loop that give deliveries back to the worker unattempted (a Release
 * frame: the worker forgets the claim, the event keeps its tries and gets no invocation log),
 * the per-webhook circuit breakers that decide it (breaker.hpp), and the summary lines of
 * repeated failure lines (log_limit.hpp).
 *
 * Deliveries go back when the sidecar shuts down (every one not yet started: a rolling restart
 * must not cost an event a try) and while a webhook's breaker is open (with a hold for their
 * triggers, so the worker does not send them again before the cool-down ends).
 */
#include "sidecar.hpp"

#include "json_log.hpp"

#include <algorithm>

namespace hasura_events::sidecar {

/*
 * Sidecar::release gives one delivery back on its connection, with a hold of hold_ms for its
 * trigger (0: none). The Deliver used a credit: the connection earns it back, as for an Outcome,
 * unless it said Goodbye. A delivery of a connection that is gone needs nothing: the worker took
 * it back when the connection closed.
 */
void
Sidecar::release(uint64_t conn_id, const proto::Deliver &d, uint32_t hold_ms)
{
	auto it = conns_.find(conn_id);
	if (it == conns_.end())
		return;
	Connection &c = *it->second;
	c.release_ids.push_back(d.event_id);
	if (hold_ms > 0) {
		uint32_t &h = c.release_holds[d.trigger_name];
		h = std::max(h, hold_ms);
	}
	if (!c.goodbye_sent)
		c.pending_credits++;
	LogLine(LogLevel::Debug, "delivery released")
		.str("event_id", d.event_id)
		.str("trigger", d.trigger_name)
		.num("hold_ms", hold_ms)
		.emit();
}

/* Sidecar::release_queue gives back every delivery waiting in r's queue. */
void
Sidecar::release_queue(Route &r, uint32_t hold_ms)
{
	for (Queued &q : r.queue)
		release(q.conn_id, q.deliver, hold_ms);
	queued_ -= r.queue.size();
	r.queue.clear();
	update_ready(r);
}

/* Sidecar::flush_releases sends what release() gathered, one Release frame per connection. */
void
Sidecar::flush_releases()
{
	for (auto &entry : conns_) {
		Connection &c = *entry.second;
		if (c.release_ids.empty() && c.release_holds.empty())
			continue;
		proto::Release rel;
		rel.event_ids = std::move(c.release_ids);
		for (const auto &h : c.release_holds)
			rel.holds.push_back(proto::Hold{h.first, h.second});
		c.release_ids.clear();
		c.release_holds.clear();
		send(c, rel);
	}
}

/*
 * Sidecar::breaker_result tells r's breaker how an attempt ended. When it opens (or a failed probe
 * opens it again), the deliveries queued for the webhook go back with a hold of the cool-down,
 * and so does the trigger of the failed attempt: the worker sends nothing more of it until then.
 */
void
Sidecar::breaker_result(Route &r, Attempt &a, Breaker::Result result, bool probe)
{
	Clock::time_point now = Clock::now();
	Breaker::Change change = r.breaker.finished(result, probe, now);
	if (change == Breaker::Change::None) {
		if (probe)
			update_ready(r); /* another delivery may be the probe */
		return;
	}
	metrics_.webhook_circuit(r.webhook, r.from_env, r.breaker.is_open());
	if (change == Breaker::Change::Closed) {
		LogLine(LogLevel::Info, "webhook circuit closed")
			.str("webhook", r.webhook)
			.boolean("webhook_from_env", r.from_env)
			.emit();
		update_ready(r);
		return;
	}
	uint32_t hold = r.breaker.remaining_ms(now);
	LogLine(LogLevel::Warn, "webhook circuit opened")
		.str("webhook", r.webhook)
		.boolean("webhook_from_env", r.from_env)
		.num("cooldown_ms", int64_t(r.breaker.cooldown().count()))
		.boolean("probe_failed", probe)
		.num("released", int64_t(r.queue.size()))
		.str("error", a.outcome().error)
		.emit();
	auto c = conns_.find(a.conn_id());
	if (c != conns_.end() && hold > 0) {
		uint32_t &h = c->second->release_holds[a.deliver().trigger_name];
		h = std::max(h, hold);
	}
	release_queue(r, hold);
}

/*
 * Sidecar::flush_log_summaries writes one line per kind of failure line that was repeated and
 * not written during its interval, with the count.
 */
void
Sidecar::flush_log_summaries(Clock::time_point now)
{
	for (RepeatLimiter::Summary &s : repeated_lines_.take_due(now)) {
		LogLine line(LogLevel::Warn, "attempt failures repeated");
		for (const auto &f : s.fields)
			line.str(f.first, f.second);
		line.num("suppressed", int64_t(s.suppressed))
			.num("interval_sec", int64_t(repeated_lines_.interval().count() / 1000))
			.emit();
	}
}

} // namespace hasura_events::sidecar
