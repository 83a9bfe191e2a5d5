/*
 * tests/unit/core_test.cpp
 *
 * Unit tests of the extension's pure C++ parts: argument validators, the event JSON writer,
 * the retry policy, the invocation-log JSON and the dispatcher's bookkeeping (handshake,
 * credits, claims, outcomes, returned claims).
 */
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "dispatch.hpp"
#include "event_json.hpp"
#include "json_text.hpp"
#include "protocol.hpp"
#include "repeat_limiter.hpp"
#include "validation.hpp"

/* the version dispatch.cpp names in the User-Agent it logs (the Makefiles define it) */
#ifdef HASURA_EVENTS_VERSION
#define HASURA_EVENTS_VERSION_FOR_TEST HASURA_EVENTS_VERSION
#else
#define HASURA_EVENTS_VERSION_FOR_TEST "unknown"
#endif

#define FFFD "\xef\xbf\xbd" /* U+FFFD as the writers put it */

using namespace hasura_events;
namespace proto = hasura_events::proto;

namespace {

struct StringSink {
	std::string s;
	void
	append(const char *d, size_t n)
	{
		s.append(d, n);
	}
};

} // namespace

TEST(Validation, TriggerNames)
{
	EXPECT_EQ(trigger_name_problem("orders"), "");
	EXPECT_EQ(trigger_name_problem("Order_created-v2"), "");
	EXPECT_EQ(trigger_name_problem(std::string(42, 'a')), "");
	EXPECT_NE(trigger_name_problem(std::string(43, 'a')).find("43 characters"), std::string::npos);
	EXPECT_NE(trigger_name_problem(""), "");
	EXPECT_NE(trigger_name_problem("1abc").find("start with a letter"), std::string::npos);
	EXPECT_NE(trigger_name_problem("_abc"), "");
	EXPECT_NE(trigger_name_problem("a b"), "");
	EXPECT_NE(trigger_name_problem("a.b"), "");
	EXPECT_NE(trigger_name_problem("ünï"), "");
}

TEST(Validation, EnvNames)
{
	EXPECT_EQ(env_name_problem("WEBHOOK_URL"), "");
	EXPECT_EQ(env_name_problem("_x1"), "");
	EXPECT_NE(env_name_problem(""), "");
	EXPECT_NE(env_name_problem("1X"), "");
	EXPECT_NE(env_name_problem("A-B"), "");
	EXPECT_NE(env_name_problem("HASURA_GRAPHQL_ADMIN_SECRET").find("reserved"), std::string::npos);
}

TEST(Validation, Webhooks)
{
	EXPECT_EQ(webhook_problem("https://example.com/hook"), "");
	EXPECT_EQ(webhook_problem("HTTP://example.com"), "");
	EXPECT_EQ(webhook_problem("{{BASE_URL}}/hook"), "");
	EXPECT_EQ(webhook_problem("https://{{HOST}}/x/{{PATH_PART}}"), "");
	EXPECT_NE(webhook_problem(""), "");
	EXPECT_NE(webhook_problem("ftp://example.com").find("not supported"), std::string::npos);
	EXPECT_NE(webhook_problem("example.com/hook"), "");
	EXPECT_NE(webhook_problem("https://"), "");
	EXPECT_NE(webhook_problem("https://a b"), "");
	EXPECT_NE(webhook_problem("{{BASE_URL/hook").find("not closed"), std::string::npos);
	EXPECT_NE(webhook_problem("{{1BAD}}/x"), "");
	EXPECT_NE(webhook_problem("{{HASURA_GRAPHQL_ADMIN_SECRET}}"), "");
	EXPECT_NE(webhook_problem("https://x/}}"), "");
}

TEST(Validation, Headers)
{
	EXPECT_EQ(header_name_problem("X-Api-Key"), "");
	EXPECT_NE(header_name_problem(""), "");
	EXPECT_NE(header_name_problem("X Key"), "");
	EXPECT_NE(header_name_problem("Content-Length"), "");
	EXPECT_NE(header_name_problem("host"), "");
	EXPECT_EQ(header_value_problem("Bearer abc"), "");
	EXPECT_NE(header_value_problem("a\r\nInjected: 1"), "");
	EXPECT_NE(header_value_problem(std::string("a\0b", 3)), "");
}

TEST(EventJson, EscapesStrings)
{
	StringSink sink;
	append_json_string(sink, std::string("a\"b\\c\n\t\x01\x1f é"));
	EXPECT_EQ(sink.s, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f é\"");
}

TEST(EventJson, EventObject)
{
	StringSink sink;
	append_event_json(sink, "UPDATE", JsonText::of("{\"id\": 1}"), JsonText::of("{\"id\": 2}"),
					  JsonText::of("{\"x-hasura-role\": \"admin\"}"), JsonText::null());
	EXPECT_EQ(sink.s, "{\"op\": \"UPDATE\", \"data\": {\"old\": {\"id\": 1}, \"new\": {\"id\": 2}}, "
					  "\"session_variables\": {\"x-hasura-role\": \"admin\"}, \"trace_context\": null}");
	StringSink ins;
	append_event_json(ins, "INSERT", JsonText::null(), JsonText::of("{}"), JsonText::null(), JsonText::null());
	EXPECT_EQ(ins.s, "{\"op\": \"INSERT\", \"data\": {\"old\": null, \"new\": {}}, \"session_variables\": null, "
					 "\"trace_context\": null}");
}

namespace {

proto::Outcome
outcome(proto::OutcomeKind kind, int status, int64_t retry_after = -1)
{
	proto::Outcome o;
	o.kind = kind;
	o.http_status = status;
	o.retry_after_sec = retry_after;
	return o;
}

} // namespace

TEST(RetryPolicy, SuccessDelivers)
{
	auto d = decide(outcome(proto::OutcomeKind::Delivered, 200), 0, 0, 10, 100);
	EXPECT_EQ(d.kind, RetryDecision::Kind::Delivered);
}

TEST(RetryPolicy, NumRetriesBoundsAttempts)
{
	auto fail = outcome(proto::OutcomeKind::HttpError, 500);
	/* num_retries = 2: attempts 1 and 2 retry, attempt 3 is the last */
	EXPECT_EQ(decide(fail, 0, 2, 10, 100).kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(decide(fail, 0, 2, 10, 100).delay_sec, 10);
	EXPECT_EQ(decide(fail, 1, 2, 10, 100).kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(decide(fail, 2, 2, 10, 100).kind, RetryDecision::Kind::Dead);
	EXPECT_EQ(decide(fail, 0, 0, 10, 100).kind, RetryDecision::Kind::Dead);
	auto client = outcome(proto::OutcomeKind::ClientError, 0);
	EXPECT_EQ(decide(client, 0, 1, 3, 100).kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(decide(client, 0, 1, 3, 100).delay_sec, 3);
}

TEST(RetryPolicy, RetryAfterBeyondNumRetriesButBounded)
{
	auto ra = outcome(proto::OutcomeKind::HttpError, 503, 7);
	auto d = decide(ra, 5, 0, 10, 100);
	EXPECT_EQ(d.kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(d.delay_sec, 7);
	/* the 3rd attempt with a bound of 3 ends it */
	EXPECT_EQ(decide(ra, 1, 0, 10, 3).kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(decide(ra, 2, 0, 10, 3).kind, RetryDecision::Kind::Dead);
	/* a webhook cannot schedule a retry beyond a day */
	EXPECT_EQ(decide(outcome(proto::OutcomeKind::HttpError, 503, int64_t(1) << 40), 0, 0, 10, 100).delay_sec,
			  kMaxRetryAfterSec);
	/* Retry-After 0 (or a date already past) counts as none, as in Hasura: num_retries decides,
	 * and the delay is interval_sec */
	EXPECT_EQ(decide(outcome(proto::OutcomeKind::HttpError, 429, 0), 0, 0, 10, 100).kind, RetryDecision::Kind::Dead);
	auto zero = decide(outcome(proto::OutcomeKind::HttpError, 429, 0), 0, 1, 10, 100);
	EXPECT_EQ(zero.kind, RetryDecision::Kind::Retry);
	EXPECT_EQ(zero.delay_sec, 10);
	EXPECT_EQ(decide(outcome(proto::OutcomeKind::HttpError, 429, 1), 0, 0, 10, 100).delay_sec, 1);
}

TEST(InvocationJson, WebhookResponse)
{
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.response_body = "{\"ok\": true}";
	o.response_headers = {{"Content-Type", "application/json"}};
	EXPECT_EQ(response_json(o), "{\"type\": \"webhook_response\", \"data\": {\"body\": \"{\\\"ok\\\": true}\", "
								"\"headers\": [{\"name\": \"Content-Type\", \"value\": \"application/json\"}], "
								"\"status\": 200}, \"version\": \"2\"}");
}

namespace {

/*
 * readable_as_jsonb: whether Postgres 15's jsonb input would take this JSON text as far as
 * strings go (src/common/jsonapi.c, json_lex_string, and jsonb's de-escaping): valid UTF-8, no
 * \u0000 escape, no escape of a surrogate that is not a high one directly followed by its low
 * one. The writers never escape surrogates at all, which this also accepts.
 */
bool
readable_as_jsonb(const std::string &json, std::string *why)
{
	if (!is_utf8_text(json, false)) {
		*why = "not valid UTF-8";
		return false;
	}
	long pending_high = -1;
	for (size_t i = 0; i < json.size(); i++) {
		if (json[i] != '\\') {
			if (pending_high >= 0) {
				*why = "high surrogate not followed by a low one";
				return false;
			}
			continue;
		}
		char e = json[++i];
		if (e != 'u') {
			if (pending_high >= 0) {
				*why = "high surrogate not followed by a low one";
				return false;
			}
			continue;
		}
		long cp = std::stol(json.substr(i + 1, 4), nullptr, 16);
		i += 4;
		if (cp == 0) {
			*why = "\\u0000";
			return false;
		}
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (pending_high >= 0) {
				*why = "two high surrogates";
				return false;
			}
			pending_high = cp;
		} else if (cp >= 0xdc00 && cp <= 0xdfff) {
			if (pending_high < 0) {
				*why = "lone low surrogate";
				return false;
			}
			pending_high = -1;
		} else if (pending_high >= 0) {
			*why = "high surrogate not followed by a low one";
			return false;
		}
	}
	return true;
}

/* bytes a webhook may answer with that JSON text may not hold as they are */
const std::vector<std::string> kOddBytes = {
	std::string("a\0b", 3),          /* NUL */
	std::string("\0", 1),            /* only a NUL */
	"\\ud800 lone \\udc00 \\ud800x", /* surrogate escapes, as raw text */
	"\xed\xa0\x80",                  /* a UTF-8-encoded surrogate (CESU) */
	"\xff\xfe bad \xc0\xaf",         /* invalid and overlong */
	"cut \xe2\x82",                  /* a sequence cut by --max-response-bytes */
	"\xf4\x90\x80\x80",              /* above U+10FFFF */
	"ctl \x01\x1f\x7f \"q\" \\",     /* control characters, quote, backslash */
	"\xf0\x9f\x98\x80 ok",           /* a code point above U+FFFF */
};

} // namespace

TEST(InvocationJson, NonSuccessIsClientErrorWithTheBody)
{
	/* Hasura's mkInvocation: any status outside 2xx is mkClientErr of the body; status and
	 * headers are not in the response JSON (the status is the row's status column) */
	proto::Outcome o = outcome(proto::OutcomeKind::HttpError, 500);
	o.response_body = "oops";
	o.response_headers = {{"Content-Type", "text/plain"}};
	EXPECT_EQ(response_json(o), "{\"type\": \"client_error\", \"data\": {\"message\": \"oops\"}, \"version\": \"2\"}");
	o = outcome(proto::OutcomeKind::HttpError, 302);
	EXPECT_EQ(response_json(o), "{\"type\": \"client_error\", \"data\": {\"message\": \"\"}, \"version\": \"2\"}");
}

TEST(InvocationJson, NoResponseIsAnHttpException)
{
	/* Hasura writes an HTTP client exception as its JSON text: {"type": "http_exception", ...} */
	proto::Outcome o = outcome(proto::OutcomeKind::ClientError, 0);
	o.error = "Timeout was reached";
	EXPECT_EQ(response_json(o), "{\"type\": \"client_error\", \"data\": {\"message\": \"{\\\"type\\\": "
								"\\\"http_exception\\\", \\\"message\\\": \\\"Timeout was reached\\\"}\"}, "
								"\"version\": \"2\"}");
	o.error.clear();
	EXPECT_NE(response_json(o).find("no response"), std::string::npos);
}

TEST(InvocationJson, BodyThatIsNotUtf8IsBase64)
{
	/* Hasura's TByteString: bytes that do not decode as UTF-8 are ["Base64", "..."] */
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.response_body = "\xff\xfe\xfd";
	EXPECT_EQ(response_json(o), "{\"type\": \"webhook_response\", \"data\": {\"body\": [\"Base64\", \"//79\"], "
								"\"headers\": [], \"status\": 200}, \"version\": \"2\"}");
	o = outcome(proto::OutcomeKind::HttpError, 500);
	o.response_body = std::string("ok \xed\xa0\x80", 6);
	EXPECT_EQ(response_json(o),
			  "{\"type\": \"client_error\", \"data\": {\"message\": [\"Base64\", \"b2sg7aCA\"]}, \"version\": \"2\"}");
	/* a body cut inside a sequence (--max-response-bytes) is still text */
	o.response_body = "caf\xc3";
	EXPECT_EQ(response_json(o),
			  "{\"type\": \"client_error\", \"data\": {\"message\": \"caf" FFFD "\"}, \"version\": \"2\"}");
}

TEST(InvocationJson, NulBecomesReplacementCharacter)
{
	/* U+0000 cannot be read back as jsonb (22P05): it is written as U+FFFD, in the body, the
	 * headers and the error text alike */
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.response_body = std::string("a\0b", 3);
	o.response_headers = {{"X-Odd", std::string("v\0\xff", 3)}};
	EXPECT_EQ(response_json(o), "{\"type\": \"webhook_response\", \"data\": {\"body\": \"a" FFFD "b\", "
								"\"headers\": [{\"name\": \"X-Odd\", \"value\": \"v" FFFD FFFD "\"}], "
								"\"status\": 200}, \"version\": \"2\"}");
	o = outcome(proto::OutcomeKind::ClientError, 0);
	o.error = std::string("bad\0", 4);
	EXPECT_EQ(response_json(o).find("\\u0000"), std::string::npos) << response_json(o);
}

TEST(InvocationJson, RawSurrogateEscapeTextStaysText)
{
	/* a body holding the six characters \ud800 is text: its backslash is escaped, so no
	 * surrogate escape reaches Postgres */
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.response_body = "\\ud800";
	EXPECT_EQ(response_json(o), "{\"type\": \"webhook_response\", \"data\": {\"body\": \"\\\\ud800\", "
								"\"headers\": [], \"status\": 200}, \"version\": \"2\"}");
}

TEST(InvocationJson, EveryOutcomeIsReadableAsJsonb)
{
	for (const std::string &bytes : kOddBytes) {
		for (auto kind :
			 {proto::OutcomeKind::Delivered, proto::OutcomeKind::HttpError, proto::OutcomeKind::ClientError}) {
			proto::Outcome o = outcome(kind, kind == proto::OutcomeKind::ClientError ? 0 : 200);
			o.response_body = bytes;
			o.error = bytes;
			o.response_headers = {{bytes, bytes}};
			std::string json = response_json(o), why;
			EXPECT_TRUE(readable_as_jsonb(json, &why)) << why << ": " << json;
		}
		std::string json = request_json("{}", request_headers_json({proto::Header{bytes, bytes, false}})), why;
		EXPECT_TRUE(readable_as_jsonb(json, &why)) << why << ": " << json;
	}
	std::string why;
	EXPECT_FALSE(readable_as_jsonb("\"\\u0000\"", &why)) << "the checker itself";
	EXPECT_FALSE(readable_as_jsonb("\"\\ud800\"", &why));
	EXPECT_FALSE(readable_as_jsonb("\"\\udc00\"", &why));
	EXPECT_TRUE(readable_as_jsonb("\"\\ud83d\\ude00 \\\\ud800\"", &why)) << why;
}

TEST(InvocationJson, RequestHeadersAsHasuraLogsThem)
{
	/* Hasura's prepareHeaders: the defaults first, then the configured headers as configured */
	EXPECT_EQ(request_headers_json({proto::Header{"X-Key", "K", true}, proto::Header{"X-A", "1", false}}),
			  "[{\"name\": \"Content-Type\", \"value\": \"application/json\"}, {\"name\": \"User-Agent\", \"value\": "
			  "\"hasura-events/" HASURA_EVENTS_VERSION_FOR_TEST "\"}, {\"name\": \"X-Key\", \"value_from_env\": "
			  "\"K\"}, {\"name\": \"X-A\", \"value\": \"1\"}]");
	/* a configured header of a default's name replaces it, as the sidecar sends it */
	EXPECT_EQ(request_headers_json(
				  {proto::Header{"content-type", "text/plain", false}, proto::Header{"USER-AGENT", "me", false}}),
			  "[{\"name\": \"content-type\", \"value\": \"text/plain\"}, {\"name\": \"USER-AGENT\", \"value\": "
			  "\"me\"}]");
}

TEST(InvocationJson, Request)
{
	EXPECT_EQ(request_json("{\"id\": \"e1\"}", "[{\"name\": \"X\", \"value_from_env\": \"V\"}]"),
			  "{\"payload\": {\"id\": \"e1\"}, \"headers\": [{\"name\": \"X\", \"value_from_env\": \"V\"}], "
			  "\"version\": \"2\"}");
	EXPECT_EQ(request_json("{}", ""), "{\"payload\": {}, \"headers\": [], \"version\": \"2\"}");
}

namespace {

/* A sidecar seen from the worker: feeds frames in, decodes what the worker sends. */
struct FakeSidecar {
	Dispatch &d;
	int id;
	proto::FrameReader reader;

	FakeSidecar(Dispatch &d_, int id_) : d(d_), id(id_) { d.add_connection(id); }

	void
	send(const proto::Message &m)
	{
		std::string buf;
		proto::encode(m, buf);
		d.on_bytes(id, buf.data(), buf.size());
	}

	/* Hello with this many credits, Credit for them, and the Welcome read and dropped: a sidecar
	 * ready for deliveries */
	void
	handshake(uint32_t credits, const char *name = "sc")
	{
		send(proto::Hello{proto::kVersion, name, credits});
		send(proto::Credit{credits});
		received();
	}

	std::vector<proto::Message>
	received()
	{
		std::string &out = d.outbuf(id);
		reader.feed(out.data(), out.size());
		out.clear();
		std::vector<proto::Message> msgs;
		for (;;) {
			proto::Message m;
			std::string err;
			auto r = reader.next(m, err);
			if (r != proto::FrameReader::Result::Ok)
				break;
			msgs.push_back(std::move(m));
		}
		return msgs;
	}
};

struct Events {
	std::vector<std::string> ids;
	std::vector<ClaimedEventView> views;
	const char *names[1] = {"X-Key"};
	const char *values[1] = {"SECRET_VAR"};
	bool from_env[1] = {true};

	explicit Events(int n, const std::string &prefix = "e")
	{
		for (int i = 0; i < n; i++)
			ids.push_back(prefix + std::to_string(i));
		for (auto &id : ids) {
			ClaimedEventView v{};
			v.id = id.c_str();
			v.trigger_name = "t";
			v.webhook = "http://x/{{P}}";
			v.webhook_from_env = false;
			v.headers_json = "[{\"name\": \"X-Key\", \"value_from_env\": \"SECRET_VAR\"}]";
			v.nheaders = 1;
			v.header_names = names;
			v.header_values = values;
			v.header_from_env = from_env;
			v.timeout_sec = 5;
			v.num_retries = 1;
			v.interval_sec = 2;
			v.tries = 0;
			v.body = "{\"id\": 1}";
			v.body_len = 9;
			views.push_back(v);
		}
	}
};

DispatchConfig
config(uint32_t max_inflight = 1000)
{
	DispatchConfig c;
	c.max_inflight = max_inflight;
	c.database = "db";
	return c;
}

} // namespace

TEST(Dispatch, HandshakeAndCredits)
{
	Dispatch d(config());
	FakeSidecar s(d, 7);
	EXPECT_EQ(d.claimable(), 0u);
	s.send(proto::Hello{proto::kVersion, "sc", 10});
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u);
	ASSERT_TRUE(std::holds_alternative<proto::Welcome>(msgs[0]));
	EXPECT_EQ(std::get<proto::Welcome>(msgs[0]).database, "db");
	EXPECT_EQ(d.claimable(), 0u);
	s.send(proto::Credit{10});
	EXPECT_EQ(d.claimable(), 10u);
}

TEST(Dispatch, RefusesWrongVersionAndMessagesBeforeHello)
{
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.send(proto::Hello{99, "sc", 10});
	std::string why;
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_NE(why.find("version 99"), std::string::npos);
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u);
	EXPECT_TRUE(std::holds_alternative<proto::Reject>(msgs[0]));

	FakeSidecar s2(d, 2);
	s2.send(proto::Credit{5});
	EXPECT_TRUE(d.wants_close(2, why));
	EXPECT_NE(why.find("expected Hello"), std::string::npos);
}

TEST(Dispatch, MalformedFrameClosesOnlyThatConnection)
{
	Dispatch d(config());
	FakeSidecar good(d, 1), bad(d, 2);
	good.send(proto::Hello{proto::kVersion, "a", 1});
	const char junk[] = {0, 0, 0, 1, 99};
	d.on_bytes(2, junk, sizeof(junk));
	std::string why;
	EXPECT_TRUE(d.wants_close(2, why));
	EXPECT_NE(why.find("malformed"), std::string::npos);
	EXPECT_FALSE(d.wants_close(1, why));
}

TEST(Dispatch, HandOutWithinCreditsAndRecordOutcomes)
{
	Dispatch d(config());
	FakeSidecar s(d, 3);
	s.handshake(2);
	Events ev(3);
	EXPECT_EQ(d.hand_out(ev.views.data(), ev.views.size()), 2u); /* went through two of three */
	EXPECT_EQ(d.inflight(), 2u);                                 /* the third had no credit: it stays in event_log */
	EXPECT_EQ(d.claimable(), 0u);
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 2u);
	auto &del = std::get<proto::Deliver>(msgs[0]);
	EXPECT_EQ(del.event_id, "e0");
	EXPECT_EQ(del.attempt, 1u);
	ASSERT_EQ(del.headers.size(), 1u);
	EXPECT_TRUE(del.headers[0].from_env);
	EXPECT_EQ(del.headers[0].value, "SECRET_VAR");

	auto claimed = d.claimed_ids();
	EXPECT_EQ(claimed.size(), 2u);

	proto::Outcome ok = outcome(proto::OutcomeKind::Delivered, 200);
	ok.event_id = "e0";
	s.send(ok);
	proto::Outcome bad = outcome(proto::OutcomeKind::HttpError, 500);
	bad.event_id = "e1";
	s.send(bad);
	ASSERT_EQ(d.record_count(), 2u);
	RecordView r0 = d.record(0), r1 = d.record(1);
	EXPECT_STREQ(r0.event_id, "e0");
	EXPECT_TRUE(r0.delivered);
	EXPECT_EQ(r0.retry_delay_sec, -1);
	EXPECT_STREQ(r1.event_id, "e1");
	EXPECT_FALSE(r1.delivered);
	EXPECT_FALSE(r1.dead);
	EXPECT_EQ(r1.retry_delay_sec, 2);
	EXPECT_EQ(r1.http_status, 500);
	EXPECT_NE(std::string(r1.request_json).find("SECRET_VAR"), std::string::npos);
	/* still claimed until the records are committed */
	EXPECT_EQ(d.inflight(), 2u);
	d.clear_records();
	EXPECT_EQ(d.inflight(), 0u);
	EXPECT_EQ(d.stats().delivered, 1u);
	EXPECT_EQ(d.stats().retried, 1u);
}

TEST(Dispatch, OutcomeForUnknownEventClosesConnection)
{
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.send(proto::Hello{proto::kVersion, "sc", 1});
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.event_id = "never-sent";
	s.send(o);
	std::string why;
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_EQ(d.record_count(), 0u);
}

TEST(Dispatch, HandOutSkipsEventsAlreadyInFlight)
{
	/* a claim that goes on after the previous one may return an event still in flight */
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.handshake(5);
	Events ev(3);
	EXPECT_EQ(d.hand_out(ev.views.data(), 2), 2u);
	EXPECT_EQ(d.hand_out(ev.views.data(), 3), 3u); /* e0 and e1 skipped, e2 handed out */
	EXPECT_EQ(d.inflight(), 3u);
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 3u);
	EXPECT_EQ(std::get<proto::Deliver>(msgs[2]).event_id, "e2");
}

TEST(Dispatch, DisconnectReturnsClaimsButKeepsReportedOnes)
{
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.handshake(5);
	Events ev(3);
	d.hand_out(ev.views.data(), ev.views.size());
	proto::Outcome ok = outcome(proto::OutcomeKind::Delivered, 200);
	ok.event_id = "e1";
	s.send(ok);
	EXPECT_EQ(d.remove_connection(1), 2u); /* e0 and e2 go back */
	EXPECT_EQ(d.inflight(), 1u);           /* e1 waits for its record */
	EXPECT_EQ(d.record_count(), 1u);
	d.clear_records();
	EXPECT_EQ(d.inflight(), 0u);
}

TEST(Dispatch, MaxInflightAndGoodbye)
{
	Dispatch d(config(3));
	FakeSidecar a(d, 1), b(d, 2);
	a.handshake(10, "a");
	b.handshake(10, "b");
	EXPECT_EQ(d.claimable(), 3u);
	Events ev(3);
	d.hand_out(ev.views.data(), ev.views.size());
	EXPECT_EQ(d.claimable(), 0u);
	/* spread over both sidecars */
	size_t na = a.received().size(), nb = b.received().size();
	EXPECT_EQ(na + nb, 3u);
	EXPECT_GT(na, 0u);
	EXPECT_GT(nb, 0u);
	b.send(proto::Goodbye{"bye"});
	d.remove_connection(1);
	/* b is draining: no room even with credits */
	EXPECT_EQ(d.claimable(), 0u);
}

TEST(Dispatch, PingPongAndStatsJson)
{
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.send(proto::Hello{proto::kVersion, "sc", 1});
	s.received();
	s.send(proto::Ping{42});
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u);
	EXPECT_EQ(std::get<proto::Pong>(msgs[0]).token, 42u);
	/* Pings from a sidecar that does not read: the answers stop at ~1 MiB of unsent output */
	for (int i = 0; i < 200000; i++)
		s.send(proto::Ping{uint64_t(i)});
	msgs = s.received();
	EXPECT_GT(msgs.size(), 1000u);
	EXPECT_LT(msgs.size(), 200000u);
	s.send(proto::Ping{7});
	msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u); /* read again: answered again */
	EXPECT_EQ(std::get<proto::Pong>(msgs[0]).token, 7u);
	d.note_fetch(7, 0.001);
	EXPECT_NE(d.stats_json().find("\"num_events_fetched\": 7"), std::string::npos);
	EXPECT_NE(d.stats_json().find("\"type\": \"event-trigger-process\""), std::string::npos);
}

/* A sidecar that holds claims and says nothing gets a Ping after a third of the timeout and is
 * closed after all of it; one without claims is left alone, however long it is quiet. */
TEST(Dispatch, SilentSidecarWithClaimsIsClosed)
{
	const int64_t kSec = 1000, kTimeout = 30 * kSec;
	Dispatch d(config());
	d.set_now(0);
	FakeSidecar s(d, 1);
	s.handshake(10);
	std::string why;
	/* quiet for 100 s without claims: nothing happens */
	d.set_now(100 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	EXPECT_TRUE(s.received().empty());
	EXPECT_FALSE(d.wants_close(1, why));
	/* work arrives: the silence counts from now, not from the last byte 100 s ago */
	Events ev(2);
	EXPECT_EQ(d.hand_out(ev.views.data(), ev.views.size()), 2u);
	EXPECT_EQ(s.received().size(), 2u);
	d.set_now(105 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	EXPECT_TRUE(s.received().empty());
	d.set_now(111 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	auto msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u);
	ASSERT_TRUE(std::holds_alternative<proto::Ping>(msgs[0]));
	d.set_now(112 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	EXPECT_TRUE(s.received().empty()); /* one Ping until it answers */
	/* it answers: quiet again from here */
	d.set_now(126 * kSec);
	s.send(proto::Pong{std::get<proto::Ping>(msgs[0]).token});
	d.set_now(150 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	msgs = s.received();
	ASSERT_EQ(msgs.size(), 1u); /* pinged again, 24 s after its Pong */
	EXPECT_FALSE(d.wants_close(1, why));
	/* no answer this time: closed 30 s after its last byte, its 2 events back to the queue */
	d.set_now(155 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 0u);
	d.set_now(156 * kSec);
	EXPECT_EQ(d.check_silence(kTimeout), 1u);
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_NE(why.find("holds 2 events and has sent nothing for 30 s"), std::string::npos) << why;
	EXPECT_EQ(d.check_silence(kTimeout), 0u); /* failed once */
	EXPECT_EQ(d.remove_connection(1), 2u);
	EXPECT_EQ(d.inflight(), 0u);
}

/* A sidecar that reported its outcomes holds nothing, so its silence afterwards does not matter. */
TEST(Dispatch, SilenceWithoutClaimsIsFine)
{
	Dispatch d(config());
	d.set_now(0);
	FakeSidecar s(d, 1);
	s.handshake(10);
	Events ev(1);
	d.hand_out(ev.views.data(), 1);
	s.received();
	proto::Outcome o;
	o.event_id = "e0";
	o.kind = proto::OutcomeKind::Delivered;
	o.http_status = 200;
	d.set_now(1000);
	s.send(o);
	d.clear_records();
	d.set_now(3600 * 1000);
	EXPECT_EQ(d.check_silence(30000), 0u);
	EXPECT_TRUE(s.received().empty());
	std::string why;
	EXPECT_FALSE(d.wants_close(1, why));
}

namespace {

proto::Outcome
delivered(const std::string &id)
{
	proto::Outcome o = outcome(proto::OutcomeKind::Delivered, 200);
	o.event_id = id;
	return o;
}

std::vector<std::string>
cancelled_ids(const std::vector<proto::Message> &msgs)
{
	std::vector<std::string> ids;
	for (const auto &m : msgs)
		if (auto *c = std::get_if<proto::Cancel>(&m))
			ids.insert(ids.end(), c->event_ids.begin(), c->event_ids.end());
	return ids;
}

} // namespace

/* A claim without an outcome at its trigger's timeout_sec + outcome_grace after it was handed
 * out goes back (it leaves the claims, as when a sidecar goes away); its connection gets a Cancel
 * with its id and no more work until it reports an outcome; a late outcome for it is ignored. */
TEST(Dispatch, OverdueClaimsAreCancelled)
{
	DispatchConfig cfg = config();
	cfg.outcome_grace_ms = 60000;
	Dispatch d(cfg);
	d.set_now(0);
	FakeSidecar s(d, 1);
	s.handshake(10);
	EXPECT_EQ(d.next_deadline_ms(), INT64_MAX); /* nothing held */
	Events ev(3);                               /* timeout_sec 5 */
	ASSERT_EQ(d.hand_out(ev.views.data(), 2), 2u);
	d.set_now(1000);
	ev.views[2].timeout_sec = 1; /* another trigger's: the earliest deadline of the three */
	ASSERT_EQ(d.hand_out(&ev.views[2], 1), 1u);
	EXPECT_EQ(s.received().size(), 3u);
	EXPECT_EQ(d.next_deadline_ms(), 62000);
	d.set_now(61999);
	EXPECT_EQ(d.check_deadlines(), 0u);
	d.set_now(62000);
	EXPECT_EQ(d.check_deadlines(), 1u);
	EXPECT_EQ(cancelled_ids(s.received()), std::vector<std::string>{"e2"});
	EXPECT_EQ(d.inflight(), 2u);
	EXPECT_EQ(d.next_deadline_ms(), 65000);
	/* a connection that let a claim expire gets nothing more, whatever its credits */
	EXPECT_EQ(d.claimable(), 0u);
	Events more(1, "m");
	EXPECT_EQ(d.hand_out(more.views.data(), 1), 0u);
	d.set_now(65000);
	EXPECT_EQ(d.check_deadlines(), 2u);
	EXPECT_EQ(cancelled_ids(s.received()), (std::vector<std::string>{"e0", "e1"}));
	EXPECT_EQ(d.inflight(), 0u);
	EXPECT_EQ(d.claimed_ids().size(), 0u); /* the next claim finds them */
	EXPECT_EQ(d.next_deadline_ms(), INT64_MAX);
	EXPECT_EQ(d.stats().cancelled, 3u);
	EXPECT_EQ(d.stats().returned, 3u);
	EXPECT_EQ(d.check_deadlines(), 0u); /* once */
	/* the outcome it sent before it read the Cancel: ignored (no record, no close), and proof
	 * that it works: it may have events again */
	s.send(delivered("e1"));
	std::string why;
	EXPECT_FALSE(d.wants_close(1, why)) << why;
	EXPECT_EQ(d.record_count(), 0u);
	EXPECT_EQ(d.stats().late_outcomes, 1u);
	EXPECT_EQ(d.claimable(), 10u - 3u);
	/* a Credit ends the stall too: what a sidecar sends for the deliveries a Cancel dropped */
	d.set_now(200000);
	ASSERT_EQ(d.hand_out(&ev.views[0], 1), 1u);
	d.set_now(200000 + 65000);
	EXPECT_EQ(d.check_deadlines(), 1u);
	EXPECT_EQ(d.claimable(), 0u);
	s.send(proto::Credit{1});
	EXPECT_EQ(d.claimable(), 10u - 3u);
	d.set_now(65000);
	/* e1 handed out again, to the same sidecar: its next outcome is this claim's */
	ASSERT_EQ(d.hand_out(&ev.views[1], 1), 1u);
	EXPECT_EQ(d.next_deadline_ms(), 65000 + 65000);
	s.send(delivered("e1"));
	ASSERT_EQ(d.record_count(), 1u);
	EXPECT_EQ(d.next_deadline_ms(), INT64_MAX); /* recorded: no deadline */
	d.clear_records();
	/* a second late outcome for the same cancellation is not expected: a protocol error */
	s.send(delivered("e1"));
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_NE(why.find("not handed to this sidecar"), std::string::npos) << why;
}

/* A peer that grants credits after each Cancel (which ends the stall) but never reports is
 * closed at its third Cancel in a row; one outcome in between starts the count again. */
TEST(Dispatch, PeerThatNeverReportsIsClosedAfterThreeCancels)
{
	DispatchConfig cfg = config();
	cfg.outcome_grace_ms = 1000;
	Dispatch d(cfg);
	int64_t now = 0;
	d.set_now(now);
	FakeSidecar s(d, 1);
	s.handshake(100);
	Events ev(1); /* timeout_sec 5: a deadline 6 s after the hand-out */
	std::string why;
	auto round = [&]() {
		EXPECT_EQ(d.hand_out(ev.views.data(), 1), 1u);
		now += 6000;
		d.set_now(now);
		EXPECT_EQ(d.check_deadlines(), 1u);
		s.send(proto::Credit{1});
	};
	round();
	round();
	s.send(delivered("e0")); /* a late outcome: it works after all */
	round();
	round();
	EXPECT_FALSE(d.wants_close(1, why)) << why;
	round();
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_NE(why.find("3 Cancels in a row"), std::string::npos) << why;
}

/* Claims that end otherwise leave no deadline behind: a reported outcome, a closed connection. */
TEST(Dispatch, DeadlinesEndWithTheirClaims)
{
	Dispatch d(config());
	d.set_now(0);
	FakeSidecar a(d, 1), b(d, 2);
	a.handshake(10, "a");
	b.handshake(10, "b");
	Events ev(4);
	ASSERT_EQ(d.hand_out(ev.views.data(), 4), 4u);
	std::vector<std::string> to_a;
	for (const auto &m : a.received())
		to_a.push_back(std::get<proto::Deliver>(m).event_id);
	b.received();
	ASSERT_EQ(to_a.size(), 2u);
	for (const auto &id : to_a)
		a.send(delivered(id));
	EXPECT_EQ(d.remove_connection(2), 2u);
	EXPECT_EQ(d.next_deadline_ms(), INT64_MAX);
	d.set_now(1000000);
	EXPECT_EQ(d.check_deadlines(), 0u);
	EXPECT_EQ(d.stats().cancelled, 0u);
	EXPECT_EQ(d.record_count(), 2u);
}

/* A connection must say Hello within hello_timeout_ms; until then only a small frame is read. */
TEST(Dispatch, HandshakeIsBoundedInTimeAndSize)
{
	Dispatch d(config());
	d.set_now(1000);
	FakeSidecar quiet(d, 1), talker(d, 2), big(d, 3);
	EXPECT_EQ(d.handshaking_count(), 3u);
	EXPECT_EQ(d.oldest_handshake(), 1);
	EXPECT_EQ(d.next_deadline_ms(), 6000);
	/* before its Hello, a frame beyond 64 KiB is refused from its header */
	const char header[] = {0, 2, 0, 0}; /* 128 KiB */
	d.on_bytes(3, header, sizeof header);
	std::string why;
	EXPECT_TRUE(d.wants_close(3, why));
	EXPECT_NE(why.find("exceeds the limit of 65536"), std::string::npos) << why;
	d.set_now(5999);
	EXPECT_EQ(d.check_deadlines(), 0u);
	EXPECT_FALSE(d.wants_close(1, why));
	talker.send(proto::Hello{proto::kVersion, "sc", 1});
	auto msgs = talker.received();
	ASSERT_EQ(msgs.size(), 1u);
	EXPECT_EQ(std::get<proto::Welcome>(msgs[0]).max_frame, proto::kMaxSidecarFrame);
	d.set_now(6000);
	d.check_deadlines();
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_NE(why.find("no Hello within 5 s"), std::string::npos) << why;
	EXPECT_FALSE(d.wants_close(2, why));
	/* after the Hello: Outcomes up to the announced bound, not beyond */
	proto::Outcome o = delivered("x");
	o.response_body.assign(proto::kMaxHelloFrame * 2, 'b');
	std::string frame;
	proto::encode(o, frame);
	d.on_bytes(2, frame.data(), 4); /* a header within the bound: read on */
	EXPECT_FALSE(d.wants_close(2, why));
	const char too_big[] = {0, 0x40, 0, 1}; /* 4 MiB + 1 */
	FakeSidecar late(d, 4);
	late.send(proto::Hello{proto::kVersion, "sc", 1});
	d.on_bytes(4, too_big, sizeof too_big);
	EXPECT_TRUE(d.wants_close(4, why));
	EXPECT_NE(why.find("exceeds the limit of 4194304"), std::string::npos) << why;
}

/* A frame begun must end within frame_timeout_ms; frames that keep coming back to back are fine. */
TEST(Dispatch, PartialFrameIsBoundedInTime)
{
	Dispatch d(config());
	d.set_now(0);
	FakeSidecar s(d, 1), streamer(d, 2);
	s.handshake(1);
	streamer.handshake(1);
	std::string ping;
	proto::encode(proto::Ping{1}, ping);
	d.set_now(1000);
	d.on_bytes(1, ping.data(), 5);
	EXPECT_EQ(d.next_deadline_ms(), 11000);
	/* the streamer's frames end one after the other, each new one begun in the same bytes */
	for (int64_t t = 1000; t <= 30000; t += 1000) {
		d.set_now(t);
		std::string two = ping.substr(5) + ping.substr(0, 5); /* the end of one, the start of the next */
		if (t == 1000)
			d.on_bytes(2, ping.data(), 5);
		else
			d.on_bytes(2, two.data(), two.size());
		if (t == 10000) {
			/* s's frame still incomplete: closed at 11000, not before */
			EXPECT_EQ(d.check_deadlines(), 0u);
			std::string why;
			EXPECT_FALSE(d.wants_close(1, why));
		}
		if (t == 11000) {
			d.check_deadlines();
			std::string why;
			EXPECT_TRUE(d.wants_close(1, why));
			EXPECT_NE(why.find("a frame is incomplete after 10 s (5 bytes of it arrived)"), std::string::npos) << why;
		}
	}
	d.check_deadlines();
	std::string why;
	EXPECT_FALSE(d.wants_close(2, why)) << why;
	EXPECT_EQ(streamer.received().size(), 29u); /* Pongs */
}

/* Connections past their Hello are limited; the next Hello gets a Reject. */
TEST(Dispatch, SidecarLimitRejectsAtHello)
{
	DispatchConfig cfg = config();
	cfg.max_sidecars = 2;
	Dispatch d(cfg);
	FakeSidecar a(d, 1), b(d, 2), c(d, 3);
	a.handshake(1, "a");
	b.handshake(1, "b");
	EXPECT_EQ(d.handshaking_count(), 1u);
	c.send(proto::Hello{proto::kVersion, "c", 1});
	std::string why;
	EXPECT_TRUE(d.wants_close(3, why));
	EXPECT_NE(why.find("2 sidecars are connected"), std::string::npos) << why;
	auto msgs = c.received();
	ASSERT_EQ(msgs.size(), 1u);
	EXPECT_TRUE(std::holds_alternative<proto::Reject>(msgs[0]));
	d.remove_connection(1);
	FakeSidecar e(d, 5);
	e.send(proto::Hello{proto::kVersion, "e", 1});
	EXPECT_FALSE(d.wants_close(5, why)) << why;
}

TEST(RepeatLimiter, FirstOfEachKindPerInterval)
{
	RepeatLimiter lim("attempt failures suppressed", 10000);
	const std::string refused = "\"trigger\": \"t\", \"status\": 0, \"error\": \"refused\"";
	const std::string e500 = "\"trigger\": \"t\", \"status\": 500";
	std::string line;
	EXPECT_TRUE(lim.admit(refused, 0));
	EXPECT_TRUE(lim.admit(e500, 1));
	for (int i = 0; i < 99; i++)
		EXPECT_FALSE(lim.admit(refused, 100 + i));
	EXPECT_FALSE(lim.admit(e500, 9999));
	EXPECT_FALSE(lim.pop_summary(9999, line)); /* the intervals are not over */
	EXPECT_TRUE(lim.pop_summary(10001, line));
	std::vector<std::string> lines = {line};
	while (lim.pop_summary(10001, line))
		lines.push_back(line);
	std::sort(lines.begin(), lines.end());
	ASSERT_EQ(lines.size(), 2u);
	EXPECT_EQ(lines[0],
			  "{\"msg\": \"attempt failures suppressed\", " + refused + ", \"suppressed\": 99, \"interval_sec\": 10}");
	EXPECT_EQ(lines[1],
			  "{\"msg\": \"attempt failures suppressed\", " + e500 + ", \"suppressed\": 1, \"interval_sec\": 10}");
	EXPECT_EQ(lim.kinds(), 0u); /* forgotten once over */
	/* a new interval: the first line is written again */
	EXPECT_TRUE(lim.admit(refused, 20000));
	EXPECT_FALSE(lim.pop_summary(40000, line)); /* nothing left out: no summary */
}

TEST(RepeatLimiter, CountIsKeptWhenTheIntervalEndsBeforeASummary)
{
	RepeatLimiter lim("m", 1000);
	std::string line;
	EXPECT_TRUE(lim.admit("\"k\": 1", 0));
	EXPECT_FALSE(lim.admit("\"k\": 1", 10));
	EXPECT_FALSE(lim.admit("\"k\": 1", 20));
	EXPECT_TRUE(lim.admit("\"k\": 1", 1500)); /* a new interval begins before anyone asked */
	ASSERT_TRUE(lim.pop_summary(1500, line));
	EXPECT_EQ(line, "{\"msg\": \"m\", \"k\": 1, \"suppressed\": 2, \"interval_sec\": 1}");
	EXPECT_FALSE(lim.pop_summary(1500, line));
}

TEST(RepeatLimiter, KindsBeyondTheBoundAreCountedTogether)
{
	RepeatLimiter lim("m", 1000, 3);
	std::string line;
	EXPECT_TRUE(lim.admit("\"k\": 1", 0));
	EXPECT_TRUE(lim.admit("\"k\": 2", 0));
	EXPECT_TRUE(lim.admit("\"k\": 3", 0)); /* the third kind: from here on, all others are one */
	EXPECT_TRUE(lim.admit("\"k\": 4", 0));
	for (int i = 5; i < 1000; i++)
		EXPECT_FALSE(lim.admit("\"k\": " + std::to_string(i), 1));
	EXPECT_LE(lim.kinds(), 4u);
	std::vector<std::string> lines;
	while (lim.pop_summary(1000, line))
		lines.push_back(line);
	ASSERT_EQ(lines.size(), 1u);
	EXPECT_EQ(lines[0], "{\"msg\": \"m\", \"other_kinds\": true, \"suppressed\": 995, \"interval_sec\": 1}");
}

TEST(Dispatch, ReleaseEndsClaimsWithoutRecords)
{
	Dispatch d(config());
	FakeSidecar s(d, 1);
	s.handshake(5);
	Events ev(3);
	d.hand_out(ev.views.data(), ev.views.size());
	EXPECT_FALSE(d.take_released());
	s.send(proto::Release{{"e0", "e2"}, {}});
	std::string why;
	EXPECT_FALSE(d.wants_close(1, why)) << why;
	EXPECT_EQ(d.inflight(), 1u); /* e1 is still out */
	EXPECT_EQ(d.record_count(), 0u) << "a released event is not an attempt";
	EXPECT_TRUE(d.take_released()) << "the next claim must look behind its cursor and floor";
	EXPECT_FALSE(d.take_released());
	EXPECT_EQ(d.stats().returned, 2u);
	EXPECT_EQ(d.held_trigger_ptrs().size(), 0u);
	/* they can be handed out again, and e1 is still skipped */
	EXPECT_EQ(d.hand_out(ev.views.data(), ev.views.size()), 3u);
	EXPECT_EQ(d.inflight(), 3u);
}

TEST(Dispatch, ReleaseOfAnEventNotHeldClosesAndAppliesNothing)
{
	Dispatch d(config());
	FakeSidecar a(d, 1), b(d, 2);
	a.handshake(1, "a");
	Events ev(1);
	d.hand_out(ev.views.data(), 1);
	b.handshake(5, "b");
	b.send(proto::Release{{"e0"}, {}}); /* a's claim */
	std::string why;
	EXPECT_TRUE(d.wants_close(2, why));
	EXPECT_NE(why.find("does not hold"), std::string::npos) << why;
	EXPECT_EQ(d.inflight(), 1u);

	/* a reported event cannot be released either; nothing of that Release applies */
	proto::Outcome ok = outcome(proto::OutcomeKind::Delivered, 200);
	ok.event_id = "e0";
	a.send(ok);
	a.send(proto::Release{{"e0"}, {{"t", 5000}}});
	EXPECT_TRUE(d.wants_close(1, why));
	EXPECT_EQ(d.record_count(), 1u);
	EXPECT_EQ(d.held_trigger_ptrs().size(), 0u);
}

TEST(Dispatch, HoldsKeepTriggersOutUntilTheyEnd)
{
	Dispatch d(config());
	d.set_now(1000);
	FakeSidecar s(d, 1);
	s.handshake(5);
	EXPECT_EQ(d.next_hold_end_ms(), -1);
	s.send(proto::Release{{}, {{"t", 2000}, {"u", 500}}});
	std::string why;
	EXPECT_FALSE(d.wants_close(1, why)) << why;
	EXPECT_FALSE(d.take_released()) << "no events given back";
	auto held = d.held_trigger_ptrs();
	ASSERT_EQ(held.size(), 2u);
	EXPECT_STREQ(held[0], "t");
	EXPECT_STREQ(held[1], "u");
	EXPECT_EQ(d.next_hold_end_ms(), 1500);
	d.set_now(1499);
	EXPECT_FALSE(d.expire_holds());
	d.set_now(1500);
	EXPECT_TRUE(d.expire_holds()) << "u's events are due again";
	held = d.held_trigger_ptrs();
	ASSERT_EQ(held.size(), 1u);
	EXPECT_STREQ(held[0], "t");
	EXPECT_EQ(d.next_hold_end_ms(), 3000);
	/* a later hold of the same trigger replaces the earlier one, and a hold of 0 ends it */
	s.send(proto::Release{{}, {{"t", 100}}});
	EXPECT_EQ(d.next_hold_end_ms(), 1600);
	s.send(proto::Release{{}, {{"t", 0}}});
	EXPECT_EQ(d.next_hold_end_ms(), -1);
	EXPECT_TRUE(d.take_released()) << "an ended hold puts its events back in reach";
	/* a huge hold is cut to an hour */
	s.send(proto::Release{{}, {{"t", UINT32_MAX}}});
	EXPECT_EQ(d.next_hold_end_ms(), 1500 + 3600 * 1000);
	d.set_now(1500 + 3600 * 1000);
	EXPECT_TRUE(d.expire_holds());
	EXPECT_EQ(d.held_trigger_ptrs().size(), 0u);
}
