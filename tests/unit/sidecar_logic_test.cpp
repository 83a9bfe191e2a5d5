/*
 * tests/unit/sidecar_logic_test.cpp
 *
 * Retry-After parsing, JSON log quoting, socket discovery, and the attempt's response headers and
 * timeout (sidecar/retry_after.cpp, json_log.cpp, discovery.cpp, attempt.cpp).
 */
#include "attempt.hpp"
#include "discovery.hpp"
#include "json_log.hpp"
#include "retry_after.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace hasura_events::sidecar;

TEST(SidecarRetryAfter, Seconds)
{
	EXPECT_EQ(parse_retry_after("120", 0), 120);
	EXPECT_EQ(parse_retry_after(" 0 ", 0), 0);
	EXPECT_EQ(parse_retry_after("99999999999999999999999", 0), kMaxRetryAfterSec);
	EXPECT_EQ(parse_retry_after("-5", 0), -1);
	EXPECT_EQ(parse_retry_after("1.5", 0), -1);
	EXPECT_EQ(parse_retry_after("", 0), -1);
	EXPECT_EQ(parse_retry_after("   ", 0), -1);
	EXPECT_EQ(parse_retry_after("soon", 0), -1);
	EXPECT_EQ(parse_retry_after("+5", 0), -1);
}

TEST(SidecarRetryAfter, HttpDates)
{
	const time_t t = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
	EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t - 30), 30);
	EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", t - 30), 30);
	EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", t - 30), 30);
	EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + 100), 0) << "a past date means now";
	EXPECT_EQ(parse_retry_after("Sun, 06 Nov 2094 08:49:37 GMT", t), kMaxRetryAfterSec);
	EXPECT_EQ(parse_retry_after("Someday, never", t), -1);
}

TEST(SidecarLog, JsonQuote)
{
#define FFFD "\xef\xbf\xbd" /* U+FFFD as UTF-8 (an escape would not convert into every database encoding) */
	EXPECT_EQ(json_quote("plain"), "\"plain\"");
	EXPECT_EQ(json_quote("q\"b\\n\nt\tc\x01"), "\"q\\\"b\\\\n\\nt\\tc\\u0001\"");
	EXPECT_EQ(json_quote("h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"h\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	EXPECT_EQ(json_quote("bad\xff\xc3"), "\"bad" FFFD FFFD "\"");
	EXPECT_EQ(json_quote("\xc0\xaf"), "\"" FFFD FFFD "\"") << "overlong encoding";
	EXPECT_EQ(json_quote("\xed\xa0\x80"), "\"" FFFD FFFD FFFD "\"") << "surrogate";
	EXPECT_EQ(json_quote(std::string("\0", 1)), "\"" FFFD "\"") << "U+0000: jsonb cannot read it back";
}

TEST(SidecarLog, Timestamp)
{
	EXPECT_EQ(format_timestamp(784111777123), "1994-11-06T08:49:37.123Z");
	EXPECT_EQ(format_timestamp(0), "1970-01-01T00:00:00.000Z");
	/* the per-second part is cached: the same second, the next one, and back */
	EXPECT_EQ(format_timestamp(784111777999), "1994-11-06T08:49:37.999Z");
	EXPECT_EQ(format_timestamp(784111778000), "1994-11-06T08:49:38.000Z");
	EXPECT_EQ(format_timestamp(784111777001), "1994-11-06T08:49:37.001Z");
	EXPECT_EQ(format_timestamp(-1), "1969-12-31T23:59:59.999Z");
}

TEST(SidecarLog, LineFormatAndLevels)
{
	set_log_level(LogLevel::Info);
	LogLine line(LogLevel::Info, "attempt");
	line.str("event_id", "e\"1").num("status", 503).boolean("x", true);
	EXPECT_NE(
		line.text().find("\"level\":\"info\",\"msg\":\"attempt\",\"event_id\":\"e\\\"1\",\"status\":503,\"x\":true"),
		std::string::npos)
		<< line.text();
	EXPECT_TRUE(LogLine(LogLevel::Debug, "hidden").str("k", "v").text().empty());
	EXPECT_FALSE(log_enabled(LogLevel::Debug));
	EXPECT_TRUE(log_enabled(LogLevel::Error));
}

/* What stderr received: read from the pipe that stands in for it (non-blocking). */
static std::string
drain_pipe(int fd)
{
	std::string got;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		got.append(buf, size_t(n));
	return got;
}

TEST(SidecarLog, InfoLinesWaitForTheFlushWarningsDoNot)
{
	set_log_level(LogLevel::Info);
	log_flush();
	int p[2];
	ASSERT_EQ(pipe2(p, O_NONBLOCK), 0);
	ASSERT_GE(fcntl(p[1], F_SETPIPE_SZ, 256 * 1024), 128 * 1024); /* room for a whole 64 KiB queue */
	int saved = dup(STDERR_FILENO);
	ASSERT_GE(saved, 0);
	ASSERT_EQ(dup2(p[1], STDERR_FILENO), STDERR_FILENO);

	LogLine(LogLevel::Info, "first").emit();
	LogLine(LogLevel::Info, "second").emit();
	std::string before_flush = drain_pipe(p[0]);
	log_flush();
	std::string flushed = drain_pipe(p[0]);
	LogLine(LogLevel::Info, "third").emit();
	LogLine(LogLevel::Warn, "trouble").str("k", "v").emit(); /* writes the queue, in order, with it */
	std::string with_warning = drain_pipe(p[0]);
	log_flush(); /* nothing left */
	std::string after = drain_pipe(p[0]);
	/* a queue past 64 KiB is written without a flush */
	std::string unflushed_big;
	int lines_before_written = 0;
	for (int i = 0; i < 2000 && unflushed_big.empty(); i++) {
		LogLine(LogLevel::Info, "many").str("pad", std::string(100, 'x')).emit();
		unflushed_big = drain_pipe(p[0]);
		lines_before_written = i + 1;
	}

	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[0]);
	close(p[1]);

	EXPECT_EQ(before_flush, "");
	EXPECT_NE(flushed.find("\"msg\":\"first\"}\n{"), std::string::npos) << flushed;
	EXPECT_NE(flushed.find("\"msg\":\"second\"}\n"), std::string::npos) << flushed;
	size_t third = with_warning.find("\"msg\":\"third\"}");
	size_t trouble = with_warning.find("\"msg\":\"trouble\",\"k\":\"v\"}");
	ASSERT_NE(third, std::string::npos) << with_warning;
	ASSERT_NE(trouble, std::string::npos) << with_warning;
	EXPECT_LT(third, trouble);
	EXPECT_EQ(after, "");
	size_t lines = 0;
	for (char c : unflushed_big)
		lines += c == '\n';
	EXPECT_EQ(lines, size_t(lines_before_written));
	EXPECT_GE(unflushed_big.size(), 64u * 1024);
	EXPECT_LT(unflushed_big.size(), 64u * 1024 + 400);
}

TEST(SidecarDiscovery, NameMatching)
{
	EXPECT_TRUE(socket_name_matches("hasura_events.sock", "hasura_events.sock"));
	EXPECT_TRUE(socket_name_matches("hasura_events.sock", "hasura_events.sock.16384"));
	EXPECT_FALSE(socket_name_matches("hasura_events.sock", "hasura_events.sock."));
	EXPECT_FALSE(socket_name_matches("hasura_events.sock", "hasura_events.sockX"));
	EXPECT_FALSE(socket_name_matches("hasura_events.sock", "hasura_events.so"));
	EXPECT_FALSE(socket_name_matches("hasura_events.sock", "other.sock.1"));
	EXPECT_FALSE(socket_name_matches("", "x"));
}

TEST(SidecarDiscovery, ScanFindsOnlySockets)
{
	char tmpl[] = "/tmp/hasura_events_discovery_XXXXXX";
	ASSERT_NE(mkdtemp(tmpl), nullptr);
	std::string dir = tmpl;
	std::vector<int> fds;
	auto make_socket = [&](const std::string &name) {
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un a = {};
		a.sun_family = AF_UNIX;
		snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dir.c_str(), name.c_str());
		ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a), 0);
		fds.push_back(fd);
	};
	make_socket("he.sock.5");
	make_socket("he.sock");
	make_socket("he.sockets");
	make_socket("other.1");
	close(open((dir + "/he.sock.lock").c_str(), O_CREAT | O_WRONLY, 0600)); /* a regular file */
	std::vector<std::string> found = scan_sockets(dir + "/he.sock");
	EXPECT_EQ(found, (std::vector<std::string>{dir + "/he.sock", dir + "/he.sock.5"}));
	std::string error;
	EXPECT_TRUE(scan_sockets("/nonexistent-dir/he.sock", &error).empty());
	EXPECT_NE(error.find("/nonexistent-dir"), std::string::npos);
	for (int fd : fds)
		close(fd);
	for (const char *n : {"he.sock.5", "he.sock", "he.sockets", "other.1", "he.sock.lock"})
		unlink((dir + "/" + n).c_str());
	rmdir(dir.c_str());
}

TEST(SidecarDiscovery, Backoff)
{
	Backoff b;
	std::vector<uint32_t> got;
	for (int i = 0; i < 8; i++)
		got.push_back(b.next_delay_ms());
	EXPECT_EQ(got, (std::vector<uint32_t>{100, 200, 400, 800, 1600, 3200, 5000, 5000}));
	b.reset();
	EXPECT_EQ(b.next_delay_ms(), 100u);
}

/* header lines as curl's header callback gets them, CRLF included */
static ResponseHeaders
collect(std::initializer_list<const char *> lines)
{
	ResponseHeaders h;
	for (const char *l : lines)
		collect_response_header(h, l);
	return h;
}

TEST(SidecarResponseHeaders, NamesValuesAndStatusLines)
{
	ResponseHeaders h = collect({"HTTP/1.1 100 Continue\r\n", "X-Early: 1\r\n", "\r\n", "HTTP/1.1 200 OK\r\n",
								 "Content-Type:  application/json \t\r\n", "Retry-After:5\r\n", "no colon here\r\n",
								 "X-Empty:\r\n", "\r\n"});
	EXPECT_EQ(h, (ResponseHeaders{{"Content-Type", "application/json"}, {"Retry-After", "5"}, {"X-Empty", ""}}));
}

/* Obsolete line folding: curl passes a line that starts with a blank on as its own header line.
 * A folded line of blanks only once threw std::out_of_range through curl's frames. */
TEST(SidecarResponseHeaders, FoldedLines)
{
	ResponseHeaders h = collect({"HTTP/1.1 200 OK\r\n", "X-Folded: first\r\n", "  second  \r\n", " \r\n", "\t\r\n",
								 " \t \r\n", "\tthird\r\n", "X-Empty:\r\n", " now\r\n", "\r\n"});
	EXPECT_EQ(h, (ResponseHeaders{{"X-Folded", "first second third"}, {"X-Empty", "now"}}));
	/* a folded line with no header before it is dropped */
	EXPECT_TRUE(collect({"HTTP/1.1 200 OK\r\n", " orphan\r\n", "\t\r\n"}).empty());
}

TEST(SidecarResponseHeaders, Bounded)
{
	ResponseHeaders h;
	collect_response_header(h, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < 500; i++)
		collect_response_header(h, "X-Many: " + std::to_string(i) + "\r\n");
	EXPECT_EQ(h.size(), kMaxResponseHeaders);
	h.clear();
	std::string big(1000, 'v');
	for (int i = 0; i < 200; i++)
		collect_response_header(h, "X-Big: " + big + "\r\n");
	size_t bytes = 0;
	for (const auto &kv : h)
		bytes += kv.first.size() + kv.second.size();
	EXPECT_LE(bytes, kMaxResponseHeaderBytes);
	EXPECT_GT(bytes, kMaxResponseHeaderBytes - 1100);
	/* folding cannot grow a header past the bound either */
	for (int i = 0; i < 200; i++)
		collect_response_header(h, " " + big + "\r\n");
	bytes = 0;
	for (const auto &kv : h)
		bytes += kv.first.size() + kv.second.size();
	EXPECT_LE(bytes, kMaxResponseHeaderBytes); /* a folded line's space replaces its leading blank */
}

TEST(SidecarAttempt, CurlTimeout)
{
	EXPECT_EQ(curl_timeout_sec(0), 60);
	EXPECT_EQ(curl_timeout_sec(1), 1);
	EXPECT_EQ(curl_timeout_sec(60), 60);
	EXPECT_EQ(curl_timeout_sec(2147483), 2147483);
	EXPECT_EQ(curl_timeout_sec(2147484), 2147483);
	EXPECT_EQ(curl_timeout_sec(UINT32_MAX), 2147483);
	/* curl takes every value curl_timeout_sec gives */
	CURL *h = curl_easy_init();
	ASSERT_NE(h, nullptr);
	for (uint32_t t : {0u, 1u, 2147483u, 2147484u, 3000000u, uint32_t(INT32_MAX), UINT32_MAX})
		EXPECT_EQ(curl_easy_setopt(h, CURLOPT_TIMEOUT, curl_timeout_sec(t)), CURLE_OK) << t;
	EXPECT_EQ(curl_easy_setopt(h, CURLOPT_TIMEOUT, 3000000L), CURLE_BAD_FUNCTION_ARGUMENT);
	curl_easy_cleanup(h);
}
