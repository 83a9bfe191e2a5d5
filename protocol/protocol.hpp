/*
 * protocol/protocol.hpp
 *
 * The wire protocol between the background worker (inside Postgres) and the delivery sidecar:
 * message structs, the frame encoder and an incremental frame reader. docs/protocol.md is the
 * specification; this file and protocol.cpp are its only implementation, compiled into both the
 * extension module and the sidecar.
 *
 * Pure C++17 without dependencies. Safe for a Postgres backend: no global constructors, no
 * iostreams, and decoding never throws on any input (only std::bad_alloc can escape); malformed
 * input is reported through return values.
 *
 * Wording: a "frame" is the bytes on the wire (u32 length, u8 type, body); a "message" is the
 * decoded struct.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace hasura_events::proto {

constexpr uint16_t kVersion = 1;
constexpr uint32_t kDefaultMaxFrame = 512u << 20;

enum class MsgType : uint8_t {
	Hello = 1,
	Welcome = 2,
	Reject = 3,
	Credit = 4,
	Deliver = 5,
	Outcome = 6,
	Ping = 7,
	Pong = 8,
	Goodbye = 9,
	Stats = 10,
	Release = 11,
	Cancel = 12
};

/*
 * Bounds of the frames a worker accepts from a sidecar (docs/protocol.md): before its Hello, and
 * after it (announced as Welcome's max_frame). The largest legitimate sidecar frame is an Outcome,
 * whose response body the sidecar caps (--max-response-bytes) and shortens to fit max_frame.
 */
constexpr uint32_t kMaxHelloFrame = 64u << 10;
constexpr uint32_t kMaxSidecarFrame = 4u << 20;

struct Hello {
	uint16_t version = kVersion;
	std::string sidecar_id;
	uint32_t pool_size = 0;
};

struct Welcome {
	uint16_t version = kVersion;
	std::string database;
	uint32_t max_frame = kDefaultMaxFrame;
};

struct Reject {
	std::string reason;
};

struct Credit {
	uint32_t credits = 0;
};

struct Header {
	std::string name;
	std::string value; /* a variable name when from_env */
	bool from_env = false;
};

struct Deliver {
	std::string event_id, trigger_name, webhook; /* webhook: as stored, or a variable name */
	bool webhook_from_env = false;
	std::vector<Header> headers;
	uint32_t timeout_sec = 60;
	uint32_t attempt = 1;
	std::string body;
	int64_t created_at_ms = 0; /* the event's created_at, Unix epoch milliseconds */
};

enum class OutcomeKind : uint8_t { Delivered = 0, HttpError = 1, ClientError = 2 };

struct Outcome {
	std::string event_id;
	OutcomeKind kind = OutcomeKind::ClientError;
	int32_t http_status = 0;
	int64_t retry_after_sec = -1;
	std::string response_body;
	std::vector<std::pair<std::string, std::string>> response_headers;
	std::string error;
	uint32_t duration_ms = 0;
};

struct Ping {
	uint64_t token = 0;
};

struct Pong {
	uint64_t token = 0;
};

struct Goodbye {
	std::string reason;
};

/* One claim query of the worker: how long it took and how many events it returned. */
struct FetchSample {
	double seconds = 0;
	uint32_t events = 0;
};

/* The worker's view of one trigger's queue, as of the Stats that carries it. */
struct TriggerStats {
	std::string name;
	uint64_t pending = 0;              /* undelivered, not errored events */
	double oldest_pending_age_sec = 0; /* age of the oldest of them */
	uint64_t retries_scheduled = 0;    /* pending events waiting for a retry */
	uint64_t errored = 0;              /* events whose retries are exhausted */
};

/*
 * Stats is the worker's periodic report for the metrics. f64 fields may hold any binary64 value,
 * NaN and infinities included.
 */
struct Stats {
	std::string database;
	uint64_t worker_restarts = 0;     /* dispatcher starts in this database since the server started, minus 1 */
	uint64_t inflight = 0;            /* events claimed and not yet recorded */
	std::vector<FetchSample> fetches; /* every claim since the previous Stats */
	std::vector<TriggerStats> triggers;
};

/* A trigger whose events the sidecar does not want for hold_ms milliseconds (its webhook's circuit
 * breaker is open for that long). */
struct Hold {
	std::string trigger_name;
	uint32_t hold_ms = 0;
};

/*
 * Release (sidecar -> worker) gives deliveries back unattempted: the worker forgets those claims
 * (no try, no invocation log) and hands the events out again, after the holds of their triggers end.
 */
struct Release {
	std::vector<std::string> event_ids;
	std::vector<Hold> holds;
};

/*
 * Cancel (worker -> sidecar): the worker took these events back (their outcome is overdue). The
 * sidecar drops each that has not started, aborts each in flight, and reports neither.
 */
struct Cancel {
	std::vector<std::string> event_ids;
};

/* The alternatives are in wire-type order: index() + 1 is the MsgType. */
using Message =
	std::variant<Hello, Welcome, Reject, Credit, Deliver, Outcome, Ping, Pong, Goodbye, Stats, Release, Cancel>;

/*
 * encode appends one complete frame to out. Throws std::length_error only for a string or a
 * frame that cannot be represented (over 4 GiB), and std::bad_alloc.
 */
void encode(const Message &msg, std::string &out);

/* encoded_size is the number of bytes encode would append for msg. */
size_t encoded_size(const Message &msg);

MsgType type_of(const Message &msg);
const char *type_name(const Message &msg);
const char *type_name(MsgType type);
const char *outcome_kind_name(OutcomeKind kind); /* "delivered", "http_error", "client_error" */

/*
 * FrameReader turns a byte stream into messages. feed() appends received bytes; next() decodes
 * the next complete frame. An Error is sticky: the connection must be closed.
 */
class FrameReader {
public:
	explicit FrameReader(uint32_t max_frame = kDefaultMaxFrame);

	void feed(const char *data, size_t len);

	enum class Result { NeedMore, Ok, Error };
	Result next(Message &out, std::string &error);

	size_t buffered() const;
	uint32_t
	max_frame() const
	{
		return max_frame_;
	}
	/* A new bound for the frames not yet decoded (a worker raises it once the Hello is in). */
	void
	set_max_frame(uint32_t max_frame)
	{
		max_frame_ = max_frame;
	}

private:
	std::string buf_;
	size_t pos_ = 0; /* start of the first undecoded byte in buf_ */
	uint32_t max_frame_;
	std::string error_; /* non-empty once a malformed frame was seen */
};

/*
 * decode_frame decodes one frame body (the type byte and what follows, without the length
 * prefix). Returns false and sets error when it is malformed.
 */
bool decode_frame(const char *data, size_t len, Message &out, std::string &error);

} // namespace hasura_events::proto
