/*
 * sidecar/breaker.hpp
 *
 * The circuit breaker of one webhook. While a webhook's attempts fail at the connection level
 * (refused, DNS, TLS, timeouts: no HTTP answer at all), sending it more attempts only burns the
 * events' tries and writes an invocation log row each; the breaker stops that. After a few such
 * failures in a row it opens for a cool-down (1 s, doubling up to a cap): its deliveries go back
 * to the worker unattempted (Release, with a hold for their triggers). When the cool-down ends,
 * the next delivery is the probe, alone in flight (half-open): an answer closes the breaker, a
 * connection-level failure opens it again for twice as long.
 *
 * An HTTP answer of any status is not connection-level: a webhook that answers 500 gets Hasura's
 * retry semantics, attempt by attempt. Pure logic (the clock is passed in), unit-tested.
 */
#pragma once

#include <chrono>
#include <cstdint>

#include <curl/curl.h>

namespace hasura_events::sidecar {

/* connection_level_failure: curl gave up without any HTTP answer for a reason of the network or
 * the peer (refused, unresolvable, TLS, timed out, send/receive failed, empty reply) */
bool connection_level_failure(CURLcode result);

class Breaker {
public:
	using Clock = std::chrono::steady_clock;
	static constexpr uint32_t kThreshold = 5; /* consecutive connection-level failures that open it */
	static constexpr std::chrono::milliseconds kFirstCooldown{1000};

	/* what an attempt's end says about the webhook */
	enum class Result {
		Answered,          /* an HTTP response, whatever its status */
		ConnectionFailure, /* connection_level_failure */
		Other              /* no network verdict: abandoned, a missing variable, a bad URL */
	};
	enum class Change { None, Opened, Closed };

	explicit Breaker(std::chrono::milliseconds max_cooldown) : max_cooldown_(max_cooldown) {}

	/* may_start: whether an attempt may start now: always while closed; while open, only once the
	 * cool-down is over and no probe is in flight */
	bool may_start(Clock::time_point now) const;
	/* started: an attempt started (after may_start). True when it is the probe. */
	bool started(Clock::time_point now);
	/* finished: an attempt ended; probe: started() said it was the probe. Opened is also
	 * returned when a failed probe opens it again. */
	Change finished(Result result, bool probe, Clock::time_point now);

	/* holding: open and within the cool-down: deliveries go back to the worker */
	bool holding(Clock::time_point now) const;
	/* remaining_ms: what is left of the cool-down (0 when not holding) */
	uint32_t remaining_ms(Clock::time_point now) const;
	/* is_open: open or half-open (the metric) */
	bool
	is_open() const
	{
		return open_;
	}
	std::chrono::milliseconds
	cooldown() const
	{
		return cooldown_;
	}
	uint32_t
	consecutive_failures() const
	{
		return failures_;
	}

private:
	void open(Clock::time_point now);

	std::chrono::milliseconds max_cooldown_;
	std::chrono::milliseconds cooldown_{0}; /* of the current (or last) opening */
	uint32_t failures_ = 0;
	bool open_ = false;
	bool probing_ = false;
	Clock::time_point open_until_;
};

} // namespace hasura_events::sidecar
