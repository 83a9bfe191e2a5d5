/*
 * extension/core/dispatch.cpp
 *
 * See dispatch.hpp.
 */
#include "dispatch.hpp"

#include "json_text.hpp"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <strings.h>
#include <unordered_set>

#include "cpp_only.hpp"

namespace hasura_events {

struct Dispatch::Connection {
	int id;
	proto::FrameReader reader;
	std::string out;
	bool welcomed = false;
	bool draining = false; /* Goodbye received: no more work */
	uint64_t credits = 0;
	std::string sidecar_id;
	std::string close_reason; /* non-empty: close it */
	/* silence (check_silence): when it last sent a byte; when it got a Deliver first since then
	 * (-1: not since); whether it was pinged since */
	int64_t heard_ms = 0;
	int64_t work_since_ms = -1;
	bool pinged = false;
	/* deadlines (check_deadlines): when it was accepted; since when a frame is incomplete (-1:
	 * none is) */
	int64_t accepted_ms = 0;
	int64_t partial_since_ms = -1;
	/* a claim of its expired: no more work until it reports an outcome or grants credits (as a
	 * sidecar does for the deliveries a Cancel made it drop) */
	bool stalled = false;
	/* Cancels sent since its last outcome: a peer that takes events, never reports and grants
	 * credits again to get more is closed after kMaxCancelsWithoutOutcome of them */
	uint32_t cancels_without_outcome = 0;
	/* events cancelled on it whose late Outcome is ignored, oldest first (bounded) */
	std::unordered_set<std::string> cancelled;
	std::deque<std::string> cancelled_order;
	explicit Connection(int id_, uint32_t max_frame) : id(id_), reader(max_frame) {}
};

struct Dispatch::Claim {
	std::string trigger_name;
	std::string body;
	std::string headers_json;
	uint32_t tries;
	uint32_t num_retries;
	uint32_t interval_sec;
	int conn_id;                     /* -1 once the outcome is in records_ */
	int64_t deadline_ms = 0;         /* its entry in deadlines_, while conn_id >= 0 */
	const std::string *id = nullptr; /* its key in claims_ (stable: a node's key never moves) */
};

/* Frames the sidecar did not ask for (Stats) or that answer its own Pings are not buffered beyond
 * this much unsent output: a sidecar that stopped reading must not grow the buffer for ever. */
constexpr size_t kMaxBufferedUnasked = 1 << 20;

/* Cancelled events whose late Outcome a connection may still send (and is ignored): beyond this
 * many, the oldest are forgotten, and an Outcome for one of those is a protocol error. */
constexpr size_t kMaxCancelledKept = 4096;
/* Event ids per Cancel frame. */
constexpr size_t kCancelIdsPerFrame = 10000;
constexpr uint32_t kMaxCancelsWithoutOutcome = 3;

RetryDecision
decide(const proto::Outcome &outcome, uint32_t tries_before, uint32_t num_retries, uint32_t interval_sec,
	   uint32_t max_retry_after_attempts)
{
	RetryDecision d;
	if (outcome.kind == proto::OutcomeKind::Delivered) {
		d.kind = RetryDecision::Kind::Delivered;
		return d;
	}
	uint64_t attempts = uint64_t(tries_before) + 1;
	/* As Hasura (parseRetryHeader keeps only values > 0): a Retry-After of 0 or of a date already
	 * past is no reason to retry beyond num_retries; honouring it would let a failing webhook have
	 * an event retried at once, max_retry_after_attempts times in a row. */
	if (outcome.retry_after_sec > 0 && attempts < max_retry_after_attempts) {
		d.kind = RetryDecision::Kind::Retry;
		/* a webhook's Retry-After is not trusted beyond a day */
		d.delay_sec = std::min<int64_t>(outcome.retry_after_sec, kMaxRetryAfterSec);
		return d;
	}
	if (tries_before < num_retries) {
		d.kind = RetryDecision::Kind::Retry;
		d.delay_sec = interval_sec;
		return d;
	}
	d.kind = RetryDecision::Kind::Dead;
	return d;
}

/*
 * response_json: the invocation log's response as Hasura writes it (mkInvocation in
 * server/src-lib/Hasura/Eventing/EventTrigger.hs, the Response instance in
 * Hasura/RQL/Types/Eventing.hs): a 2xx is {"type": "webhook_response", "data": {"body", "headers",
 * "status"}}; any other status is {"type": "client_error", "data": {"message": <the body>}} (the
 * status is only in the row's status column); no response is a client_error whose message is
 * the error as JSON text, {"type": "http_exception", "message": ...}, as Hasura encodes an HTTP
 * client exception (without its "request" object, which would name the resolved webhook). A
 * body that is not UTF-8 text is ["Base64", "..."] (Hasura's TByteString); header names and
 * values have invalid bytes replaced by U+FFFD (Hasura decodes them leniently). Every string
 * goes through append_json_quoted, so the result is always readable as jsonb (json_text.hpp).
 */
std::string
response_json(const proto::Outcome &o)
{
	std::string out;
	if (o.kind == proto::OutcomeKind::Delivered) {
		out += "{\"type\": \"webhook_response\", \"data\": {\"body\": ";
		append_json_blob(out, o.response_body);
		out += ", \"headers\": [";
		bool first = true;
		for (const auto &h : o.response_headers) {
			if (!first)
				out += ", ";
			first = false;
			out += "{\"name\": ";
			append_json_quoted(out, h.first);
			out += ", \"value\": ";
			append_json_quoted(out, h.second);
			out += "}";
		}
		out += "], \"status\": " + std::to_string(o.http_status) + "}, \"version\": \"2\"}";
		return out;
	}
	out += "{\"type\": \"client_error\", \"data\": {\"message\": ";
	if (o.http_status > 0) {
		append_json_blob(out, o.response_body);
	} else {
		std::string exception = "{\"type\": \"http_exception\", \"message\": ";
		append_json_quoted(exception, o.error.empty() ? std::string_view("no response") : std::string_view(o.error));
		exception += "}";
		append_json_quoted(out, exception);
	}
	out += "}, \"version\": \"2\"}";
	return out;
}

#ifndef HASURA_EVENTS_VERSION
#define HASURA_EVENTS_VERSION "unknown"
#endif

/*
 * request_headers_json: the request headers as Hasura logs them (prepareHeaders in
 * Hasura/Eventing/HTTP.hs): the default Content-Type and User-Agent first, then the configured
 * headers as configured ({name, value}, or {name, value_from_env} naming the variable, never its
 * value). As the sidecar sends them (sidecar/resolve.cpp): a configured header of a default's
 * name replaces that default, and its User-Agent is hasura-events/<version>.
 */
std::string
request_headers_json(const std::vector<proto::Header> &headers)
{
	auto configured = [&](const char *name) {
		for (const proto::Header &h : headers)
			if (h.name.size() == strlen(name) && strncasecmp(h.name.c_str(), name, h.name.size()) == 0)
				return true;
		return false;
	};
	std::string out;
	out.reserve(128 + headers.size() * 64);
	out += "[";
	auto add = [&](std::string_view name, std::string_view value, bool from_env) {
		if (out.size() > 1)
			out += ", ";
		out += "{\"name\": ";
		append_json_quoted(out, name);
		out += from_env ? ", \"value_from_env\": " : ", \"value\": ";
		append_json_quoted(out, value);
		out += "}";
	};
	if (!configured("Content-Type"))
		add("Content-Type", "application/json", false);
	if (!configured("User-Agent"))
		add("User-Agent", "hasura-events/" HASURA_EVENTS_VERSION, false);
	for (const proto::Header &h : headers)
		add(h.name, h.value, h.from_env);
	out += "]";
	return out;
}

/* request_json: {"payload", "headers", "version"} as Hasura's WebhookRequest (mkWebhookReq). */
std::string
request_json(const std::string &body, const std::string &headers_json)
{
	std::string out;
	out.reserve(body.size() + headers_json.size() + 48);
	out += "{\"payload\": ";
	out += body;
	out += ", \"headers\": ";
	out += headers_json.empty() ? "[]" : headers_json;
	out += ", \"version\": \"2\"}";
	return out;
}

Dispatch::Dispatch(DispatchConfig config) : config_(std::move(config)) {}
Dispatch::~Dispatch() = default;

void
Dispatch::add_connection(int conn_id)
{
	/* until its Hello, a connection may send nothing but a small Hello */
	auto c = std::make_unique<Connection>(conn_id, std::min(proto::kMaxHelloFrame, config_.max_frame));
	c->heard_ms = now_ms_;
	c->accepted_ms = now_ms_;
	conns_[conn_id] = std::move(c);
}

void
Dispatch::fail(Connection &c, const std::string &why)
{
	if (c.close_reason.empty())
		c.close_reason = why;
}

void
Dispatch::on_bytes(int conn_id, const char *data, size_t len)
{
	auto it = conns_.find(conn_id);
	if (it == conns_.end())
		return;
	Connection &c = *it->second;
	if (!c.close_reason.empty())
		return;
	c.heard_ms = now_ms_;
	c.work_since_ms = -1;
	c.pinged = false;
	c.reader.feed(data, len);
	bool decoded = false;
	for (;;) {
		proto::Message msg;
		std::string error;
		auto r = c.reader.next(msg, error);
		if (r == proto::FrameReader::Result::NeedMore)
			break;
		if (r == proto::FrameReader::Result::Error) {
			fail(c, "malformed frame: " + error);
			break;
		}
		decoded = true;
		handle(c, msg);
		if (!c.close_reason.empty())
			break;
	}
	/* the frame now incomplete began with these bytes if a frame ended in them */
	if (c.reader.buffered() == 0)
		c.partial_since_ms = -1;
	else if (decoded || c.partial_since_ms < 0)
		c.partial_since_ms = now_ms_;
}

void
Dispatch::handle(Connection &c, proto::Message &msg)
{
	if (!c.welcomed && !std::holds_alternative<proto::Hello>(msg)) {
		fail(c, std::string("expected Hello, got ") + proto::type_name(msg));
		return;
	}
	if (auto *hello = std::get_if<proto::Hello>(&msg)) {
		if (c.welcomed) {
			fail(c, "Hello received twice");
			return;
		}
		if (hello->version != proto::kVersion) {
			proto::Reject rej{"protocol version " + std::to_string(hello->version) +
							  " is not supported; this worker speaks version " + std::to_string(proto::kVersion)};
			proto::encode(rej, c.out);
			fail(c, rej.reason);
			return;
		}
		if (ready_connections() >= config_.max_sidecars) {
			proto::Reject rej{std::to_string(config_.max_sidecars) +
							  " sidecars are connected to this database already"};
			proto::encode(rej, c.out);
			fail(c, rej.reason);
			return;
		}
		c.welcomed = true;
		c.sidecar_id = hello->sidecar_id;
		c.reader.set_max_frame(config_.max_frame);
		proto::encode(proto::Welcome{proto::kVersion, config_.database, config_.max_frame}, c.out);
	} else if (auto *credit = std::get_if<proto::Credit>(&msg)) {
		c.credits += credit->credits;
		/* after a Cancel, the credits of the deliveries it dropped: it reads and works */
		c.stalled = false;
	} else if (auto *outcome = std::get_if<proto::Outcome>(&msg)) {
		handle_outcome(c, *outcome);
	} else if (auto *ping = std::get_if<proto::Ping>(&msg)) {
		/* as for Stats: a sidecar that pings but does not read gets no answer, so that its Pings
		 * cannot make the buffer grow without bound */
		if (c.out.size() < kMaxBufferedUnasked)
			proto::encode(proto::Pong{ping->token}, c.out);
	} else if (std::holds_alternative<proto::Pong>(msg)) {
		/* nothing */
	} else if (std::holds_alternative<proto::Goodbye>(msg)) {
		c.draining = true;
	} else if (auto *release = std::get_if<proto::Release>(&msg)) {
		handle_release(c, *release);
	} else {
		fail(c, std::string("unexpected message from a sidecar: ") + proto::type_name(msg));
	}
}

void
Dispatch::handle_outcome(Connection &c, proto::Outcome &o)
{
	auto it = claims_.find(o.event_id);
	if (it == claims_.end() || it->second->conn_id != c.id) {
		/* sent before the sidecar read our Cancel: the event is back in the queue (or in flight
		 * again elsewhere), and this attempt's result is dropped: at least once */
		if (c.cancelled.erase(o.event_id) > 0) {
			stats_.late_outcomes++;
			c.stalled = false;
			c.cancels_without_outcome = 0;
			return;
		}
		fail(c, "outcome for event " + o.event_id + ", which was not handed to this sidecar");
		return;
	}
	Claim &claim = *it->second;
	c.stalled = false;
	c.cancels_without_outcome = 0;
	forget_deadline(claim);
	claim.conn_id = -1;
	Record rec;
	rec.event_id = o.event_id;
	rec.trigger_name = claim.trigger_name;
	rec.decision = decide(o, claim.tries, claim.num_retries, claim.interval_sec, config_.max_retry_after_attempts);
	rec.http_status = o.http_status;
	rec.request_json = request_json(claim.body, claim.headers_json);
	rec.response_json = response_json(o);
	rec.attempt = claim.tries + 1;
	rec.duration_ms = o.duration_ms;
	rec.kind = o.kind;
	rec.error = o.error;
	claim.body.clear();
	claim.body.shrink_to_fit();
	switch (rec.decision.kind) {
	case RetryDecision::Kind::Delivered: stats_.delivered++; break;
	case RetryDecision::Kind::Retry: stats_.retried++; break;
	case RetryDecision::Kind::Dead: stats_.dead++; break;
	}
	records_.push_back(std::move(rec));
}

bool
Dispatch::wants_close(int conn_id, std::string &why) const
{
	auto it = conns_.find(conn_id);
	if (it == conns_.end())
		return false;
	if (it->second->close_reason.empty())
		return false;
	why = it->second->close_reason;
	return true;
}

size_t
Dispatch::remove_connection(int conn_id)
{
	size_t returned = 0;
	for (auto it = claims_.begin(); it != claims_.end();) {
		if (it->second->conn_id == conn_id) {
			forget_deadline(*it->second);
			it = claims_.erase(it);
			returned++;
		} else
			++it;
	}
	conns_.erase(conn_id);
	stats_.returned += returned;
	return returned;
}

std::string &
Dispatch::outbuf(int conn_id)
{
	return conns_.at(conn_id)->out;
}

std::vector<int>
Dispatch::connection_ids() const
{
	std::vector<int> ids;
	ids.reserve(conns_.size());
	for (const auto &kv : conns_)
		ids.push_back(kv.first);
	return ids;
}

size_t
Dispatch::claimable() const
{
	uint64_t credits = 0;
	for (const auto &kv : conns_) {
		const Connection &c = *kv.second;
		if (c.welcomed && !c.draining && !c.stalled && c.close_reason.empty())
			credits += c.credits;
	}
	size_t room = claims_.size() >= config_.max_inflight ? 0 : config_.max_inflight - claims_.size();
	return size_t(std::min<uint64_t>(credits, room));
}

std::vector<std::string>
Dispatch::claimed_ids() const
{
	std::vector<std::string> ids;
	ids.reserve(claims_.size());
	for (const auto &kv : claims_)
		ids.push_back(kv.first);
	return ids;
}

const std::vector<const char *> &
Dispatch::claimed_id_ptrs()
{
	claimed_ptrs_.clear();
	claimed_ptrs_.reserve(claims_.size());
	for (const auto &kv : claims_)
		claimed_ptrs_.push_back(kv.first.c_str());
	return claimed_ptrs_;
}

size_t
Dispatch::hand_out(const ClaimedEventView *events, size_t n)
{
	std::vector<Connection *> ready;
	for (auto &kv : conns_) {
		Connection &c = *kv.second;
		if (c.welcomed && !c.draining && !c.stalled && c.close_reason.empty() && c.credits > 0)
			ready.push_back(&c);
	}
	size_t next = ready.empty() ? 0 : size_t(rr_++) % ready.size();
	for (size_t i = 0; i < n; i++) {
		const ClaimedEventView &e = events[i];
		if (claims_.count(e.id))
			continue; /* already ours (should not happen: claimed_ids keeps it out) */
		/* next connection with credit, round robin */
		Connection *target = nullptr;
		for (size_t k = 0; k < ready.size(); k++) {
			Connection *c = ready[(next + k) % ready.size()];
			if (c->credits > 0) {
				target = c;
				next = (next + k + 1) % ready.size();
				break;
			}
		}
		if (target == nullptr)
			return i; /* no credit left: the rest stays in event_log for the next claim */

		proto::Deliver d;
		d.event_id = e.id;
		d.trigger_name = e.trigger_name;
		d.webhook = e.webhook;
		d.webhook_from_env = e.webhook_from_env;
		for (int h = 0; h < e.nheaders; h++)
			d.headers.push_back(proto::Header{e.header_names[h], e.header_values[h], e.header_from_env[h]});
		d.timeout_sec = e.timeout_sec;
		d.attempt = e.tries + 1;
		d.body.assign(e.body, e.body_len);
		d.created_at_ms = e.created_at_ms;
		proto::encode(d, target->out);
		target->credits--;
		if (target->work_since_ms < 0)
			target->work_since_ms = now_ms_;

		auto claim = std::make_unique<Claim>();
		claim->trigger_name = e.trigger_name;
		claim->body = std::move(d.body);
		claim->headers_json = request_headers_json(d.headers);
		claim->tries = e.tries;
		claim->num_retries = e.num_retries;
		claim->interval_sec = e.interval_sec;
		claim->conn_id = target->id;
		claim->deadline_ms = now_ms_ + int64_t(e.timeout_sec) * 1000 + config_.outcome_grace_ms;
		deadlines_.emplace(claim->deadline_ms, e.id);
		auto placed = claims_.emplace(e.id, std::move(claim)).first;
		placed->second->id = &placed->first;
	}
	return n;
}

/*
 * check_silence: the claims a sidecar holds wait for it alone, so a sidecar that stopped (SIGSTOP,
 * a hung loop, a stuck stderr) without closing its socket would keep them for ever. Silence is
 * counted from the later of its last byte and the first Deliver it got since: a sidecar that was
 * idle for an hour is not silent the moment it gets work. After a third of silence_ms it gets a
 * Ping, which a live sidecar answers at once whatever its webhooks are doing; after silence_ms it
 * is failed and its claims go back to the queue when the Postgres side closes it.
 */
size_t
Dispatch::check_silence(int64_t silence_ms)
{
	std::map<int, size_t> held;
	for (const auto &kv : claims_)
		if (kv.second->conn_id >= 0)
			held[kv.second->conn_id]++;
	size_t failed = 0;
	for (auto &kv : conns_) {
		Connection &c = *kv.second;
		auto h = held.find(c.id);
		if (!c.close_reason.empty() || h == held.end())
			continue;
		int64_t since = std::max(c.heard_ms, c.work_since_ms);
		int64_t silent = now_ms_ - since;
		if (silent >= silence_ms) {
			fail(c, "the sidecar holds " + std::to_string(h->second) + " events and has sent nothing for " +
						std::to_string(silent / 1000) + " s (hasura_events.sidecar_timeout)");
			failed++;
		} else if (silent >= silence_ms / 3 && !c.pinged) {
			proto::encode(proto::Ping{uint64_t(now_ms_)}, c.out);
			c.pinged = true;
		}
	}
	return failed;
}

void
Dispatch::note_fetch(size_t n, double seconds)
{
	stats_.fetches++;
	stats_.events_fetched += n;
	if (conns_.empty())
		return;
	/* kept for the next Stats frame; bounded in case no sidecar finishes its handshake */
	if (fetch_samples_.size() < 10000)
		fetch_samples_.push_back(proto::FetchSample{seconds, uint32_t(n)});
}

size_t
Dispatch::ready_connections() const
{
	size_t n = 0;
	for (const auto &kv : conns_)
		n += kv.second->welcomed && kv.second->close_reason.empty();
	return n;
}

void
Dispatch::broadcast_stats(uint64_t worker_restarts, const TriggerStatsView *triggers, size_t n)
{
	proto::Stats st;
	st.database = config_.database;
	st.worker_restarts = worker_restarts;
	st.inflight = claims_.size();
	st.fetches = std::move(fetch_samples_);
	fetch_samples_.clear();
	st.triggers.reserve(n);
	for (size_t i = 0; i < n; i++)
		st.triggers.push_back(proto::TriggerStats{triggers[i].name, triggers[i].pending,
												  triggers[i].oldest_pending_age_sec, triggers[i].retries_scheduled,
												  triggers[i].errored});
	std::string frame;
	proto::encode(st, frame);
	for (auto &kv : conns_) {
		Connection &c = *kv.second;
		/* a sidecar that stopped reading gets no more Stats: its buffer must not grow for ever */
		if (c.welcomed && c.close_reason.empty() && c.out.size() < kMaxBufferedUnasked)
			c.out += frame;
	}
}

RecordView
Dispatch::record(size_t i) const
{
	const Record &r = records_.at(i);
	RecordView v;
	v.event_id = r.event_id.c_str();
	v.trigger_name = r.trigger_name.c_str();
	v.delivered = r.decision.kind == RetryDecision::Kind::Delivered;
	v.dead = r.decision.kind == RetryDecision::Kind::Dead;
	v.retry_delay_sec = r.decision.kind == RetryDecision::Kind::Retry ? r.decision.delay_sec : -1;
	v.http_status = r.http_status;
	v.request_json = r.request_json.c_str();
	v.response_json = r.response_json.c_str();
	v.attempt = r.attempt;
	v.duration_ms = r.duration_ms;
	v.outcome = proto::outcome_kind_name(r.kind);
	v.error = r.error.c_str();
	return v;
}

void
Dispatch::clear_records()
{
	for (const Record &r : records_)
		claims_.erase(r.event_id);
	records_.clear();
}

std::string
Dispatch::stats_json() const
{
	char buf[512];
	snprintf(buf, sizeof(buf),
			 "{\"type\": \"event-trigger-process\", \"detail\": {\"num_events_fetched\": %llu, \"num_fetches\": %llu, "
			 "\"delivered\": %llu, \"retried\": %llu, \"dead\": %llu, \"returned\": %llu, \"cancelled\": %llu, "
			 "\"inflight\": %zu, \"sidecars\": %zu}}",
			 (unsigned long long)stats_.events_fetched, (unsigned long long)stats_.fetches,
			 (unsigned long long)stats_.delivered, (unsigned long long)stats_.retried, (unsigned long long)stats_.dead,
			 (unsigned long long)stats_.returned, (unsigned long long)stats_.cancelled, claims_.size(), conns_.size());
	return buf;
}

/* ---------------------------------------------------------------- deadlines */

void
Dispatch::forget_deadline(Claim &claim)
{
	if (claim.id != nullptr)
		deadlines_.erase(std::make_pair(claim.deadline_ms, *claim.id));
}

/*
 * note_cancelled: remembers that c may still send an Outcome for event_id (one it sent before it
 * read the Cancel), so that it is ignored instead of taken for a protocol error.
 */
void
Dispatch::note_cancelled(Connection &c, const std::string &event_id)
{
	if (!c.cancelled.insert(event_id).second)
		return;
	c.cancelled_order.push_back(event_id);
	while (c.cancelled_order.size() > kMaxCancelledKept) {
		c.cancelled.erase(c.cancelled_order.front());
		c.cancelled_order.pop_front();
	}
}

/*
 * expire_claims: the claims whose outcome is overdue leave the Dispatch as if their connection had
 * gone (nothing was written for them: the event is simply due again), and each connection that
 * held some gets one Cancel with their ids. The sidecar gives their credits back (docs/protocol.md);
 * the connection gets no more work until it reports an outcome or grants credits, so a peer that
 * takes events and never answers stops collecting them after its first deadline.
 */
size_t
Dispatch::expire_claims()
{
	std::map<int, std::vector<std::string>> cancels;
	size_t expired = 0;
	while (!deadlines_.empty() && deadlines_.begin()->first <= now_ms_) {
		int64_t deadline = deadlines_.begin()->first;
		std::string id = deadlines_.begin()->second;
		deadlines_.erase(deadlines_.begin());
		auto it = claims_.find(id);
		if (it == claims_.end() || it->second->conn_id < 0 || it->second->deadline_ms != deadline)
			continue; /* not a claim's entry any more (defensive: each is erased with its claim) */
		cancels[it->second->conn_id].push_back(id);
		claims_.erase(it);
		expired++;
	}
	for (auto &kv : cancels) {
		auto c = conns_.find(kv.first);
		if (c == conns_.end())
			continue;
		Connection &conn = *c->second;
		conn.stalled = true;
		if (++conn.cancels_without_outcome >= kMaxCancelsWithoutOutcome)
			fail(conn, "no outcome reported for the events of " + std::to_string(conn.cancels_without_outcome) +
						   " Cancels in a row (hasura_events.outcome_grace)");
		for (const std::string &id : kv.second)
			note_cancelled(conn, id);
		for (size_t at = 0; at < kv.second.size(); at += kCancelIdsPerFrame) {
			proto::Cancel cancel;
			size_t end = std::min(kv.second.size(), at + kCancelIdsPerFrame);
			cancel.event_ids.assign(std::make_move_iterator(kv.second.begin() + long(at)),
									std::make_move_iterator(kv.second.begin() + long(end)));
			proto::encode(cancel, conn.out);
		}
	}
	stats_.returned += expired;
	stats_.cancelled += expired;
	return expired;
}

size_t
Dispatch::check_deadlines()
{
	for (auto &kv : conns_) {
		Connection &c = *kv.second;
		if (!c.close_reason.empty())
			continue;
		if (!c.welcomed && now_ms_ - c.accepted_ms >= config_.hello_timeout_ms)
			fail(c, "no Hello within " + std::to_string(config_.hello_timeout_ms / 1000) + " s of connecting");
		else if (c.partial_since_ms >= 0 && now_ms_ - c.partial_since_ms >= config_.frame_timeout_ms)
			fail(c, "a frame is incomplete after " + std::to_string(config_.frame_timeout_ms / 1000) + " s (" +
						std::to_string(c.reader.buffered()) + " bytes of it arrived)");
	}
	return expire_claims();
}

int64_t
Dispatch::next_deadline_ms() const
{
	int64_t next = deadlines_.empty() ? INT64_MAX : deadlines_.begin()->first;
	for (const auto &kv : conns_) {
		const Connection &c = *kv.second;
		if (!c.close_reason.empty())
			continue;
		if (!c.welcomed)
			next = std::min(next, c.accepted_ms + config_.hello_timeout_ms);
		if (c.partial_since_ms >= 0)
			next = std::min(next, c.partial_since_ms + config_.frame_timeout_ms);
	}
	return next;
}

size_t
Dispatch::handshaking_count() const
{
	size_t n = 0;
	for (const auto &kv : conns_)
		n += !kv.second->welcomed;
	return n;
}

int
Dispatch::oldest_handshake() const
{
	int oldest = -1;
	int64_t since = INT64_MAX;
	for (const auto &kv : conns_) {
		const Connection &c = *kv.second;
		if (!c.welcomed && c.accepted_ms < since) {
			since = c.accepted_ms;
			oldest = c.id;
		}
	}
	return oldest;
}

/* ------------------------------------------------------------------ Release and holds */

/* A hold longer than this is cut to it: a sidecar cannot keep a trigger from every other sidecar
 * for longer than a breaker's longest cool-down could sensibly be. */
constexpr int64_t kMaxHoldMs = 3600 * 1000;

/*
 * handle_release: the sidecar gives deliveries back that it never attempted (shutting down, or its
 * circuit breaker for their webhook is open). The claims end here with nothing to record: the
 * events stay as they are in event_log (no try, no invocation log) and the next claim finds
 * them. Every id must be a claim this connection holds without an outcome reported; anything
 * else is a protocol error, and nothing of that Release is applied.
 */
void
Dispatch::handle_release(Connection &c, const proto::Release &r)
{
	for (const std::string &id : r.event_ids) {
		auto it = claims_.find(id);
		/* an event cancelled on this connection may cross our Cancel: it is back in the queue already */
		if ((it == claims_.end() || it->second->conn_id != c.id) && c.cancelled.count(id) == 0) {
			fail(c, "release of event " + id + ", which this sidecar does not hold");
			return;
		}
	}
	for (const std::string &id : r.event_ids) {
		auto it = claims_.find(id);
		if (it == claims_.end() || it->second->conn_id != c.id) {
			c.cancelled.erase(id);
			continue;
		}
		forget_deadline(*it->second);
		claims_.erase(it);
		stats_.returned++;
		released_ = true;
	}
	for (const proto::Hold &h : r.holds) {
		int64_t end = now_ms_ + std::min<int64_t>(h.hold_ms, kMaxHoldMs);
		auto it = holds_.find(h.trigger_name);
		if (h.hold_ms == 0) {
			/* a hold of 0 ends a hold of that trigger */
			if (it != holds_.end()) {
				holds_.erase(it);
				released_ = true;
			}
		} else if (it == holds_.end())
			holds_.emplace(h.trigger_name, end);
		else
			it->second = end; /* the latest word of the breaker stands */
	}
}

bool
Dispatch::take_released()
{
	bool r = released_;
	released_ = false;
	return r;
}

const std::vector<const char *> &
Dispatch::held_trigger_ptrs()
{
	held_ptrs_.clear();
	for (const auto &kv : holds_)
		if (kv.second > now_ms_)
			held_ptrs_.push_back(kv.first.c_str());
	return held_ptrs_;
}

bool
Dispatch::expire_holds()
{
	bool ended = false;
	for (auto it = holds_.begin(); it != holds_.end();) {
		if (it->second <= now_ms_) {
			it = holds_.erase(it);
			ended = true;
		} else
			++it;
	}
	return ended;
}

int64_t
Dispatch::next_hold_end_ms() const
{
	int64_t next = -1;
	for (const auto &kv : holds_)
		if (next < 0 || kv.second < next)
			next = kv.second;
	return next;
}
} // namespace hasura_events
