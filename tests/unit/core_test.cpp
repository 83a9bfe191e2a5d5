/*
 * tests/unit/core_test.cpp
 *
 * Unit tests of the extension's pure C++ parts: argument validators, the event JSON writer,
 * the retry policy, the invocation-log JSON and the dispatcher's bookkeeping (handshake,
 * credits, claims, outcomes, returned claims).
 */
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dispatch.hpp"
#include "event_json.hpp"
#include "protocol.hpp"
#include "validation.hpp"

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
	/* at most kMaxWebhookLength bytes; the error states the bound */
	std::string longest = "https://example.com/" + std::string(kMaxWebhookLength - 20, 'a');
	EXPECT_EQ(webhook_problem(longest), "");
	EXPECT_NE(webhook_problem(longest + "a").find("at most 8192"), std::string::npos);
	EXPECT_NE(webhook_problem("https://example.com/" + std::string(1 << 20, 'a')), "");
}

TEST(Validation, Headers)
{
	EXPECT_EQ(header_name_problem("X-Api-Key"), "");
	EXPECT_NE(header_name_problem(""), "");
	EXPECT_NE(header_name_problem("X Key"), "");
	EXPECT_NE(header_name_problem("Content-Length"), "");
	EXPECT_NE(header_name_problem("host"), "");
	EXPECT_EQ(header_value_problem("Bearer abc"), "");
	EXPECT_EQ(header_value_problem(std::string(kMaxHeaderValueLength, 'v')), "");
	EXPECT_NE(header_value_problem(std::string(kMaxHeaderValueLength + 1, 'v')).find("at most 8192"),
			  std::string::npos);
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

TEST(InvocationJson, ClientError)
{
	proto::Outcome o = outcome(proto::OutcomeKind::ClientError, 0);
	o.error = "Timeout was reached";
	EXPECT_EQ(response_json(o),
			  "{\"type\": \"client_error\", \"data\": {\"message\": \"Timeout was reached\"}, \"version\": \"2\"}");
}

TEST(InvocationJson, InvalidUtf8IsReplaced)
{
	/* a response body is any bytes: the log must stay valid JSON (protocol/json_text.cpp) */
	proto::Outcome o = outcome(proto::OutcomeKind::HttpError, 500);
	o.response_body = std::string("ok \xff \xc3\x28 \xe2\x82 \xf0\x9f\x98\x80 \xc0\xaf a\0b", 22);
	std::string json = response_json(o);
	EXPECT_NE(json.find("\"body\": \"ok \\ufffd \\ufffd( \\ufffd\\ufffd \xf0\x9f\x98\x80 \\ufffd\\ufffd a\\u0000b\""),
			  std::string::npos)
		<< json;
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
