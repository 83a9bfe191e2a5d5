/*
 * sidecar/concurrency.hpp
 *
 * ConcurrencyLimit: how many attempts one webhook may have in flight, adapted to what the
 * webhook does with them. More attempts in flight only help while the webhook answers them in
 * parallel: then the latency stays put as the limit grows and the throughput grows with it. Once
 * the webhook (or the machine) is saturated, every extra attempt only waits: the latency grows in
 * proportion and the throughput does not. Past that point a larger limit costs connections,
 * sockets and CPU on both sides for nothing, and a webhook that is already overloaded gets more
 * load.
 *
 * The limit probes: it measures the latency of a window of attempts (the mean of all but the
 * slowest tenth) at its settled limit, tries a limit a quarter larger (or a fifth smaller),
 * measures again and keeps the new limit if the latency's elasticity says it paid off:
 *
 *   elasticity = ln(latency_probe / latency_settled) / ln(limit_probe / limit_settled)
 *
 * 0 means the latency did not move (throughput grew or fell with the limit), 1 means it moved in
 * proportion (throughput unchanged). A larger limit is kept below 0.5; a smaller one above 0.75.
 * Latency that varies at random (a jittery webhook) moves the mean of a window only a little,
 * and not in step with the limit, so it does not read as saturation. Windows in which the webhook
 * had no deliveries waiting (the limit did not bind) say nothing about it and are dropped.
 * Probes that fail are repeated less and less often (up to every 16 windows), so a stable
 * webhook sees few of them, and the first probe after a change in either direction comes soon.
 * A webhook that fails more than a tenth of its attempts (an error status, a timeout, a refused
 * connection) is never given more: its latency says nothing about its capacity then (a timeout
 * is as long at any load, a load-shedding 503 as short), so only probes down are made.
 *
 * The limit never goes below the floor (--min-webhook-concurrency) nor above the ceiling (the
 * pool size). Pure logic, no clock: the caller passes each attempt's latency.
 */
#pragma once

#include <cstdint>
#include <vector>

namespace hasura_events::sidecar {

class ConcurrencyLimit {
public:
	/* floor <= ceiling; the limit starts at the floor */
	ConcurrencyLimit(uint32_t floor, uint32_t ceiling);

	uint32_t
	limit() const
	{
		return limit_;
	}

	/* the limit kept: limit() is a probe above or below it while one is measured */
	uint32_t
	settled() const
	{
		return settled_;
	}

	/* an attempt started; waiting: the limit was reached with deliveries for this webhook still
	 * queued (the limit, not the pool or the backlog, is what held them back) */
	void started(bool waiting);

	/* an attempt finished after `seconds`, delivered (ok) or failed; returns true when the
	 * settled limit changed */
	bool finished(double seconds, bool ok);

	/* the latency of the last measured window, in seconds (0 before the first) */
	double
	last_latency() const
	{
		return last_latency_;
	}

private:
	enum class Phase { Settle, Measure };

	void begin(uint32_t limit);
	bool close_window();
	uint32_t step_up() const;
	uint32_t step_down() const;

	uint32_t floor_;
	uint32_t ceiling_;
	uint32_t limit_;             /* the limit in force: settled_, or a probe */
	uint32_t settled_;           /* the limit kept */
	double settled_latency_ = 0; /* latency of the last window at settled_: a probe's reference */
	bool probing_ = false;
	bool probe_up_ = true;         /* direction of the next probe */
	uint32_t hold_ = 0;            /* windows at settled_ before the next probe */
	uint32_t backoff_ = 1;         /* hold after the next failed probe */
	Phase phase_ = Phase::Measure; /* nothing in flight yet: the first window starts at once */
	uint32_t skip_ = 0;            /* completions left to settle */
	uint32_t starts_ = 0;          /* in this window */
	uint32_t waiting_starts_ = 0;
	uint32_t failures_ = 0; /* in this window */
	std::vector<double> samples_;
	double last_latency_ = 0;
};

} // namespace hasura_events::sidecar
