/*
 * tests/unit/sidecar_metrics_test.cpp
 *
 * The metrics registry and its Prometheus text rendering (sidecar/metrics.cpp), the sidecar's
 * metric definitions and how deliveries and Stats frames move them (event_metrics.cpp), and the
 * metrics endpoint's HTTP handling (http_server.cpp), including one exchange over loopback.
 */
#include "event_metrics.hpp"
#include "http_server.hpp"
#include "metrics.hpp"
#include "options.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <cmath>
#include <limits>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

using namespace hasura_events::sidecar;
namespace proto = hasura_events::proto;

namespace {

bool
contains(const std::string &text, const std::string &part)
{
	return text.find(part) != std::string::npos;
}

/* sample_line returns the line of text that starts with prefix followed by a space, or "" */
std::string
sample_value(const std::string &text, const std::string &series)
{
	size_t at = 0;
	while ((at = text.find(series + " ", at)) != std::string::npos) {
		if (at == 0 || text[at - 1] == '\n') {
			size_t start = at + series.size() + 1;
			return text.substr(start, text.find('\n', start) - start);
		}
		at++;
	}
	return "";
}

proto::Deliver
deliver(const std::string &trigger, int64_t created_at_ms, const std::string &body = "{}")
{
	proto::Deliver d;
	d.event_id = "00000000-0000-4000-8000-000000000001";
	d.trigger_name = trigger;
	d.webhook = "https://secret.example/hook?token=abc";
	d.body = body;
	d.created_at_ms = created_at_ms;
	return d;
}

} // namespace

TEST(SidecarMetrics, FormatsValues)
{
	EXPECT_EQ(format_metric_value(0), "0");
	EXPECT_EQ(format_metric_value(-0.0), "0");
	EXPECT_EQ(format_metric_value(42), "42");
	EXPECT_EQ(format_metric_value(-3), "-3");
	EXPECT_EQ(format_metric_value(0.005), "0.005");
	EXPECT_EQ(format_metric_value(0.1 + 0.2), "0.30000000000000004");
	EXPECT_EQ(format_metric_value(2.5), "2.5");
	EXPECT_EQ(format_metric_value(1e300), "1e+300");
	EXPECT_EQ(format_metric_value(18446744073709551615.0), "1.8446744073709552e+19");
	EXPECT_EQ(format_metric_value(std::nan("")), "NaN");
	EXPECT_EQ(format_metric_value(std::numeric_limits<double>::infinity()), "+Inf");
	EXPECT_EQ(format_metric_value(-std::numeric_limits<double>::infinity()), "-Inf");
	for (double v : {0.001, 123.456, 1.0 / 3, 6.02e23, 5e-324})
		EXPECT_EQ(strtod(format_metric_value(v).c_str(), nullptr), v) << v;
}

TEST(SidecarMetrics, EscapesLabelValuesAndHelp)
{
	EXPECT_EQ(escape_label_value("plain"), "plain");
	EXPECT_EQ(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
	EXPECT_EQ(escape_label_value("caf\xc3\xa9"), "caf\xc3\xa9");
	EXPECT_EQ(escape_label_value(std::string("x\xff"
											 "y",
											 3)),
			  "x\xef\xbf\xbdy")
		<< "invalid UTF-8 is replaced";
	EXPECT_EQ(escape_label_value("tab\there"), "tab\there");
	EXPECT_EQ(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
}

TEST(SidecarMetrics, CountersAndGauges)
{
	MetricsRegistry reg;
	MetricFamily &c = reg.add("x_total", "Things.", MetricFamily::Type::Counter, {"trigger", "status"});
	MetricFamily &g = reg.add("y", "A gauge.", MetricFamily::Type::Gauge);
	MetricFamily &empty = reg.add("z", "Never set.", MetricFamily::Type::Gauge, {"database"});
	c.inc({"t1", "success"});
	c.inc({"t1", "success"});
	c.inc({"t1", "failed"}, 3);
	c.inc({"only-one-value"}); /* wrong arity: ignored */
	g.set({}, 7);
	g.set({}, 5);
	EXPECT_EQ(c.size(), 2u);
	EXPECT_EQ(empty.size(), 0u);
	std::string text = reg.render();
	EXPECT_EQ(text, "# HELP x_total Things.\n"
					"# TYPE x_total counter\n"
					"x_total{trigger=\"t1\",status=\"failed\"} 3\n"
					"x_total{trigger=\"t1\",status=\"success\"} 2\n"
					"# HELP y A gauge.\n"
					"# TYPE y gauge\n"
					"y 5\n");
	c.remove({"t1", "failed"});
	EXPECT_FALSE(contains(reg.render(), "failed"));
}

TEST(SidecarMetrics, HistogramBucketsAreCumulativeAndInclusive)
{
	MetricsRegistry reg;
	MetricFamily &h = reg.add("h_seconds", "H.", MetricFamily::Type::Histogram, {"trigger"}, {0.1, 1, 10});
	for (double v : {0.05, 0.1, 0.5, 1.0, 5.0, 50.0})
		h.observe({"a"}, v);
	h.observe({"a"}, std::nan(""));
	h.observe({"a"}, std::numeric_limits<double>::infinity());
	std::string text = reg.render();
	EXPECT_EQ(text, "# HELP h_seconds H.\n"
					"# TYPE h_seconds histogram\n"
					"h_seconds_bucket{trigger=\"a\",le=\"0.1\"} 2\n"
					"h_seconds_bucket{trigger=\"a\",le=\"1\"} 4\n"
					"h_seconds_bucket{trigger=\"a\",le=\"10\"} 5\n"
					"h_seconds_bucket{trigger=\"a\",le=\"+Inf\"} 6\n"
					"h_seconds_sum{trigger=\"a\"} 56.65\n"
					"h_seconds_count{trigger=\"a\"} 6\n");
}

TEST(SidecarMetrics, UnlabelledHistogramHasOnlyLe)
{
	MetricsRegistry reg;
	MetricFamily &h = reg.add("u_seconds", "U.", MetricFamily::Type::Histogram, {}, {1});
	h.observe({}, 2);
	std::string text = reg.render();
	EXPECT_TRUE(contains(text, "u_seconds_bucket{le=\"1\"} 0\n")) << text;
	EXPECT_TRUE(contains(text, "u_seconds_bucket{le=\"+Inf\"} 1\n")) << text;
	EXPECT_TRUE(contains(text, "u_seconds_sum 2\n")) << text;
	EXPECT_TRUE(contains(text, "u_seconds_count 1\n")) << text;
}

TEST(SidecarMetrics, BucketListsAreAscending)
{
	for (const auto *b : {&kLatencyBuckets, &kAgeBuckets}) {
		ASSERT_FALSE(b->empty());
		for (size_t i = 1; i < b->size(); i++)
			EXPECT_LT((*b)[i - 1], (*b)[i]);
	}
}

TEST(SidecarEventMetrics, CountsAttemptsByOutcome)
{
	EventMetrics m;
	const int64_t now = 1700000000000;
	auto finish = [&](proto::OutcomeKind kind, bool http, bool reported, const std::string &trigger = "t") {
		EventMetrics::Finished f;
		f.kind = kind;
		f.http_sent = http;
		f.http_seconds = 0.2;
		f.request_bytes = 10;
		f.response_bytes = 4;
		f.reported = reported;
		proto::Deliver d = deliver(trigger, now - 1500);
		m.attempt_started("db", d, now - 1000);
		m.attempt_finished("db", d, f, now);
	};
	finish(proto::OutcomeKind::Delivered, true, true);
	finish(proto::OutcomeKind::Delivered, true, true);
	finish(proto::OutcomeKind::HttpError, true, true);
	finish(proto::OutcomeKind::ClientError, false, true); /* e.g. a missing env variable */
	finish(proto::OutcomeKind::HttpError, true, false);   /* connection gone: not processed */
	std::string text = m.render(3, 1, 2);
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"db\",trigger_name=\"t\",status=\"success\"}"),
		"2");
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"db\",trigger_name=\"t\",status=\"failed\"}"),
		"3");
	EXPECT_EQ(
		sample_value(text, "hasura_event_processed_total{source_name=\"db\",trigger_name=\"t\",status=\"success\"}"),
		"2");
	EXPECT_EQ(
		sample_value(text, "hasura_event_processed_total{source_name=\"db\",trigger_name=\"t\",status=\"failed\"}"),
		"2");
	EXPECT_EQ(sample_value(text, "hasura_event_trigger_request_bytes_total{source_name=\"db\",trigger_name=\"t\"}"),
			  "40");
	EXPECT_EQ(sample_value(text, "hasura_event_trigger_response_bytes_total{source_name=\"db\",trigger_name=\"t\"}"),
			  "16");
	EXPECT_EQ(
		sample_value(text, "hasura_event_webhook_processing_time_seconds_count{source_name=\"db\",trigger_name=\"t\"}"),
		"4");
	EXPECT_EQ(sample_value(text,
						   "hasura_event_webhook_processing_time_seconds_bucket{source_name=\"db\",trigger_name=\"t\","
						   "le=\"0.1\"}"),
			  "0");
	EXPECT_EQ(sample_value(text,
						   "hasura_event_webhook_processing_time_seconds_bucket{source_name=\"db\",trigger_name=\"t\","
						   "le=\"0.25\"}"),
			  "4");
	/* queue time 0.5 s each, processing time 1.5 s each */
	EXPECT_EQ(sample_value(text, "hasura_event_queue_time_seconds_count{source_name=\"db\",trigger_name=\"t\"}"), "5");
	EXPECT_EQ(sample_value(text, "hasura_event_queue_time_seconds_sum{source_name=\"db\",trigger_name=\"t\"}"), "2.5");
	EXPECT_EQ(sample_value(text, "hasura_event_processing_time_seconds_sum{source_name=\"db\",trigger_name=\"t\"}"),
			  "7.5");
	EXPECT_EQ(sample_value(
				  text, "hasura_event_processing_time_seconds_bucket{source_name=\"db\",trigger_name=\"t\",le=\"1\"}"),
			  "0");
	EXPECT_EQ(
		sample_value(text,
					 "hasura_event_processing_time_seconds_bucket{source_name=\"db\",trigger_name=\"t\",le=\"2.5\"}"),
		"5");
	EXPECT_EQ(sample_value(text, "hasura_event_trigger_http_workers"), "3");
	EXPECT_EQ(sample_value(text, "hasura_events_connected_workers"), "1");
	EXPECT_EQ(sample_value(text, "hasura_events_sidecar_queue_length"), "2");
	EXPECT_FALSE(contains(text, "secret.example")) << "URLs are never labels";
	EXPECT_FALSE(contains(text, "00000000-0000")) << "event ids are never labels";
}

TEST(SidecarEventMetrics, EventWithoutCreatedAtSkipsAgeHistograms)
{
	EventMetrics m;
	proto::Deliver d = deliver("t", 0);
	m.attempt_started("db", d, 1000);
	m.attempt_finished("db", d, EventMetrics::Finished{}, 2000);
	std::string text = m.render(0, 0, 0);
	EXPECT_FALSE(contains(text, "hasura_event_queue_time_seconds_count")) << text;
	EXPECT_FALSE(contains(text, "hasura_event_processing_time_seconds_count")) << text;
	EXPECT_TRUE(
		contains(text, "hasura_event_invocations_total{source_name=\"db\",trigger_name=\"t\",status=\"failed\"} 1"));
	/* a created_at in the future (clock skew) counts as 0 s */
	proto::Deliver future = deliver("t", 5000);
	m.attempt_started("db", future, 1000);
	EXPECT_EQ(
		sample_value(m.render(0, 0, 0), "hasura_event_queue_time_seconds_sum{source_name=\"db\",trigger_name=\"t\"}"),
		"0");
}

/* created_at_ms is any i64 on the wire: the age of an event from the far past is huge, not an
 * overflow (which wrapped to a negative age, counted as 0 s) */
TEST(SidecarEventMetrics, AgeOfTheEarliestCreatedAtDoesNotOverflow)
{
	EventMetrics m;
	const int64_t now = 1700000000000;
	proto::Deliver d = deliver("t", std::numeric_limits<int64_t>::min());
	m.attempt_started("db", d, now);
	m.attempt_finished("db", d, EventMetrics::Finished{}, now);
	std::string text = m.render(0, 0, 0);
	const double age = (double(now) - double(std::numeric_limits<int64_t>::min())) / 1000.0;
	for (const char *family : {"hasura_event_queue_time_seconds_sum", "hasura_event_processing_time_seconds_sum"}) {
		std::string sum = sample_value(text, std::string(family) + "{source_name=\"db\",trigger_name=\"t\"}");
		ASSERT_FALSE(sum.empty()) << text;
		EXPECT_DOUBLE_EQ(std::stod(sum), age) << family;
	}
}

/* The series an attempt moves are found once per database and trigger and kept: names that
 * would make the same key when simply joined stay apart, a figure appears only once something
 * happened to it, and a worker's disconnection (which drops its gauges) leaves them counting. */
TEST(SidecarEventMetrics, KeepsEachDatabaseAndTriggerApart)
{
	EventMetrics m;
	const int64_t now = 1700000000000;
	auto finish = [&](const std::string &db, const std::string &trigger, proto::OutcomeKind kind, bool http) {
		EventMetrics::Finished f;
		f.kind = kind;
		f.http_sent = http;
		f.http_seconds = 0.02;
		f.request_bytes = 7;
		proto::Deliver d = deliver(trigger, now - 100);
		m.attempt_started(db, d, now - 50);
		m.attempt_finished(db, d, f, now);
	};
	finish("ab", "c", proto::OutcomeKind::Delivered, true);
	finish("a", "bc", proto::OutcomeKind::ClientError, false);
	finish("ab", "c", proto::OutcomeKind::Delivered, true);
	m.worker_disconnected("ab");
	finish("ab", "c", proto::OutcomeKind::HttpError, true);
	std::string text = m.render(0, 0, 0);
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"ab\",trigger_name=\"c\",status=\"success\"}"),
		"2");
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"ab\",trigger_name=\"c\",status=\"failed\"}"),
		"1");
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"a\",trigger_name=\"bc\",status=\"failed\"}"),
		"1");
	EXPECT_FALSE(contains(text, "status=\"success\"} 1")) << text; /* a/bc never succeeded */
	EXPECT_EQ(sample_value(text, "hasura_event_trigger_request_bytes_total{source_name=\"ab\",trigger_name=\"c\"}"),
			  "21");
	EXPECT_EQ(sample_value(text, "hasura_event_queue_time_seconds_count{source_name=\"ab\",trigger_name=\"c\"}"), "3");
	EXPECT_EQ(sample_value(text, "hasura_event_queue_time_seconds_count{source_name=\"a\",trigger_name=\"bc\"}"), "1");
	/* no HTTP request for a/bc: none of the HTTP figures has a series for it */
	EXPECT_FALSE(contains(text, "hasura_event_webhook_processing_time_seconds_count{source_name=\"a\"")) << text;
	EXPECT_FALSE(contains(text, "hasura_event_trigger_request_bytes_total{source_name=\"a\"")) << text;
}

TEST(SidecarEventMetrics, StatsReplaceTriggerGauges)
{
	EventMetrics m;
	proto::Stats st;
	st.database = "db1";
	st.worker_restarts = 2;
	st.inflight = 5;
	st.fetches = {{0.002, 10}, {0.3, 4}};
	st.triggers = {{"a", 3, 12.5, 1, 0}, {"b", 1, 0.25, 0, 7}};
	m.apply_stats(st);
	proto::Stats other;
	other.database = "db2";
	other.triggers = {{"a", 9, 1, 0, 0}};
	m.apply_stats(other);
	std::string text = m.render(0, 2, 0);
	EXPECT_EQ(sample_value(text, "hasura_events_pending_events{source_name=\"db1\",trigger_name=\"a\"}"), "3");
	EXPECT_EQ(sample_value(text, "hasura_events_oldest_pending_age_seconds{source_name=\"db1\",trigger_name=\"a\"}"),
			  "12.5");
	EXPECT_EQ(sample_value(text, "hasura_events_retries_scheduled{source_name=\"db1\",trigger_name=\"a\"}"), "1");
	EXPECT_EQ(sample_value(text, "hasura_events_error_events{source_name=\"db1\",trigger_name=\"b\"}"), "7");
	EXPECT_EQ(sample_value(text, "hasura_events_inflight{source_name=\"db1\"}"), "5");
	EXPECT_EQ(sample_value(text, "hasura_events_worker_restarts_total{source_name=\"db1\"}"), "2");
	EXPECT_EQ(sample_value(text, "hasura_events_fetched_per_batch{source_name=\"db1\"}"), "4");
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_count{source_name=\"db1\"}"), "2");
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_bucket{source_name=\"db1\",le=\"0.005\"}"),
			  "1");
	EXPECT_EQ(sample_value(text, "hasura_events_pending_events{source_name=\"db2\",trigger_name=\"a\"}"), "9");

	/* the next Stats of db1 no longer lists b and has no fetch: b disappears, the batch size stays */
	st.triggers = {{"a", 0, 0, 0, 0}};
	st.fetches.clear();
	st.inflight = 0;
	m.apply_stats(st);
	text = m.render(0, 2, 0);
	EXPECT_EQ(sample_value(text, "hasura_events_pending_events{source_name=\"db1\",trigger_name=\"a\"}"), "0");
	EXPECT_FALSE(contains(text, "trigger=\"b\"")) << text;
	EXPECT_EQ(sample_value(text, "hasura_events_fetched_per_batch{source_name=\"db1\"}"), "4");
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_count{source_name=\"db1\"}"), "2");
	EXPECT_EQ(sample_value(text, "hasura_events_pending_events{source_name=\"db2\",trigger_name=\"a\"}"), "9");

	/* a disconnected worker's gauges go; its counters and histograms stay */
	m.worker_disconnected("db1");
	text = m.render(0, 1, 0);
	EXPECT_FALSE(contains(text, "hasura_events_pending_events{source_name=\"db1\"")) << text;
	EXPECT_FALSE(contains(text, "hasura_events_inflight{source_name=\"db1\"}")) << text;
	EXPECT_EQ(sample_value(text, "hasura_events_worker_restarts_total{source_name=\"db1\"}"), "2");
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_count{source_name=\"db1\"}"), "2");
	EXPECT_EQ(sample_value(text, "hasura_events_pending_events{source_name=\"db2\",trigger_name=\"a\"}"), "9");
}

TEST(SidecarEventMetrics, NonFiniteStatsRenderValidly)
{
	EventMetrics m;
	proto::Stats st;
	st.database = "d\"b";
	st.fetches = {{std::nan(""), 1}, {std::numeric_limits<double>::infinity(), 2}, {-1, 3}};
	st.triggers = {{"n\\a\nme", 1, std::nan(""), 0, 0}, {"inf", 1, -std::numeric_limits<double>::infinity(), 0, 0}};
	m.apply_stats(st);
	std::string text = m.render(0, 0, 0);
	EXPECT_EQ(
		sample_value(text,
					 "hasura_events_oldest_pending_age_seconds{source_name=\"d\\\"b\",trigger_name=\"n\\\\a\\nme\"}"),
		"NaN");
	EXPECT_EQ(
		sample_value(text, "hasura_events_oldest_pending_age_seconds{source_name=\"d\\\"b\",trigger_name=\"inf\"}"),
		"-Inf");
	/* non-finite fetch times are not observed; a negative one lands in the first bucket */
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_count{source_name=\"d\\\"b\"}"), "1");
	EXPECT_EQ(sample_value(text, "hasura_event_fetch_time_per_batch_seconds_sum{source_name=\"d\\\"b\"}"), "-1");
	EXPECT_EQ(sample_value(text, "hasura_events_fetched_per_batch{source_name=\"d\\\"b\"}"), "3");
}

TEST(SidecarEventMetrics, EveryFamilyHasHelpAndType)
{
	EventMetrics m;
	proto::Stats st;
	st.database = "db";
	st.fetches = {{0.01, 1}};
	st.triggers = {{"t", 1, 1, 1, 1}};
	m.apply_stats(st);
	proto::Deliver d = deliver("t", 1);
	EventMetrics::Finished f;
	f.http_sent = true;
	m.attempt_started("db", d, 2);
	m.attempt_finished("db", d, f, 3);
	std::string text = m.render(0, 0, 0);
	for (const char *name :
		 {"hasura_event_fetch_time_per_batch_seconds", "hasura_events_fetched_per_batch",
		  "hasura_event_queue_time_seconds", "hasura_event_webhook_processing_time_seconds",
		  "hasura_event_processing_time_seconds", "hasura_event_trigger_http_workers", "hasura_event_invocations_total",
		  "hasura_event_processed_total", "hasura_event_trigger_request_bytes_total",
		  "hasura_event_trigger_response_bytes_total", "hasura_events_pending_events",
		  "hasura_events_oldest_pending_age_seconds", "hasura_events_retries_scheduled", "hasura_events_error_events",
		  "hasura_events_inflight", "hasura_events_worker_restarts_total", "hasura_events_connected_workers",
		  "hasura_events_sidecar_queue_length"}) {
		EXPECT_TRUE(contains(text, std::string("# HELP ") + name + " ")) << name;
		EXPECT_TRUE(contains(text, std::string("# TYPE ") + name + " ")) << name;
	}
}

TEST(SidecarHttp, ParsesRequests)
{
	HttpRequest r;
	EXPECT_EQ(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", r), ParseResult::Ok);
	EXPECT_EQ(r.method, "GET");
	EXPECT_EQ(r.path, "/metrics");
	EXPECT_EQ(r.version, "HTTP/1.1");
	EXPECT_EQ(parse_http_request("HEAD /healthz?verbose=1 HTTP/1.0\n\n", r), ParseResult::Ok);
	EXPECT_EQ(r.method, "HEAD");
	EXPECT_EQ(r.path, "/healthz");
	EXPECT_EQ(parse_http_request("GET / HTTP/1.1\r\n\r\nignored body", r), ParseResult::Ok);
	EXPECT_EQ(parse_http_request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", r), ParseResult::Ok)
		<< "the method is refused by the handler, not the parser";
	EXPECT_EQ(r.method, "POST");
}

TEST(SidecarHttp, WaitsForTheWholeHead)
{
	HttpRequest r;
	EXPECT_EQ(parse_http_request("", r), ParseResult::NeedMore);
	EXPECT_EQ(parse_http_request("GET /metrics HTTP/1.1\r\n", r), ParseResult::NeedMore);
	EXPECT_EQ(parse_http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r", r), ParseResult::NeedMore);
}

TEST(SidecarHttp, RefusesMalformedRequests)
{
	HttpRequest r;
	for (const char *bad :
		 {"GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2\r\n\r\n",
		  "GET metrics HTTP/1.1\r\n\r\n", "GET http://x/metrics HTTP/1.1\r\n\r\n", "G(T /metrics HTTP/1.1\r\n\r\n",
		  " GET /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/1.1 extra\r\n\r\n",
		  "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", "GET /metrics HTTP/1.1\r\n: empty name\r\n\r\n",
		  "GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", "\r\n\r\n"})
		EXPECT_EQ(parse_http_request(bad, r), ParseResult::Bad) << bad;
	EXPECT_EQ(parse_http_request(std::string("GET /a\x01 HTTP/1.1\r\n\r\n"), r), ParseResult::Bad);
}

TEST(SidecarHttp, BoundsRequestSize)
{
	HttpRequest r;
	std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestBytes, 'a');
	EXPECT_EQ(parse_http_request(big, r), ParseResult::TooLarge);
	EXPECT_EQ(parse_http_request(big + "\r\n\r\n", r), ParseResult::TooLarge);
	std::string fits = "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestBytes - 40, 'a') + "\r\n\r\n";
	EXPECT_EQ(parse_http_request(fits, r), ParseResult::Ok);
}

TEST(SidecarHttp, FormatsResponses)
{
	HttpResponse resp;
	resp.status = 503;
	resp.body = "not connected to any worker\n";
	EXPECT_EQ(format_http_response(resp, false), "HTTP/1.1 503 Service Unavailable\r\n"
												 "Content-Type: text/plain; charset=utf-8\r\n"
												 "Content-Length: 28\r\n"
												 "Cache-Control: no-store\r\n"
												 "Connection: close\r\n\r\n"
												 "not connected to any worker\n");
	resp.status = 405;
	resp.headers = {{"Allow", "GET, HEAD"}};
	std::string head = format_http_response(resp, true);
	EXPECT_TRUE(contains(head, "HTTP/1.1 405 Method Not Allowed\r\n"));
	EXPECT_TRUE(contains(head, "Allow: GET, HEAD\r\n"));
	EXPECT_TRUE(contains(head, "Content-Length: 28\r\n")) << "HEAD keeps the length of the body it omits";
	EXPECT_FALSE(contains(head, "not connected"));
}

TEST(SidecarHttp, ParsesListenAddresses)
{
	ListenAddress a;
	ASSERT_TRUE(parse_listen_address("127.0.0.1:9464", a));
	EXPECT_EQ(a.host, "127.0.0.1");
	EXPECT_EQ(a.port, 9464);
	EXPECT_FALSE(a.ipv6);
	ASSERT_TRUE(parse_listen_address("[::1]:0", a));
	EXPECT_EQ(a.host, "::1");
	EXPECT_EQ(a.port, 0);
	EXPECT_TRUE(a.ipv6);
	for (const char *bad : {"", "127.0.0.1", "127.0.0.1:", ":9464", "localhost:9464", "127.0.0.1:65536", "127.0.0.1:-1",
							"127.0.0.1:94a4", "::1:9464", "[::1]", "[127.0.0.1]:1", "1.2.3:80", "127.0.0.1:123456"})
		EXPECT_FALSE(parse_listen_address(bad, a)) << bad;
}

TEST(SidecarHttp, MetricsAddressOption)
{
	auto no_env = [](const char *) -> const char * { return nullptr; };
	ParsedArgs p = parse_args({}, no_env);
	EXPECT_EQ(p.options.metrics_address, "127.0.0.1:9464");
	EXPECT_FALSE(p.options.metrics_address_set) << "the default may be taken by another sidecar: not fatal";
	p = parse_args({"--metrics-address", "off"}, no_env);
	ASSERT_EQ(p.action, ParsedArgs::Action::Run);
	EXPECT_EQ(p.options.metrics_address, "");
	p = parse_args({"--metrics-address", "127.0.0.1:9464"}, no_env);
	EXPECT_TRUE(p.options.metrics_address_set);
	p = parse_args({"--metrics-address=[::1]:9000"}, no_env);
	EXPECT_EQ(p.options.metrics_address, "[::1]:9000");
	auto env = [](const char *name) -> const char * {
		return std::string(name) == "HASURA_EVENTS_METRICS_ADDRESS" ? "127.0.0.2:1234" : nullptr;
	};
	EXPECT_EQ(parse_args({}, env).options.metrics_address, "127.0.0.2:1234");
	EXPECT_TRUE(parse_args({}, env).options.metrics_address_set);
	EXPECT_EQ(parse_args({"--metrics-address", "off"}, env).options.metrics_address, "") << "the flag wins";
	p = parse_args({"--metrics-address", "example.com:80"}, no_env);
	EXPECT_EQ(p.action, ParsedArgs::Action::Error);
	EXPECT_TRUE(contains(p.error, "--metrics-address")) << p.error;
	auto bad_env = [](const char *name) -> const char * {
		return std::string(name) == "HASURA_EVENTS_METRICS_ADDRESS" ? "9464" : nullptr;
	};
	p = parse_args({}, bad_env);
	EXPECT_EQ(p.action, ParsedArgs::Action::Error);
	EXPECT_TRUE(contains(p.error, "HASURA_EVENTS_METRICS_ADDRESS")) << p.error;
}

namespace {

/*
 * http_exchange connects to the server, sends request, and drives the server until the connection
 * is closed; returns everything received.
 */
std::string
http_exchange(HttpServer &server, const std::string &request)
{
	ListenAddress a;
	EXPECT_TRUE(parse_listen_address(server.bound_address(), a));
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin {};
	sin.sin_family = AF_INET;
	sin.sin_port = htons(a.port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	EXPECT_EQ(connect(fd, reinterpret_cast<struct sockaddr *>(&sin), sizeof sin), 0);
	EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL), ssize_t(request.size()));
	std::string got;
	for (int turn = 0; turn < 200; turn++) {
		std::vector<struct pollfd> fds;
		for (const HttpServer::PollFd &p : server.poll_fds())
			fds.push_back({p.fd, short(p.want_write ? POLLOUT : POLLIN), 0});
		fds.push_back({fd, POLLIN, 0});
		poll(fds.data(), fds.size(), 20);
		for (size_t i = 0; i + 1 < fds.size(); i++) {
			if (fds[i].revents)
				server.on_ready(fds[i].fd, fds[i].revents & (POLLIN | POLLHUP | POLLERR), fds[i].revents & POLLOUT);
		}
		if (fds.back().revents) {
			char buf[4096];
			ssize_t n = recv(fd, buf, sizeof buf, 0);
			if (n <= 0)
				break;
			got.append(buf, size_t(n));
		}
	}
	close(fd);
	return got;
}

} // namespace

TEST(SidecarHttp, ServesOverLoopback)
{
	int calls = 0;
	HttpServer server([&](const HttpRequest &req) {
		calls++;
		HttpResponse r;
		r.body = "path=" + req.path + "\n";
		return r;
	});
	ListenAddress a;
	ASSERT_TRUE(parse_listen_address("127.0.0.1:0", a));
	server.listen(a);
	EXPECT_NE(server.bound_address(), "127.0.0.1:0") << "the real port is reported";

	std::string got = http_exchange(server, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	EXPECT_EQ(got.substr(0, 17), "HTTP/1.1 200 OK\r\n") << got;
	EXPECT_TRUE(contains(got, "\r\n\r\npath=/metrics\n")) << got;
	got = http_exchange(server, "HEAD /x HTTP/1.1\r\n\r\n");
	EXPECT_TRUE(contains(got, "Content-Length: 8\r\n")) << got;
	EXPECT_FALSE(contains(got, "path=")) << got;
	got = http_exchange(server, "BROKEN\r\n\r\n");
	EXPECT_EQ(got.substr(0, 24), "HTTP/1.1 400 Bad Request") << got;
	got = http_exchange(server, "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestBytes, 'a'));
	EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 431") << got;
	EXPECT_EQ(calls, 2);
	EXPECT_EQ(server.clients(), 0u) << "every connection is closed after its response";

	/* a client that never completes its request is dropped at its deadline */
	int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin {};
	sin.sin_family = AF_INET;
	ASSERT_TRUE(parse_listen_address(server.bound_address(), a));
	sin.sin_port = htons(a.port);
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	ASSERT_EQ(connect(idle, reinterpret_cast<struct sockaddr *>(&sin), sizeof sin), 0);
	for (int i = 0; i < 50 && server.clients() == 0; i++) {
		struct pollfd p = {server.poll_fds()[0].fd, POLLIN, 0};
		poll(&p, 1, 20);
		if (p.revents)
			server.on_ready(p.fd, true, false);
	}
	EXPECT_EQ(server.clients(), 1u);
	int wait = server.expire(HttpServer::Clock::now(), 100000);
	EXPECT_GT(wait, 0);
	EXPECT_LE(wait, 5001);
	server.expire(HttpServer::Clock::now() + HttpServer::kClientTimeout + std::chrono::seconds(1), 1000);
	EXPECT_EQ(server.clients(), 0u);
	close(idle);
}

TEST(SidecarEventMetrics, WebhookConcurrencyLimits)
{
	EventMetrics m;
	m.webhook_limit("http://hook.example/a", false, 32);
	m.webhook_limit("HOOK_URL", true, 32);
	m.webhook_limit("http://hook.example/a", false, 40);
	std::string text = m.render(0, 0, 0);
	EXPECT_EQ(sample_value(text, "hasura_events_webhook_concurrency_limit{webhook=\"http://hook.example/a\","
								 "from_env=\"false\"}"),
			  "40");
	/* a webhook from the environment is shown by its variable's name, never its value; a URL
	 * that happens to read like that name is another series */
	m.webhook_limit("HOOK_URL", false, 50);
	EXPECT_EQ(sample_value(m.render(0, 0, 0),
						   "hasura_events_webhook_concurrency_limit{webhook=\"HOOK_URL\",from_env=\"true\"}"),
			  "32");
	m.forget_webhook("HOOK_URL", true);
	text = m.render(0, 0, 0);
	EXPECT_EQ(text.find("from_env=\"true\""), std::string::npos);
	EXPECT_EQ(sample_value(text, "hasura_events_webhook_concurrency_limit{webhook=\"HOOK_URL\",from_env=\"false\"}"),
			  "50");
}

/* hasura_event_processed_total counts as Hasura's (retryOrSetError in Hasura/Eventing/EventTrigger.hs
 * counts {status="failed"} only when the tries are exhausted and there is no Retry-After): one per
 * event, not one per failed attempt */
TEST(SidecarEventMetrics, ProcessedCountsAnEventOnceAsHasura)
{
	auto body = [](int max_retries, int current_retry) {
		return "{\"id\": \"e\", \"event\": {\"op\": \"INSERT\", \"data\": {\"delivery_info\": 7}}, \"created_at\": "
			   "\"2024-01-01T00:00:00Z\", \"delivery_info\": {\"max_retries\": " +
			   std::to_string(max_retries) + ", \"current_retry\": " + std::to_string(current_retry) + "}}";
	};
	EXPECT_FALSE(final_failure(deliver("t", 0, body(2, 0)), -1));
	EXPECT_FALSE(final_failure(deliver("t", 0, body(2, 1)), -1));
	EXPECT_TRUE(final_failure(deliver("t", 0, body(2, 2)), -1));
	EXPECT_TRUE(final_failure(deliver("t", 0, body(0, 0)), -1));
	EXPECT_FALSE(final_failure(deliver("t", 0, body(0, 0)), 5)) << "a Retry-After keeps it retrying";
	EXPECT_TRUE(final_failure(deliver("t", 0, body(0, 0)), 0)) << "Retry-After 0 is none (Hasura: > 0 only)";
	EXPECT_TRUE(final_failure(deliver("t", 0, "{}"), -1)) << "no delivery_info: final";

	EventMetrics m;
	auto attempt = [&](proto::OutcomeKind kind, int current_retry) {
		EventMetrics::Finished f;
		f.kind = kind;
		m.attempt_finished("db", deliver("t", 0, body(2, current_retry)), f, 1000);
	};
	/* one event failing three times (num_retries 2), one failing once then delivered */
	attempt(proto::OutcomeKind::HttpError, 0);
	attempt(proto::OutcomeKind::ClientError, 1);
	attempt(proto::OutcomeKind::HttpError, 2);
	attempt(proto::OutcomeKind::HttpError, 0);
	attempt(proto::OutcomeKind::Delivered, 1);
	std::string text = m.render(0, 0, 0);
	EXPECT_EQ(
		sample_value(text, "hasura_event_invocations_total{source_name=\"db\",trigger_name=\"t\",status=\"failed\"}"),
		"4");
	EXPECT_EQ(
		sample_value(text, "hasura_event_processed_total{source_name=\"db\",trigger_name=\"t\",status=\"failed\"}"),
		"1");
	EXPECT_EQ(
		sample_value(text, "hasura_event_processed_total{source_name=\"db\",trigger_name=\"t\",status=\"success\"}"),
		"1");
}
