/*
 * tests/unit/protocol_test.cpp
 *
 * The wire protocol (protocol/protocol.cpp): round trips of every message, stream reassembly,
 * every malformed case of docs/protocol.md, and a deterministic mutation fuzz loop.
 */
#include "protocol.hpp"
#include "json_text.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

using namespace hasura_events::proto;

namespace {

Deliver
sample_deliver()
{
	Deliver d;
	d.event_id = "2b5e8a7c-0000-4000-8000-000000000001";
	d.trigger_name = "user_created";
	d.webhook = "https://{{HOOK_HOST}}/events";
	d.webhook_from_env = false;
	d.headers = {{"X-Api-Key", "API_KEY", true}, {"X-Plain", "v", false}, {"Empty", "", false}};
	d.timeout_sec = 30;
	d.attempt = 4;
	d.body = std::string("{\"id\":\"x\",\"bin\":\"") + std::string("\0\xff\x80", 3) + "\"}";
	d.created_at_ms = 1716286272345; /* 2024-05-21T10:11:12.345Z */
	return d;
}

Outcome
sample_outcome()
{
	Outcome o;
	o.event_id = "2b5e8a7c-0000-4000-8000-000000000001";
	o.kind = OutcomeKind::HttpError;
	o.http_status = 503;
	o.retry_after_sec = 120;
	o.response_body = std::string("busy\0\xfe", 6);
	o.response_headers = {{"Retry-After", "120"}, {"Content-Type", "text/plain"}};
	o.error = "";
	o.duration_ms = 1234;
	return o;
}

Stats
sample_stats()
{
	const double inf = std::numeric_limits<double>::infinity();
	Stats st;
	st.database = "postgres";
	st.worker_restarts = 3;
	st.inflight = UINT64_MAX;
	st.fetches = {{0.0125, 100}, {0, 0}, {-0.0, UINT32_MAX}, {std::nan(""), 1}, {inf, 2}};
	st.triggers = {{"user_created", 42, 12.5, 7, 1}, {"", 0, -inf, 0, UINT64_MAX}, {"z\xff\n", 1, 1e300, 2, 3}};
	return st;
}

std::vector<Message>
all_messages()
{
	Outcome negative;
	negative.event_id = "e";
	negative.kind = OutcomeKind::ClientError;
	negative.http_status = -1;
	negative.retry_after_sec = INT64_MIN;
	negative.error = "Couldn't connect to server";
	Deliver before_epoch;
	before_epoch.event_id = "old";
	before_epoch.created_at_ms = -1;
	return {
		Hello{kVersion, "host:123", 100},
		Welcome{kVersion, "postgres", 1u << 20},
		Reject{"version 7 is not supported"},
		Credit{4294967295u},
		sample_deliver(),
		sample_outcome(),
		negative,
		Ping{0x0102030405060708ull},
		Pong{UINT64_MAX},
		Goodbye{"shutting down"},
		Deliver{},
		Outcome{},
		before_epoch,
		sample_stats(),
		Stats{},
		Cancel{{"2b5e8a7c-0000-4000-8000-000000000001", "", std::string("\0\xff", 2)}},
		Cancel{},

		Release{{"2b5e8a7c-0000-4000-8000-000000000001", "", "\xff"}, {{"user_created", 1000}, {"", UINT32_MAX}}},
		Release{},
	};
}

std::string
frame_of(const Message &m)
{
	std::string s;
	encode(m, s);
	return s;
}

/* raw_frame builds a frame with an arbitrary type and body */
std::string
raw_frame(uint8_t type, const std::string &body)
{
	uint32_t len = static_cast<uint32_t>(body.size() + 1);
	std::string s;
	s.push_back(char(len >> 24));
	s.push_back(char(len >> 16));
	s.push_back(char(len >> 8));
	s.push_back(char(len));
	s.push_back(char(type));
	s += body;
	return s;
}

FrameReader::Result
read_one(const std::string &bytes, Message &out, std::string &error, uint32_t max = kDefaultMaxFrame)
{
	FrameReader r(max);
	r.feed(bytes.data(), bytes.size());
	return r.next(out, error);
}

std::string
expect_error(const std::string &bytes, uint32_t max = kDefaultMaxFrame)
{
	Message m;
	std::string error;
	EXPECT_EQ(read_one(bytes, m, error, max), FrameReader::Result::Error);
	EXPECT_FALSE(error.empty());
	return error;
}

std::string &
error_sink()
{
	static std::string e;
	return e;
}

} // namespace

/* Equality for the structs, for the tests only */
namespace hasura_events::proto {
bool
operator==(const Header &a, const Header &b)
{
	return a.name == b.name && a.value == b.value && a.from_env == b.from_env;
}
bool
operator==(const Hello &a, const Hello &b)
{
	return a.version == b.version && a.sidecar_id == b.sidecar_id && a.pool_size == b.pool_size;
}
bool
operator==(const Welcome &a, const Welcome &b)
{
	return a.version == b.version && a.database == b.database && a.max_frame == b.max_frame;
}
bool
operator==(const Reject &a, const Reject &b)
{
	return a.reason == b.reason;
}
bool
operator==(const Credit &a, const Credit &b)
{
	return a.credits == b.credits;
}
bool
operator==(const Deliver &a, const Deliver &b)
{
	return a.event_id == b.event_id && a.trigger_name == b.trigger_name && a.webhook == b.webhook &&
		   a.webhook_from_env == b.webhook_from_env && a.headers == b.headers && a.timeout_sec == b.timeout_sec &&
		   a.attempt == b.attempt && a.body == b.body && a.created_at_ms == b.created_at_ms;
}
bool
operator==(const Outcome &a, const Outcome &b)
{
	return a.event_id == b.event_id && a.kind == b.kind && a.http_status == b.http_status &&
		   a.retry_after_sec == b.retry_after_sec && a.response_body == b.response_body &&
		   a.response_headers == b.response_headers && a.error == b.error && a.duration_ms == b.duration_ms;
}
bool
operator==(const Ping &a, const Ping &b)
{
	return a.token == b.token;
}
bool
operator==(const Pong &a, const Pong &b)
{
	return a.token == b.token;
}
bool
operator==(const Goodbye &a, const Goodbye &b)
{
	return a.reason == b.reason;
}
bool
operator==(const Cancel &a, const Cancel &b)
{
	return a.event_ids == b.event_ids;
}
bool
operator==(const Release &a, const Release &b)
{
	if (a.event_ids != b.event_ids || a.holds.size() != b.holds.size())
		return false;
	for (size_t i = 0; i < a.holds.size(); i++)
		if (a.holds[i].trigger_name != b.holds[i].trigger_name || a.holds[i].hold_ms != b.holds[i].hold_ms)
			return false;
	return true;
}
/* doubles compare by their bits, so NaN equals itself and -0 differs from 0 */
bool
same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof a) == 0;
}
bool
operator==(const Stats &a, const Stats &b)
{
	if (a.database != b.database || a.worker_restarts != b.worker_restarts || a.inflight != b.inflight ||
		a.fetches.size() != b.fetches.size() || a.triggers.size() != b.triggers.size())
		return false;
	for (size_t i = 0; i < a.fetches.size(); i++) {
		if (!same_bits(a.fetches[i].seconds, b.fetches[i].seconds) || a.fetches[i].events != b.fetches[i].events)
			return false;
	}
	for (size_t i = 0; i < a.triggers.size(); i++) {
		const TriggerStats &x = a.triggers[i], &y = b.triggers[i];
		if (x.name != y.name || x.pending != y.pending ||
			!same_bits(x.oldest_pending_age_sec, y.oldest_pending_age_sec) ||
			x.retries_scheduled != y.retries_scheduled || x.errored != y.errored)
			return false;
	}
	return true;
}
} // namespace hasura_events::proto

TEST(Protocol, RoundTripEveryMessage)
{
	for (const Message &m : all_messages()) {
		std::string bytes = frame_of(m);
		EXPECT_EQ(bytes.size(), encoded_size(m)) << type_name(m);
		Message out;
		std::string error;
		FrameReader r;
		r.feed(bytes.data(), bytes.size());
		ASSERT_EQ(r.next(out, error), FrameReader::Result::Ok) << type_name(m) << ": " << error;
		EXPECT_EQ(out.index(), m.index());
		EXPECT_TRUE(out == m) << type_name(m);
		EXPECT_EQ(r.buffered(), 0u);
		EXPECT_EQ(r.next(out, error), FrameReader::Result::NeedMore);
	}
}

TEST(Protocol, WireLayoutIsBigEndian)
{
	std::string bytes = frame_of(Credit{0x01020304});
	EXPECT_EQ(bytes, std::string("\x00\x00\x00\x05\x04\x01\x02\x03\x04", 9));
	bytes = frame_of(Hello{1, "ab", 2});
	EXPECT_EQ(bytes, std::string("\x00\x00\x00\x0d\x01\x00\x01\x00\x00\x00\x02"
								 "ab\x00\x00\x00\x02",
								 17));
}

TEST(Protocol, F64IsBinary64BitsBigEndian)
{
	Stats st;
	st.fetches = {{1.5, 7}};
	std::string body = frame_of(st).substr(5);
	/* database "" (u32 0), worker_restarts, inflight (2 x u64 0), fetch_count 1, then f64 1.5 = 0x3FF8000000000000 */
	std::string expected = std::string(4 + 8 + 8, '\0') + std::string("\x00\x00\x00\x01", 4) +
						   std::string("\x3f\xf8\x00\x00\x00\x00\x00\x00", 8) + std::string("\x00\x00\x00\x07", 4) +
						   std::string("\x00\x00\x00\x00", 4);
	EXPECT_EQ(body, expected);
	EXPECT_EQ(frame_of(st)[4], '\x0a') << "Stats is type 10";
}

TEST(Protocol, DeliverCreatedAtIsTrailingI64)
{
	Deliver d;
	d.created_at_ms = -2;
	std::string bytes = frame_of(d);
	EXPECT_EQ(bytes.substr(bytes.size() - 8), std::string("\xff\xff\xff\xff\xff\xff\xff\xfe", 8));
	/* a Deliver without the field (the layout before it was added) is too short */
	std::string old_body = bytes.substr(5, bytes.size() - 5 - 8);
	std::string error = expect_error(raw_frame(5, old_body));
	EXPECT_NE(error.find("field created_at_ms"), std::string::npos) << error;
}

TEST(Protocol, ReleaseLayout)
{
	std::string bytes = frame_of(Release{{"ab"}, {{"t", 0x01020304}}});
	EXPECT_EQ(bytes, std::string("\x00\x00\x00\x18\x0b"
								 "\x00\x00\x00\x01\x00\x00\x00\x02"
								 "ab"
								 "\x00\x00\x00\x01\x00\x00\x00\x01"
								 "t"
								 "\x01\x02\x03\x04",
								 28))
		<< "Release is type 11: event_count, event ids, hold_count, (trigger, hold_ms)";
	/* a huge count is refused from the bytes present, without allocating for it */
	std::string body = frame_of(Release{}).substr(5);
	body.replace(0, 4, std::string("\xff\xff\xff\xff", 4));
	std::string error = expect_error(raw_frame(11, body));
	EXPECT_NE(error.find("Release frame too short: field event_id"), std::string::npos) << error;
	body = frame_of(Release{}).substr(5);
	body.replace(4, 4, std::string("\x00\x00\x00\x01", 4));
	error = expect_error(raw_frame(11, body));
	EXPECT_NE(error.find("Release frame too short: field hold trigger_name"), std::string::npos) << error;
}

TEST(Protocol, StatsKeepsNonFiniteValues)
{
	Message out;
	std::string error;
	ASSERT_EQ(read_one(frame_of(sample_stats()), out, error), FrameReader::Result::Ok) << error;
	const Stats &st = std::get<Stats>(out);
	EXPECT_TRUE(std::isnan(st.fetches[3].seconds));
	EXPECT_TRUE(std::isinf(st.fetches[4].seconds));
	EXPECT_TRUE(std::signbit(st.fetches[2].seconds));
	EXPECT_EQ(st.triggers[1].oldest_pending_age_sec, -std::numeric_limits<double>::infinity());
	EXPECT_EQ(st.triggers[2].name, "z\xff\n");
	EXPECT_EQ(st.inflight, UINT64_MAX);
}

TEST(Protocol, HugeStatsCountsDoNotAllocate)
{
	std::string body = frame_of(Stats{}).substr(5);
	/* database (u32 0), two u64, then fetch_count */
	std::string fetches = body;
	fetches.replace(20, 4, std::string("\xff\xff\xff\xff", 4));
	std::string error = expect_error(raw_frame(10, fetches));
	EXPECT_NE(error.find("Stats frame too short: field fetch seconds"), std::string::npos) << error;
	std::string triggers = body;
	triggers.replace(24, 4, std::string("\xff\xff\xff\xf0", 4));
	error = expect_error(raw_frame(10, triggers));
	EXPECT_NE(error.find("Stats frame too short: field trigger name"), std::string::npos) << error;
}

TEST(Protocol, TypeNames)
{
	EXPECT_STREQ(type_name(Message{Deliver{}}), "Deliver");
	EXPECT_STREQ(type_name(Message{Goodbye{}}), "Goodbye");
	EXPECT_STREQ(type_name(MsgType::Hello), "Hello");
	EXPECT_STREQ(type_name(static_cast<MsgType>(0)), "unknown");
	EXPECT_STREQ(type_name(Message{Stats{}}), "Stats");
	EXPECT_EQ(type_of(Message{Stats{}}), MsgType::Stats);
	EXPECT_STREQ(type_name(Message{Release{}}), "Release");
	EXPECT_EQ(type_of(Message{Release{}}), MsgType::Release);
	EXPECT_EQ(type_of(Message{Outcome{}}), MsgType::Outcome);
	EXPECT_STREQ(outcome_kind_name(OutcomeKind::HttpError), "http_error");
}

TEST(Protocol, CancelLayout)
{
	EXPECT_EQ(frame_of(Cancel{{"ab", "c"}}), std::string("\0\0\0\x10\x0c"
														 "\0\0\0\x02"
														 "\0\0\0\x02"
														 "ab"
														 "\0\0\0\x01"
														 "c",
														 20));
	EXPECT_EQ(type_of(Message{Cancel{}}), MsgType::Cancel);
	EXPECT_EQ(static_cast<int>(MsgType::Cancel), 12);
	EXPECT_STREQ(type_name(Message{Cancel{}}), "Cancel");
	EXPECT_STREQ(type_name(MsgType::Cancel), "Cancel");
	/* a count far beyond the bytes present: refused without reserving for it */
	std::string error = expect_error(raw_frame(12, std::string("\xff\xff\xff\xff\0\0\0\x01x", 9)));
	EXPECT_NE(error.find("Cancel frame too short: field event_id"), std::string::npos) << error;
}

/* The bounds a worker applies to a sidecar's frames: the header alone refuses a frame beyond
 * them, so a peer that announces 200 MiB and trickles it in costs nothing. */
TEST(Protocol, SidecarFrameBounds)
{
	std::string huge("\x0c\x80\0\0", 4); /* 200 MiB */
	EXPECT_NE(expect_error(huge, kMaxHelloFrame).find("exceeds the limit of 65536"), std::string::npos);
	EXPECT_NE(expect_error(huge, kMaxSidecarFrame).find("exceeds the limit of 4194304"), std::string::npos);
	/* the largest Outcome the default sidecar sends (64 KiB of body, headers, an error) fits with
	 * a wide margin; a Hello fits before the raise */
	Outcome o = sample_outcome();
	o.response_body.assign(65536, 'x');
	o.response_headers.assign(100, {std::string(100, 'h'), std::string(1000, 'v')});
	o.error.assign(4096, 'e');
	EXPECT_LT(encoded_size(o) * 16, size_t(kMaxSidecarFrame));
	EXPECT_LT(encoded_size(Hello{kVersion, std::string(1024, 'i'), 100}), size_t(kMaxHelloFrame));
	/* raised after a frame was decoded: the next frame may be as large as the new bound */
	FrameReader r(kMaxHelloFrame);
	std::string bytes = frame_of(Hello{kVersion, "sc", 1}) + frame_of(o);
	ASSERT_GT(encoded_size(o), size_t(kMaxHelloFrame));
	r.feed(bytes.data(), bytes.size());
	Message m;
	ASSERT_EQ(r.next(m, error_sink()), FrameReader::Result::Ok);
	r.set_max_frame(kMaxSidecarFrame);
	ASSERT_EQ(r.next(m, error_sink()), FrameReader::Result::Ok);
	EXPECT_TRUE(std::get<Outcome>(m) == o);
}

TEST(Protocol, ByteByByteFeeding)
{
	std::string stream;
	std::vector<Message> msgs = all_messages();
	for (const Message &m : msgs)
		encode(m, stream);
	FrameReader r;
	std::vector<Message> got;
	for (char c : stream) {
		r.feed(&c, 1);
		Message out;
		std::string error;
		FrameReader::Result res;
		while ((res = r.next(out, error)) == FrameReader::Result::Ok)
			got.push_back(out);
		ASSERT_EQ(res, FrameReader::Result::NeedMore) << error;
	}
	ASSERT_EQ(got.size(), msgs.size());
	for (size_t i = 0; i < msgs.size(); i++)
		EXPECT_TRUE(got[i] == msgs[i]) << i;
	EXPECT_EQ(r.buffered(), 0u);
}

TEST(Protocol, ManyFramesInOneFeed)
{
	const int n = 100000;
	std::string stream;
	for (int i = 0; i < n; i++)
		encode(Ping{uint64_t(i)}, stream);
	FrameReader r;
	/* feed in uneven chunks so frames straddle the chunk borders and compaction happens */
	size_t off = 0, chunk = 1;
	int count = 0;
	while (off < stream.size()) {
		size_t len = std::min(chunk, stream.size() - off);
		r.feed(stream.data() + off, len);
		off += len;
		chunk = chunk * 7 % 65521 + 1;
		Message out;
		std::string error;
		while (r.next(out, error) == FrameReader::Result::Ok) {
			ASSERT_EQ(std::get<Ping>(out).token, uint64_t(count));
			count++;
		}
		ASSERT_TRUE(error.empty()) << error;
	}
	EXPECT_EQ(count, n);
	EXPECT_EQ(r.buffered(), 0u);

	FrameReader all;
	all.feed(stream.data(), stream.size());
	Message out;
	std::string error;
	count = 0;
	while (all.next(out, error) == FrameReader::Result::Ok)
		count++;
	EXPECT_EQ(count, n);
}

TEST(Protocol, ZeroLengthIsMalformed)
{
	std::string error = expect_error(std::string("\0\0\0\0", 4));
	EXPECT_NE(error.find("length 0"), std::string::npos) << error;
}

TEST(Protocol, OversizedFrameRefusedBeforeBody)
{
	std::string error = expect_error(std::string("\x23\xc3\x46\x00", 4)); /* 600000000 */
	EXPECT_EQ(error, "frame of 600000000 bytes exceeds the limit of 536870912");
	/* a small limit */
	std::string bytes = frame_of(Reject{"0123456789"});
	error = expect_error(bytes, 10);
	EXPECT_NE(error.find("exceeds the limit of 10"), std::string::npos) << error;
	Message m;
	EXPECT_EQ(read_one(bytes, m, error, 15), FrameReader::Result::Ok); /* 1 + 4 + 10 */
}

TEST(Protocol, UnknownTypeIsMalformed)
{
	EXPECT_EQ(expect_error(raw_frame(0, "")), "unknown message type 0");
	EXPECT_EQ(expect_error(raw_frame(std::variant_size_v<Message> + 1, "abc")),
			  "unknown message type " + std::to_string(std::variant_size_v<Message> + 1));
	EXPECT_EQ(expect_error(raw_frame(255, "")), "unknown message type 255");
}

TEST(Protocol, ShortBodyIsMalformed)
{
	/* every message truncated at every possible point */
	for (const Message &m : all_messages()) {
		std::string full = frame_of(m);
		std::string body = full.substr(5);
		for (size_t cut = 0; cut < body.size(); cut++) {
			std::string error = expect_error(raw_frame(uint8_t(m.index() + 1), body.substr(0, cut)));
			EXPECT_NE(error.find("too short"), std::string::npos) << type_name(m) << " cut " << cut << ": " << error;
		}
	}
	/* a string length pointing past the end of the frame */
	std::string error = expect_error(raw_frame(3, std::string("\xff\xff\xff\xff", 4) + "abc"));
	EXPECT_NE(error.find("Reject frame too short: field reason"), std::string::npos) << error;
}

TEST(Protocol, HugeHeaderCountDoesNotAllocate)
{
	Deliver d;
	std::string body = frame_of(d).substr(5);
	/* event_id, trigger_name, webhook (3 x u32 0), bool, then header_count */
	size_t count_at = 4 * 3 + 1;
	body.replace(count_at, 4, std::string("\xff\xff\xff\xff", 4));
	std::string error = expect_error(raw_frame(5, body));
	EXPECT_NE(error.find("too short"), std::string::npos) << error;
}

TEST(Protocol, TrailingBytesAreMalformed)
{
	for (const Message &m : all_messages()) {
		std::string body = frame_of(m).substr(5) + "X";
		std::string error = expect_error(raw_frame(uint8_t(m.index() + 1), body));
		EXPECT_NE(error.find("1 trailing bytes"), std::string::npos) << error;
	}
}

TEST(Protocol, BadBoolIsMalformed)
{
	Deliver d = sample_deliver();
	d.headers.clear();
	std::string body = frame_of(d).substr(5);
	size_t flag_at = 4 * 3 + d.event_id.size() + d.trigger_name.size() + d.webhook.size();
	ASSERT_EQ(body[flag_at], '\0');
	body[flag_at] = 2;
	std::string error = expect_error(raw_frame(5, body));
	EXPECT_NE(error.find("webhook_from_env is a bool with value 2"), std::string::npos) << error;

	Deliver h;
	h.headers = {{"a", "b", true}};
	body = frame_of(h).substr(5);
	/* 3 empty strings, bool, count, name "a", value "b", then the header bool */
	size_t hflag = 12 + 1 + 4 + 5 + 5;
	ASSERT_EQ(body[hflag], '\1');
	body[hflag] = '\x80';
	error = expect_error(raw_frame(5, body));
	EXPECT_NE(error.find("header from_env is a bool with value 128"), std::string::npos) << error;
}

TEST(Protocol, UnknownOutcomeKindIsMalformed)
{
	Outcome o;
	o.event_id = "e";
	std::string body = frame_of(o).substr(5);
	body[5] = 3;
	std::string error = expect_error(raw_frame(6, body));
	EXPECT_EQ(error, "Outcome frame: unknown outcome kind 3");
}

TEST(Protocol, ErrorIsSticky)
{
	FrameReader r;
	std::string bad("\0\0\0\0", 4), good = frame_of(Ping{1});
	r.feed(bad.data(), bad.size());
	r.feed(good.data(), good.size());
	Message m;
	std::string e1, e2;
	EXPECT_EQ(r.next(m, e1), FrameReader::Result::Error);
	EXPECT_EQ(r.next(m, e2), FrameReader::Result::Error);
	EXPECT_EQ(e1, e2);
}

TEST(Protocol, GoodFrameAfterBadOneInSameFeedIsNotDecoded)
{
	FrameReader r;
	std::string s = frame_of(Ping{7}) + raw_frame(42, "") + frame_of(Ping{8});
	r.feed(s.data(), s.size());
	Message m;
	std::string error;
	ASSERT_EQ(r.next(m, error), FrameReader::Result::Ok);
	EXPECT_EQ(std::get<Ping>(m).token, 7u);
	EXPECT_EQ(r.next(m, error), FrameReader::Result::Error);
}

/*
 * MutationFuzz mutates valid frames (bit flips, byte overwrites, truncation, insertion,
 * length-prefix damage) and feeds them in random chunks. Nothing may crash; whatever decodes
 * must re-encode to a frame that decodes to the same thing.
 */
TEST(Protocol, MutationFuzz)
{
	std::mt19937 rng(20240521);
	std::vector<std::string> seeds;
	for (const Message &m : all_messages())
		seeds.push_back(frame_of(m));
	int ok = 0, errors = 0, need_more = 0;
	for (int iter = 0; iter < 20000; iter++) {
		std::string s = seeds[rng() % seeds.size()];
		int mutations = 1 + rng() % 4;
		for (int k = 0; k < mutations && !s.empty(); k++) {
			size_t at = rng() % s.size();
			switch (rng() % 6) {
			case 0: s[at] = char(s[at] ^ (1 << (rng() % 8))); break;
			case 1: s[at] = char(rng()); break;
			case 2: s.resize(at); break;
			case 3: s.insert(at, 1, char(rng())); break;
			case 4: /* damage the length prefix */ s[rng() % std::min<size_t>(4, s.size())] = char(rng()); break;
			case 5: /* a string length field set to something large */
				if (s.size() >= at + 4)
					s.replace(at, 4, std::string("\x7f\xff\xff\xf0", 4));
				break;
			}
		}
		FrameReader r(1u << 20);
		size_t off = 0;
		FrameReader::Result res = FrameReader::Result::NeedMore;
		while (off < s.size() && res != FrameReader::Result::Error) {
			size_t len = std::min<size_t>(1 + rng() % 16, s.size() - off);
			r.feed(s.data() + off, len);
			off += len;
			Message m;
			std::string error;
			while ((res = r.next(m, error)) == FrameReader::Result::Ok) {
				ok++;
				std::string again = frame_of(m);
				Message m2;
				std::string e2;
				ASSERT_EQ(read_one(again, m2, e2), FrameReader::Result::Ok) << e2;
				ASSERT_EQ(frame_of(m2), again);
			}
			if (res == FrameReader::Result::Error) {
				ASSERT_FALSE(error.empty());
				errors++;
			}
		}
		if (res == FrameReader::Result::NeedMore)
			need_more++;
	}
	/* the mutations must exercise all three paths */
	EXPECT_GT(ok, 100);
	EXPECT_GT(errors, 1000);
	EXPECT_GT(need_more, 100);
}

/* protocol/json_text.cpp: the text checks and encodings behind the invocation-log JSON */
TEST(JsonText, Utf8Text)
{
	using hasura_events::is_utf8_text;
	EXPECT_TRUE(is_utf8_text("", false));
	EXPECT_TRUE(is_utf8_text("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", false));
	EXPECT_TRUE(is_utf8_text(std::string("a\0b", 3), false)) << "NUL is valid UTF-8 (the writer replaces it)";
	EXPECT_FALSE(is_utf8_text("\xff", true));
	EXPECT_FALSE(is_utf8_text("\xed\xa0\x80", true)) << "an encoded surrogate";
	EXPECT_FALSE(is_utf8_text("\xc0\xaf", true)) << "overlong";
	EXPECT_FALSE(is_utf8_text("\xf4\x90\x80\x80", true)) << "above U+10FFFF";
	/* a sequence cut by the end of the text, only when allowed and only when it could be valid */
	EXPECT_FALSE(is_utf8_text("ok \xe2\x82", false));
	EXPECT_TRUE(is_utf8_text("ok \xe2\x82", true));
	EXPECT_TRUE(is_utf8_text("ok \xf4", true));
	EXPECT_TRUE(is_utf8_text("ok \xe0", true));
	EXPECT_TRUE(is_utf8_text("ok \xed\x9f", true));
	EXPECT_FALSE(is_utf8_text("ok \xe0\x80", true)) << "overlong whatever follows";
	EXPECT_FALSE(is_utf8_text("ok \xed\xa0", true)) << "a surrogate whatever follows";
	EXPECT_FALSE(is_utf8_text("ok \xf4\x90", true)) << "above U+10FFFF whatever follows";
	EXPECT_FALSE(is_utf8_text("\xe2\x82 ok", true)) << "cut in the middle";
}

TEST(JsonText, Base64AndBlob)
{
	auto b64 = [](std::string_view s) {
		std::string out;
		hasura_events::append_base64(out, s);
		return out;
	};
	EXPECT_EQ(b64(""), "");
	EXPECT_EQ(b64("f"), "Zg==");
	EXPECT_EQ(b64("fo"), "Zm8=");
	EXPECT_EQ(b64("foo"), "Zm9v");
	EXPECT_EQ(b64("foobar"), "Zm9vYmFy");
	EXPECT_EQ(b64(std::string("\xff\xfe\xfd\0", 4)), "//79AA==");
	auto blob = [](std::string_view s) {
		std::string out;
		hasura_events::append_json_blob(out, s);
		return out;
	};
	EXPECT_EQ(blob("text \"q\""), "\"text \\\"q\\\"\"");
	EXPECT_EQ(blob(std::string("n\0", 2)), "\"n\xef\xbf\xbd\"");
	EXPECT_EQ(blob("\xff"), "[\"Base64\", \"/w==\"]");
}
