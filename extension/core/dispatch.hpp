/*
 * extension/core/dispatch.hpp
 *
 * The dispatcher's bookkeeping, as pure C++: the sidecar connections (handshake, credits, frame
 * buffers), the events in flight (the in-memory claims: which event went to which connection),
 * the retry policy applied to each reported outcome, and the invocation-log JSON.
 *
 * The Postgres side (extension/src/dispatcher.cpp) owns sockets, latches and SPI; it feeds bytes
 * in, asks how many events it may claim, hands claimed events over as plain structs, and reads
 * the outcomes to record as plain structs. Every call into this class crosses a guard there.
 *
 * Wording: a "claim" is an event the dispatcher took from event_log and has not recorded an
 * outcome for; an "outcome" is what the sidecar reported for one attempt; a "record" is the
 * row update plus invocation-log row that the dispatcher writes for it.
 */
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol.hpp"

namespace hasura_events {

/* What to do with an event after an attempt. */
struct RetryDecision {
	enum class Kind { Delivered, Retry, Dead } kind = Kind::Dead;
	int64_t delay_sec = 0; /* for Retry */
};

/*
 * decide: Hasura's rules. 2xx delivers. Otherwise, with tries_before attempts made before this
 * one: a Retry-After answer retries after that many seconds while the attempts stay below
 * max_retry_after_attempts (Hasura has no bound); else a retry after interval_sec while
 * tries_before < num_retries; else the event is dead (error = true).
 */
constexpr int64_t kMaxRetryAfterSec = 24 * 3600;

RetryDecision decide(const proto::Outcome &outcome, uint32_t tries_before, uint32_t num_retries, uint32_t interval_sec,
					 uint32_t max_retry_after_attempts);

/* The invocation log's response JSON as Hasura writes it (version "2"; see dispatch.cpp), always
 * readable as jsonb. */
std::string response_json(const proto::Outcome &outcome);

/* The request headers of the invocation log as Hasura logs them (defaults first). */
std::string request_headers_json(const std::vector<proto::Header> &headers);

/* The invocation log's request JSON (version "2"): {"payload": body, "headers": headers_json}. */
std::string request_json(const std::string &body, const std::string &headers_json);

/* An event claimed from event_log, as the Postgres side reads it (plain pointers, valid during the call). */
struct ClaimedEventView {
	const char *id;
	const char *trigger_name;
	const char *webhook;
	bool webhook_from_env;
	const char *headers_json; /* the stored headers (the invocation log's are request_headers_json) */
	int nheaders;
	const char *const *header_names;
	const char *const *header_values; /* a variable name where header_from_env */
	const bool *header_from_env;
	uint32_t timeout_sec;
	uint32_t num_retries;
	uint32_t interval_sec;
	uint32_t tries;
	const char *body; /* the webhook payload */
	size_t body_len;
	int64_t created_at_ms; /* the event's created_at, Unix epoch milliseconds */
};

/* One trigger's queue, as the Postgres side reads it for a Stats frame. */
struct TriggerStatsView {
	const char *name;
	uint64_t pending;
	double oldest_pending_age_sec;
	uint64_t retries_scheduled;
	uint64_t errored;
};

/* One attempt to record, as the Postgres side reads it (pointers valid until clear_records). */
struct RecordView {
	const char *event_id;
	const char *trigger_name;
	bool delivered;
	bool dead;
	int64_t retry_delay_sec; /* -1 unless a retry is scheduled */
	int32_t http_status;     /* 0: no response */
	const char *request_json;
	const char *response_json;
	uint32_t attempt;     /* 1 for the first */
	uint32_t duration_ms; /* of the HTTP attempt */
	const char *outcome;  /* "delivered", "http_error", "client_error" */
	const char *error;    /* the sidecar's reason for a client_error, else "" */
};

struct DispatchConfig {
	uint32_t max_inflight = 1000;
	uint32_t max_retry_after_attempts = 100;
	uint32_t max_frame = proto::kMaxSidecarFrame; /* after the Hello; announced in Welcome */
	std::string database;
	/* a claim's outcome is overdue (the claim is taken back, check_deadlines) this long after its
	 * trigger's timeout_sec (hasura_events.outcome_grace) */
	int64_t outcome_grace_ms = 60000;
	size_t max_sidecars = 64;         /* connections past their Hello; the next Hello is rejected */
	int64_t hello_timeout_ms = 5000;  /* from accept to Hello */
	int64_t frame_timeout_ms = 10000; /* from a frame's first byte to its last */
};

struct DispatchStats {
	uint64_t events_fetched = 0;
	uint64_t fetches = 0;
	uint64_t delivered = 0;
	uint64_t retried = 0;
	uint64_t dead = 0;
	uint64_t returned = 0;      /* claims given back: a sidecar went away, released them, or was too late */
	uint64_t cancelled = 0;     /* of those: taken back because their outcome was overdue */
	uint64_t late_outcomes = 0; /* outcomes ignored because their claim had been cancelled */
};

class Dispatch {
public:
	explicit Dispatch(DispatchConfig config);
	~Dispatch();

	void
	set_config(const DispatchConfig &config)
	{
		config_ = config;
	}

	/* The time in milliseconds of a monotonic clock, for check_silence; the Postgres side sets it
	 * at every turn of its loop, before feeding bytes or handing out events. */
	void
	set_now(int64_t now_ms)
	{
		now_ms_ = now_ms;
	}
	/* Sidecars that hold claims and have sent nothing: a Ping after a third of silence_ms, failed
	 * (wants_close) after silence_ms. Returns how many it failed. */
	size_t check_silence(int64_t silence_ms);

	/*
	 * The deadlines, at the clock of set_now: a connection without its Hello after
	 * hello_timeout_ms, or in the middle of a frame for frame_timeout_ms, is failed (wants_close);
	 * a claim without an outcome at timeout_sec + outcome_grace_ms after it was handed out is
	 * dropped (the event is due again: the caller looks for it everywhere), and its connection gets
	 * a Cancel and no more work until it reports an outcome or grants credits. Returns how many claims it dropped.
	 */
	size_t check_deadlines();
	/* The earliest time check_deadlines has something to do (INT64_MAX: none); for the wait. */
	int64_t next_deadline_ms() const;
	/* Connections that have not said Hello yet, and the one accepted first among them (-1: none). */
	size_t handshaking_count() const;
	int oldest_handshake() const;

	/* A sidecar connected (the socket was accepted and the peer checked). */
	void add_connection(int conn_id);
	/* Bytes arrived from conn_id; frames are processed at once. */
	void on_bytes(int conn_id, const char *data, size_t len);
	/* The connection must be closed (protocol error, Reject sent); why says it. */
	bool wants_close(int conn_id, std::string &why) const;
	/* The connection is gone: its claims go back to the queue. Returns how many. */
	size_t remove_connection(int conn_id);
	/* Bytes waiting to be written to conn_id (the caller erases what it wrote). */
	std::string &outbuf(int conn_id);
	std::vector<int> connection_ids() const;
	size_t
	connection_count() const
	{
		return conns_.size();
	}

	/* How many events may be claimed now: free credits, capped by max_inflight. */
	size_t claimable() const;
	/* Ids of the events claimed and not yet recorded, to keep them out of the next claim. */
	std::vector<std::string> claimed_ids() const;
	/* The same as pointers into the claims, valid until the next call that changes claims. */
	const std::vector<const char *> &claimed_id_ptrs();
	size_t
	inflight() const
	{
		return claims_.size();
	}
	/* Hands claimed events to the sidecars (as Deliver frames, spread over the credits). */
	/* hand_out returns how many of the events it went through (handed out, or already claimed):
	 * fewer than n when the credits ran out */
	size_t hand_out(const ClaimedEventView *events, size_t n);
	/* A claim query returned n events in `seconds`. */
	void note_fetch(size_t n, double seconds);
	/* Sends a Stats frame (the fetches since the last one, the queues) to every ready sidecar. */
	void broadcast_stats(uint64_t worker_restarts, const TriggerStatsView *triggers, size_t n);
	/* Sidecars past the handshake. */
	size_t ready_connections() const;

	/* Release: whether a sidecar gave claims back since the last call (they
	 * may lie behind the claim cursor and floor: the next claim must look everywhere). */
	bool take_released();
	/* The triggers held now (a sidecar's circuit breaker is open for their webhook): the claim
	 * skips their events. Pointers valid until the next call that changes holds. */
	const std::vector<const char *> &held_trigger_ptrs();
	/* Drops the holds that ended by now; true when one did (its events are due again, anywhere
	 * in the claim index). */
	bool expire_holds();
	/* Milliseconds of the monotonic clock when the earliest hold ends; -1 when none. */
	int64_t next_hold_end_ms() const;

	/* Attempts reported and not yet recorded. */
	size_t
	record_count() const
	{
		return records_.size();
	}
	RecordView record(size_t i) const;
	/* The records were committed: forget them (their claims end here). */
	void clear_records();

	const DispatchStats &
	stats() const
	{
		return stats_;
	}
	std::string stats_json() const;

private:
	struct Connection;
	struct Claim;
	struct Record {
		std::string event_id;
		std::string trigger_name;
		RetryDecision decision;
		int32_t http_status;
		std::string request_json;
		std::string response_json;
		uint32_t attempt;
		uint32_t duration_ms;
		proto::OutcomeKind kind;
		std::string error;
	};

	void handle(Connection &c, proto::Message &msg);
	void handle_outcome(Connection &c, proto::Outcome &o);
	void fail(Connection &c, const std::string &why);
	void forget_deadline(Claim &claim);
	size_t expire_claims();
	void note_cancelled(Connection &c, const std::string &event_id);
	void handle_release(Connection &c, const proto::Release &r);

	DispatchConfig config_;
	std::map<int, std::unique_ptr<Connection>> conns_;
	std::unordered_map<std::string, std::unique_ptr<Claim>> claims_;
	/* the outcome deadline of every claim held by a connection, earliest first */
	std::set<std::pair<int64_t, std::string>> deadlines_;
	std::vector<Record> records_;
	std::vector<const char *> claimed_ptrs_;
	std::vector<proto::FetchSample> fetch_samples_; /* since the last Stats */
	DispatchStats stats_;
	int rr_ = 0; /* round robin start among connections */
	int64_t now_ms_ = 0;
	std::map<std::string, int64_t> holds_; /* trigger -> when its hold ends (monotonic ms) */
	std::vector<const char *> held_ptrs_;
	bool released_ = false;
};

} // namespace hasura_events
