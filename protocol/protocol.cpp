/*
 * protocol/protocol.cpp
 *
 * Encoding and decoding of the worker <-> sidecar frames described in docs/protocol.md.
 * Decoding validates every length against the bytes actually present before allocating, so a
 * hostile or corrupt frame costs at most its own size in memory and never crashes.
 */
#include "protocol.hpp"

#include <cstring>
#include <stdexcept>
#include <type_traits>

#ifdef PG_VERSION_NUM
#error "protocol.cpp is pure C++: do not include postgres.h"
#endif

namespace hasura_events::proto {

namespace {

/* ---------------------------------------------------------------- encoding */

/*
 * Writer appends big-endian scalars and length-prefixed strings to a string.
 */
struct Writer {
	std::string &out;

	void
	u8(uint8_t v)
	{
		out.push_back(static_cast<char>(v));
	}

	void
	u16(uint16_t v)
	{
		u8(static_cast<uint8_t>(v >> 8));
		u8(static_cast<uint8_t>(v));
	}

	void
	u32(uint32_t v)
	{
		u16(static_cast<uint16_t>(v >> 16));
		u16(static_cast<uint16_t>(v));
	}

	void
	u64(uint64_t v)
	{
		u32(static_cast<uint32_t>(v >> 32));
		u32(static_cast<uint32_t>(v));
	}

	void
	i64(int64_t v)
	{
		u64(static_cast<uint64_t>(v));
	}

	/* f64: the IEEE-754 binary64 bits as a big-endian u64 */
	void
	f64(double v)
	{
		static_assert(sizeof(double) == sizeof(uint64_t), "binary64 double expected");
		uint64_t bits;
		memcpy(&bits, &v, sizeof bits);
		u64(bits);
	}

	void
	boolean(bool v)
	{
		u8(v ? 1 : 0);
	}

	void
	str(const std::string &s)
	{
		if (s.size() > UINT32_MAX)
			throw std::length_error("hasura_events protocol: string longer than 4 GiB");
		u32(static_cast<uint32_t>(s.size()));
		out.append(s);
	}
};

/*
 * encode_body writes the fields of one message, in the order of docs/protocol.md.
 */
void
encode_body(Writer &w, const Hello &m)
{
	w.u16(m.version);
	w.str(m.sidecar_id);
	w.u32(m.pool_size);
}

void
encode_body(Writer &w, const Welcome &m)
{
	w.u16(m.version);
	w.str(m.database);
	w.u32(m.max_frame);
}

void
encode_body(Writer &w, const Reject &m)
{
	w.str(m.reason);
}

void
encode_body(Writer &w, const Credit &m)
{
	w.u32(m.credits);
}

void
encode_body(Writer &w, const Deliver &m)
{
	w.str(m.event_id);
	w.str(m.trigger_name);
	w.str(m.webhook);
	w.boolean(m.webhook_from_env);
	if (m.headers.size() > UINT32_MAX)
		throw std::length_error("hasura_events protocol: too many headers");
	w.u32(static_cast<uint32_t>(m.headers.size()));
	for (const Header &h : m.headers) {
		w.str(h.name);
		w.str(h.value);
		w.boolean(h.from_env);
	}
	w.u32(m.timeout_sec);
	w.u32(m.attempt);
	w.str(m.body);
	w.i64(m.created_at_ms);
}

void
encode_body(Writer &w, const Outcome &m)
{
	w.str(m.event_id);
	w.u8(static_cast<uint8_t>(m.kind));
	w.u32(static_cast<uint32_t>(m.http_status));
	w.u64(static_cast<uint64_t>(m.retry_after_sec));
	w.str(m.response_body);
	if (m.response_headers.size() > UINT32_MAX)
		throw std::length_error("hasura_events protocol: too many headers");
	w.u32(static_cast<uint32_t>(m.response_headers.size()));
	for (const auto &h : m.response_headers) {
		w.str(h.first);
		w.str(h.second);
	}
	w.str(m.error);
	w.u32(m.duration_ms);
}

void
encode_body(Writer &w, const Ping &m)
{
	w.u64(m.token);
}

void
encode_body(Writer &w, const Pong &m)
{
	w.u64(m.token);
}

void
encode_body(Writer &w, const Goodbye &m)
{
	w.str(m.reason);
}

void
encode_body(Writer &w, const Release &m)
{
	if (m.event_ids.size() > UINT32_MAX || m.holds.size() > UINT32_MAX)
		throw std::length_error("hasura_events protocol: too many Release entries");
	w.u32(static_cast<uint32_t>(m.event_ids.size()));
	for (const std::string &id : m.event_ids)
		w.str(id);
	w.u32(static_cast<uint32_t>(m.holds.size()));
	for (const Hold &h : m.holds) {
		w.str(h.trigger_name);
		w.u32(h.hold_ms);
	}
}

void
encode_body(Writer &w, const Stats &m)
{
	w.str(m.database);
	w.u64(m.worker_restarts);
	w.u64(m.inflight);
	if (m.fetches.size() > UINT32_MAX || m.triggers.size() > UINT32_MAX)
		throw std::length_error("hasura_events protocol: too many Stats entries");
	w.u32(static_cast<uint32_t>(m.fetches.size()));
	for (const FetchSample &f : m.fetches) {
		w.f64(f.seconds);
		w.u32(f.events);
	}
	w.u32(static_cast<uint32_t>(m.triggers.size()));
	for (const TriggerStats &t : m.triggers) {
		w.str(t.name);
		w.u64(t.pending);
		w.f64(t.oldest_pending_age_sec);
		w.u64(t.retries_scheduled);
		w.u64(t.errored);
	}
}

void
encode_body(Writer &w, const Cancel &m)
{
	if (m.event_ids.size() > UINT32_MAX)
		throw std::length_error("hasura_events protocol: too many event ids");
	w.u32(static_cast<uint32_t>(m.event_ids.size()));
	for (const std::string &id : m.event_ids)
		w.str(id);
}

/* ---------------------------------------------------------------- decoding */

/*
 * Reader consumes big-endian fields from a byte range. The first failure is remembered in
 * error and makes every later read fail too, so decoders read all fields and check once.
 */
struct Reader {
	const unsigned char *p;
	size_t left;
	const char *msg_name;
	std::string error;

	bool
	ok() const
	{
		return error.empty();
	}

	bool
	need(size_t n, const char *field)
	{
		if (!ok())
			return false;
		if (left < n) {
			error = std::string(msg_name) + " frame too short: field " + field + " needs " + std::to_string(n) +
					" bytes, " + std::to_string(left) + " left";
			return false;
		}
		return true;
	}

	uint64_t
	uint(size_t n, const char *field)
	{
		if (!need(n, field))
			return 0;
		uint64_t v = 0;
		for (size_t i = 0; i < n; i++)
			v = (v << 8) | p[i];
		p += n;
		left -= n;
		return v;
	}

	uint8_t
	u8(const char *field)
	{
		return static_cast<uint8_t>(uint(1, field));
	}

	uint16_t
	u16(const char *field)
	{
		return static_cast<uint16_t>(uint(2, field));
	}

	uint32_t
	u32(const char *field)
	{
		return static_cast<uint32_t>(uint(4, field));
	}

	uint64_t
	u64(const char *field)
	{
		return uint(8, field);
	}

	int64_t
	i64(const char *field)
	{
		return static_cast<int64_t>(uint(8, field));
	}

	double
	f64(const char *field)
	{
		uint64_t bits = uint(8, field);
		double v;
		memcpy(&v, &bits, sizeof v);
		return v;
	}

	bool
	boolean(const char *field)
	{
		if (!need(1, field))
			return false;
		uint8_t v = u8(field);
		if (v > 1) {
			error = std::string(msg_name) + " frame: field " + field + " is a bool with value " + std::to_string(v) +
					" (must be 0 or 1)";
			return false;
		}
		return v == 1;
	}

	std::string
	str(const char *field)
	{
		uint32_t len = u32(field);
		if (!need(len, field))
			return std::string();
		std::string s(reinterpret_cast<const char *>(p), len);
		p += len;
		left -= len;
		return s;
	}

	/* count_hint bounds a reserve() by what the remaining bytes could hold */
	size_t
	count_hint(uint32_t count, size_t min_item_size) const
	{
		size_t fit = left / min_item_size;
		return count < fit ? count : fit;
	}
};

void
decode_body(Reader &r, Hello &m)
{
	m.version = r.u16("version");
	m.sidecar_id = r.str("sidecar_id");
	m.pool_size = r.u32("pool_size");
}

void
decode_body(Reader &r, Welcome &m)
{
	m.version = r.u16("version");
	m.database = r.str("database");
	m.max_frame = r.u32("max_frame");
}

void
decode_body(Reader &r, Reject &m)
{
	m.reason = r.str("reason");
}

void
decode_body(Reader &r, Credit &m)
{
	m.credits = r.u32("credits");
}

void
decode_body(Reader &r, Deliver &m)
{
	m.event_id = r.str("event_id");
	m.trigger_name = r.str("trigger_name");
	m.webhook = r.str("webhook");
	m.webhook_from_env = r.boolean("webhook_from_env");
	uint32_t count = r.u32("header_count");
	m.headers.reserve(r.count_hint(count, 9));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		Header h;
		h.name = r.str("header name");
		h.value = r.str("header value");
		h.from_env = r.boolean("header from_env");
		if (r.ok())
			m.headers.push_back(std::move(h));
	}
	m.timeout_sec = r.u32("timeout_sec");
	m.attempt = r.u32("attempt");
	m.body = r.str("body");
	m.created_at_ms = r.i64("created_at_ms");
}

void
decode_body(Reader &r, Outcome &m)
{
	m.event_id = r.str("event_id");
	uint8_t kind = r.u8("kind");
	if (r.ok() && kind > static_cast<uint8_t>(OutcomeKind::ClientError))
		r.error = "Outcome frame: unknown outcome kind " + std::to_string(kind);
	m.kind = static_cast<OutcomeKind>(kind);
	m.http_status = static_cast<int32_t>(r.u32("http_status"));
	m.retry_after_sec = static_cast<int64_t>(r.u64("retry_after_sec"));
	m.response_body = r.str("response_body");
	uint32_t count = r.u32("response_header_count");
	m.response_headers.reserve(r.count_hint(count, 8));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		std::string name = r.str("response header name");
		std::string value = r.str("response header value");
		if (r.ok())
			m.response_headers.emplace_back(std::move(name), std::move(value));
	}
	m.error = r.str("error");
	m.duration_ms = r.u32("duration_ms");
}

void
decode_body(Reader &r, Ping &m)
{
	m.token = r.u64("token");
}

void
decode_body(Reader &r, Pong &m)
{
	m.token = r.u64("token");
}

void
decode_body(Reader &r, Goodbye &m)
{
	m.reason = r.str("reason");
}

void
decode_body(Reader &r, Release &m)
{
	uint32_t count = r.u32("event_count");
	m.event_ids.reserve(r.count_hint(count, 4));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		std::string id = r.str("event_id");
		if (r.ok())
			m.event_ids.push_back(std::move(id));
	}
	count = r.u32("hold_count");
	m.holds.reserve(r.count_hint(count, 8));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		Hold h;
		h.trigger_name = r.str("hold trigger_name");
		h.hold_ms = r.u32("hold_ms");
		if (r.ok())
			m.holds.push_back(std::move(h));
	}
}

void
decode_body(Reader &r, Stats &m)
{
	m.database = r.str("database");
	m.worker_restarts = r.u64("worker_restarts");
	m.inflight = r.u64("inflight");
	uint32_t count = r.u32("fetch_count");
	m.fetches.reserve(r.count_hint(count, 12));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		FetchSample f;
		f.seconds = r.f64("fetch seconds");
		f.events = r.u32("fetch events");
		if (r.ok())
			m.fetches.push_back(f);
	}
	count = r.u32("trigger_count");
	m.triggers.reserve(r.count_hint(count, 36));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		TriggerStats t;
		t.name = r.str("trigger name");
		t.pending = r.u64("trigger pending");
		t.oldest_pending_age_sec = r.f64("trigger oldest_pending_age_sec");
		t.retries_scheduled = r.u64("trigger retries_scheduled");
		t.errored = r.u64("trigger errored");
		if (r.ok())
			m.triggers.push_back(std::move(t));
	}
}

void
decode_body(Reader &r, Cancel &m)
{
	uint32_t count = r.u32("event_count");
	m.event_ids.reserve(r.count_hint(count, 4));
	for (uint32_t i = 0; i < count && r.ok(); i++) {
		std::string id = r.str("event_id");
		if (r.ok())
			m.event_ids.push_back(std::move(id));
	}
}

const char *const kTypeNames[] = {"Hello", "Welcome", "Reject",  "Credit", "Deliver", "Outcome",
								  "Ping",  "Pong",    "Goodbye", "Stats",  "Release", "Cancel"};
static_assert(sizeof(kTypeNames) / sizeof(kTypeNames[0]) == std::variant_size_v<Message>);

/*
 * decode_as decodes a body into alternative I of Message.
 */
template <size_t I>
bool
decode_as(Reader &r, Message &out, std::string &error)
{
	std::variant_alternative_t<I, Message> m;
	decode_body(r, m);
	if (r.ok() && r.left != 0)
		r.error = std::string(r.msg_name) + " frame has " + std::to_string(r.left) + " trailing bytes";
	if (!r.ok()) {
		error = std::move(r.error);
		return false;
	}
	out.emplace<I>(std::move(m));
	return true;
}

template <size_t... Is>
bool
decode_index(size_t index, Reader &r, Message &out, std::string &error, std::index_sequence<Is...>)
{
	bool result = false;
	((index == Is ? (result = decode_as<Is>(r, out, error), true) : false) || ...);
	return result;
}

} // namespace

/*
 * encode appends the frame: u32 length (type + body), u8 type, body.
 */
void
encode(const Message &msg, std::string &out)
{
	size_t start = out.size();
	Writer w{out};
	w.u32(0); /* patched below */
	w.u8(static_cast<uint8_t>(msg.index() + 1));
	std::visit([&w](const auto &m) { encode_body(w, m); }, msg);
	size_t length = out.size() - start - 4;
	if (length > UINT32_MAX) {
		out.resize(start);
		throw std::length_error("hasura_events protocol: frame longer than 4 GiB");
	}
	for (int i = 0; i < 4; i++)
		out[start + i] = static_cast<char>((length >> (8 * (3 - i))) & 0xff);
}

/*
 * encoded_size computes the frame size without building it.
 */
size_t
encoded_size(const Message &msg)
{
	struct Counter {
		size_t n = 5; /* length + type */
		void
		operator()(const Hello &m)
		{
			n += 2 + 4 + m.sidecar_id.size() + 4;
		}
		void
		operator()(const Welcome &m)
		{
			n += 2 + 4 + m.database.size() + 4;
		}
		void
		operator()(const Reject &m)
		{
			n += 4 + m.reason.size();
		}
		void
		operator()(const Credit &)
		{
			n += 4;
		}
		void
		operator()(const Deliver &m)
		{
			n += 12 + m.event_id.size() + m.trigger_name.size() + m.webhook.size() + 1 + 4;
			for (const Header &h : m.headers)
				n += 8 + h.name.size() + h.value.size() + 1;
			n += 4 + 4 + 4 + m.body.size() + 8;
		}
		void
		operator()(const Outcome &m)
		{
			n += 4 + m.event_id.size() + 1 + 4 + 8 + 4 + m.response_body.size() + 4;
			for (const auto &h : m.response_headers)
				n += 8 + h.first.size() + h.second.size();
			n += 4 + m.error.size() + 4;
		}
		void
		operator()(const Ping &)
		{
			n += 8;
		}
		void
		operator()(const Pong &)
		{
			n += 8;
		}
		void
		operator()(const Goodbye &m)
		{
			n += 4 + m.reason.size();
		}
		void
		operator()(const Stats &m)
		{
			n += 4 + m.database.size() + 8 + 8 + 4 + m.fetches.size() * 12 + 4;
			for (const TriggerStats &t : m.triggers)
				n += 4 + t.name.size() + 8 + 8 + 8 + 8;
		}
		void
		operator()(const Cancel &m)
		{
			n += 4;
			for (const std::string &id : m.event_ids)
				n += 4 + id.size();
		}
		void
		operator()(const Release &m)
		{
			n += 4 + 4;
			for (const std::string &id : m.event_ids)
				n += 4 + id.size();
			for (const Hold &h : m.holds)
				n += 4 + h.trigger_name.size() + 4;
		}
	} counter;
	std::visit(counter, msg);
	return counter.n;
}

MsgType
type_of(const Message &msg)
{
	return static_cast<MsgType>(msg.index() + 1);
}

const char *
type_name(const Message &msg)
{
	return kTypeNames[msg.index()];
}

const char *
type_name(MsgType type)
{
	auto t = static_cast<size_t>(type);
	if (t < 1 || t > std::variant_size_v<Message>)
		return "unknown";
	return kTypeNames[t - 1];
}

const char *
outcome_kind_name(OutcomeKind kind)
{
	switch (kind) {
	case OutcomeKind::Delivered: return "delivered";
	case OutcomeKind::HttpError: return "http_error";
	case OutcomeKind::ClientError: return "client_error";
	}
	return "unknown";
}

/*
 * decode_frame decodes type + body (the bytes counted by the length prefix).
 */
bool
decode_frame(const char *data, size_t len, Message &out, std::string &error)
{
	if (len == 0) {
		error = "frame of length 0";
		return false;
	}
	auto type = static_cast<uint8_t>(data[0]);
	if (type < 1 || type > std::variant_size_v<Message>) {
		error = "unknown message type " + std::to_string(type);
		return false;
	}
	Reader r{reinterpret_cast<const unsigned char *>(data) + 1, len - 1, kTypeNames[type - 1], std::string()};
	return decode_index(type - 1, r, out, error, std::make_index_sequence<std::variant_size_v<Message>>{});
}

FrameReader::FrameReader(uint32_t max_frame) : max_frame_(max_frame) {}

/*
 * FrameReader::feed appends bytes. Consumed bytes are dropped only when they are at least half
 * of the buffer, which keeps the cost per frame constant however small the frames are.
 */
void
FrameReader::feed(const char *data, size_t len)
{
	if (pos_ == buf_.size()) {
		buf_.clear();
		pos_ = 0;
	} else if (pos_ >= 4096 && pos_ * 2 >= buf_.size()) {
		buf_.erase(0, pos_);
		pos_ = 0;
	}
	buf_.append(data, len);
}

/*
 * FrameReader::next decodes the next complete frame. The length is checked as soon as its four
 * bytes are there, so an oversized frame is refused before its body is buffered.
 */
FrameReader::Result
FrameReader::next(Message &out, std::string &error)
{
	if (!error_.empty()) {
		error = error_;
		return Result::Error;
	}
	size_t avail = buf_.size() - pos_;
	if (avail < 4)
		return Result::NeedMore;
	const auto *p = reinterpret_cast<const unsigned char *>(buf_.data() + pos_);
	uint32_t length = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
	if (length == 0)
		error_ = "frame of length 0";
	else if (length > max_frame_)
		error_ = "frame of " + std::to_string(length) + " bytes exceeds the limit of " + std::to_string(max_frame_);
	if (!error_.empty()) {
		error = error_;
		return Result::Error;
	}
	if (avail - 4 < length)
		return Result::NeedMore;
	const char *frame = buf_.data() + pos_ + 4;
	pos_ += 4 + size_t(length);
	if (!decode_frame(frame, length, out, error_)) {
		if (error_.empty())
			error_ = "malformed frame";
		error = error_;
		return Result::Error;
	}
	return Result::Ok;
}

size_t
FrameReader::buffered() const
{
	return buf_.size() - pos_;
}

} // namespace hasura_events::proto
