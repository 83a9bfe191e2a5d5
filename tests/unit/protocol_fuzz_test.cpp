/*
 * tests/unit/protocol_fuzz_test.cpp
 *
 * A deterministic, seeded mutation fuzzer of the protocol codec (protocol/protocol.cpp): valid
 * frames of every message type are truncated, bit-flipped, overwritten, spliced, given huge
 * length prefixes or huge string lengths, or replaced by random bytes, and fed both to
 * decode_frame and, in random chunks, to a FrameReader. The suite unit-asan runs it under
 * AddressSanitizer and UndefinedBehaviorSanitizer, which turn any out-of-bounds read, overflow
 * or use of freed memory into a failure.
 *
 * Properties checked on every input:
 *  - decoding never throws: protocol.hpp promises only std::bad_alloc, and these inputs are a
 *    few KiB, so even that would mean a length trusted before it was checked;
 *  - a malformed input is reported with a non-empty error, and a FrameReader's error is sticky;
 *  - whatever decodes re-encodes to exactly the bytes it was decoded from (the encoding is
 *    canonical: strict booleans, no trailing bytes), and a valid frame round-trips.
 */
#include "protocol.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <variant>

using namespace hasura_events::proto;

namespace {

constexpr uint32_t kFuzzMaxFrame = 1u << 20;
/* the message types: one per alternative of Message, numbered from 1 */
constexpr int kTypes = int(std::variant_size_v<Message>);

/* seed_messages: at least one message of every type, with empty, long and binary fields */
std::vector<Message>
seed_messages()
{
	Deliver d;
	d.event_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
	d.trigger_name = "orders_created";
	d.webhook = "https://{{HOOK_HOST}}/orders";
	d.webhook_from_env = false;
	d.headers = {{"X-Api-Key", "API_KEY", true}, {"X-Plain", "v", false}, {"", "", false}};
	d.timeout_sec = 60;
	d.attempt = 3;
	d.body = std::string("{\"id\":\"x\",\"bin\":\"") + std::string("\0\xff\x80", 3) + "\"}";
	d.created_at_ms = -1;
	Deliver from_env;
	from_env.event_id = "e2";
	from_env.webhook = "HOOK_URL";
	from_env.webhook_from_env = true;
	from_env.body = std::string(300, 'b');
	Outcome o;
	o.event_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
	o.kind = OutcomeKind::HttpError;
	o.http_status = 503;
	o.retry_after_sec = 30;
	o.response_body = std::string("busy\0\xfe", 6);
	o.response_headers = {{"Retry-After", "30"}, {"Content-Type", "text/plain"}};
	o.duration_ms = 17;
	Outcome failed;
	failed.event_id = "e3";
	failed.kind = OutcomeKind::ClientError;
	failed.http_status = -1;
	failed.retry_after_sec = INT64_MIN;
	failed.error = "Couldn't connect to server";
	Outcome delivered;
	delivered.event_id = "e4";
	delivered.kind = OutcomeKind::Delivered;
	delivered.http_status = 200;
	Stats st;
	st.database = "postgres";
	st.worker_restarts = 2;
	st.inflight = 17;
	st.fetches = {{0.0125, 100}, {-0.0, UINT32_MAX}, {std::nan(""), 1}, {std::numeric_limits<double>::infinity(), 2}};
	st.triggers = {{"orders_created", 42, 12.5, 7, 1}, {"", 0, -1e300, 0, UINT64_MAX}};
	return {
		Hello{kVersion, "host:123", 100},
		Hello{},
		Welcome{kVersion, "postgres", 1u << 20},
		Reject{"version 7 is not supported"},
		Credit{4294967295u},
		Credit{1},
		d,
		from_env,
		Deliver{},
		o,
		failed,
		delivered,
		Ping{0x0102030405060708ull},
		Pong{UINT64_MAX},
		Goodbye{"shutting down"},
		Goodbye{},
		st,
		Stats{},
		Release{{"e1", "", std::string(70, 'r')}, {{"orders_created", 30000}, {"", 0}}},
		Release{},
		Cancel{{"e2", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"}},
		Cancel{},
	};
}

std::string
frame_of(const Message &m)
{
	std::string s;
	encode(m, s);
	return s;
}

void
put_u32(std::string &s, size_t at, uint32_t v)
{
	for (int i = 0; i < 4 && at + i < s.size(); i++)
		s[at + i] = char(v >> (24 - 8 * i));
}

/* the lengths a hostile or corrupt peer is most likely to send */
uint32_t
huge_length(std::mt19937 &rng)
{
	static const std::array<uint32_t, 8> lengths = {0u,          1u,          kFuzzMaxFrame, kFuzzMaxFrame + 1,
													0x7fffffffu, 0x80000000u, 0xfffffffeu,   0xffffffffu};
	return lengths[rng() % lengths.size()];
}

/* mutate applies one random damage to s */
void
mutate(std::string &s, std::mt19937 &rng, const std::vector<std::string> &seeds)
{
	if (s.empty()) {
		s.push_back(char(rng()));
		return;
	}
	size_t at = rng() % s.size();
	switch (rng() % 10) {
	case 0: s[at] = char(s[at] ^ (1u << (rng() % 8))); break; /* bit flip */
	case 1: s[at] = char(rng()); break;                       /* byte overwrite */
	case 2: s.resize(at); break;                              /* truncation */
	case 3: s.insert(at, 1, char(rng())); break;              /* insertion */
	case 4: s.erase(at, 1 + rng() % 8); break;                /* deletion */
	case 5: put_u32(s, 0, huge_length(rng)); break;           /* the frame's length prefix */
	case 6: put_u32(s, at, huge_length(rng)); break;          /* a string length or a count */
	case 7: s[at] = char(1 + rng() % (kTypes + 2)); break;    /* a type byte or a small count */
	case 8: {                                                 /* splice: the tail of another frame */
		const std::string &other = seeds[rng() % seeds.size()];
		s.resize(at);
		s += other.substr(rng() % other.size());
		break;
	}
	case 9: /* a run of random bytes */
		for (size_t n = 1 + rng() % 16, i = at; n > 0 && i < s.size(); n--, i++)
			s[i] = char(rng());
		break;
	}
}

/* the body of a frame: what follows the length prefix (decode_frame's input) */
std::string
body_of(const std::string &frame)
{
	return frame.size() > 4 ? frame.substr(4) : std::string();
}

struct Counts {
	std::array<int, kTypes + 1> ok_by_type{}; /* index: MsgType */
	int ok = 0, errors = 0, need_more = 0;
};

/*
 * check_decode_frame runs decode_frame on body; a message that decodes must re-encode to the
 * frame it came from.
 */
void
check_decode_frame(const std::string &body, Counts &counts)
{
	Message m;
	std::string error;
	bool ok = false;
	try {
		ok = decode_frame(body.data(), body.size(), m, error);
	} catch (const std::exception &e) {
		FAIL() << "decode_frame threw " << e.what() << " on " << body.size() << " bytes";
	} catch (...) {
		FAIL() << "decode_frame threw a non-std exception";
	}
	if (!ok) {
		ASSERT_FALSE(error.empty());
		return;
	}
	ASSERT_LE(size_t(type_of(m)), size_t(kTypes));
	std::string again = frame_of(m);
	ASSERT_EQ(again.size(), body.size() + 4);
	ASSERT_EQ(again.substr(4), body);
	counts.ok_by_type[size_t(type_of(m))]++;
}

/*
 * check_reader feeds bytes to a FrameReader in random chunks; every frame it returns re-encodes
 * to the bytes it was read from, and an error is sticky.
 */
void
check_reader(const std::string &bytes, std::mt19937 &rng, Counts &counts)
{
	FrameReader r(kFuzzMaxFrame);
	size_t off = 0, consumed = 0;
	FrameReader::Result res = FrameReader::Result::NeedMore;
	try {
		while (off < bytes.size() && res != FrameReader::Result::Error) {
			size_t len = std::min<size_t>(1 + rng() % 64, bytes.size() - off);
			r.feed(bytes.data() + off, len);
			off += len;
			Message m;
			std::string error;
			while ((res = r.next(m, error)) == FrameReader::Result::Ok) {
				std::string again = frame_of(m);
				ASSERT_LE(consumed + again.size(), bytes.size());
				ASSERT_EQ(again, bytes.substr(consumed, again.size()));
				consumed += again.size();
				counts.ok++;
			}
			if (res == FrameReader::Result::Error) {
				ASSERT_FALSE(error.empty());
				std::string again;
				ASSERT_EQ(r.next(m, again), FrameReader::Result::Error);
				counts.errors++;
			}
		}
	} catch (const std::exception &e) {
		FAIL() << "FrameReader threw " << e.what();
	} catch (...) {
		FAIL() << "FrameReader threw a non-std exception";
	}
	if (res == FrameReader::Result::NeedMore) {
		ASSERT_EQ(r.buffered(), bytes.size() - consumed);
		counts.need_more++;
	}
}

} // namespace

TEST(ProtocolFuzz, ValidFramesRoundTrip)
{
	Counts counts;
	for (const Message &m : seed_messages()) {
		std::string f = frame_of(m);
		ASSERT_EQ(f.size(), encoded_size(m));
		check_decode_frame(body_of(f), counts);
		std::mt19937 rng(7);
		check_reader(f + f, rng, counts);
	}
	for (int t = 1; t <= kTypes; t++)
		EXPECT_GT(counts.ok_by_type[t], 0) << "no seed of type " << type_name(MsgType(t));
	EXPECT_EQ(counts.errors, 0);
}

TEST(ProtocolFuzz, MutatedFramesNeverCrash)
{
	std::mt19937 rng(20240521);
	std::vector<std::string> seeds;
	for (const Message &m : seed_messages())
		seeds.push_back(frame_of(m));
	Counts counts;
	constexpr int kIterations = 500000;
	for (int iter = 0; iter < kIterations; iter++) {
		std::string s;
		if (iter % 50 == 0) { /* random bytes, sometimes after a plausible prefix */
			s.resize(rng() % 64);
			for (char &c : s)
				c = char(rng());
			if (s.size() > 5 && rng() % 2)
				put_u32(s, 0, uint32_t(s.size() - 4));
		} else {
			s = seeds[rng() % seeds.size()];
			for (int k = 0, n = 1 + rng() % 4; k < n; k++)
				mutate(s, rng, seeds);
		}
		check_decode_frame(body_of(s), counts);
		if (testing::Test::HasFatalFailure())
			return;
		/* the reader sees the damaged frame, sometimes followed by a valid one */
		if (rng() % 4 == 0)
			s += seeds[rng() % seeds.size()];
		check_reader(s, rng, counts);
		if (testing::Test::HasFatalFailure())
			return;
	}
	/* the mutations reach every path: decodes of every type, errors, incomplete frames */
	for (int t = 1; t <= kTypes; t++)
		EXPECT_GT(counts.ok_by_type[t], 10) << "mutations of " << type_name(MsgType(t)) << " never decoded";
	EXPECT_GT(counts.ok, 10000);
	EXPECT_GT(counts.errors, 10000);
	EXPECT_GT(counts.need_more, 10000);
}
