/*
 * tests/unit/sidecar_parsers_fuzz_test.cpp
 *
 * Seeded mutation fuzzing of the sidecar's parsers of outside text: the metrics endpoint's
 * request parser (reachable by any local client), Retry-After values (sent by webhooks), URL
 * and header templates, url_host and redact (applied to webhooks' error texts), and listen
 * addresses. The suite unit-asan runs them under AddressSanitizer and UndefinedBehaviorSanitizer.
 * Besides not crashing, each keeps what its header promises.
 */
#include "http_server.hpp"
#include "resolve.hpp"
#include "retry_after.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace hasura_events::sidecar;
namespace proto = hasura_events::proto;

namespace {

std::string
mutated(const std::vector<std::string> &seeds, std::mt19937 &rng)
{
	static const char *const pieces[] = {
		"{{",  "}}",      "\r\n", "\r\n\r\n", " ", "\t",     ":", "[", "]", "%", "\0", "\xff", "99999999999999999999",
		"GMT", "http://", "?",    "#",        "@", "{{ A }}"};
	std::string s = seeds[rng() % seeds.size()];
	for (int k = 0, n = 1 + rng() % 4; k < n; k++) {
		size_t at = s.empty() ? 0 : rng() % (s.size() + 1);
		switch (rng() % 5) {
		case 0:
			if (!s.empty())
				s[at % s.size()] = char(rng());
			break;
		case 1: s.resize(at); break;
		case 2: s.insert(at, pieces[rng() % (sizeof pieces / sizeof pieces[0])]); break;
		case 3: s.insert(at, std::string(rng() % 64, char(rng()))); break;
		case 4: s.erase(at, rng() % 8); break;
		}
	}
	return s;
}

const char *const kSecret = "s3cr3t-value";

const char *
env_of(const char *name)
{
	std::string n(name);
	if (n.empty() || n[0] == 'U')
		return nullptr; /* unset */
	return kSecret;
}

} // namespace

TEST(SidecarParsersFuzz, HttpRequests)
{
	std::mt19937 rng(41);
	const std::vector<std::string> seeds = {
		"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD /healthz HTTP/1.0\r\n\r\n",
		"GET /metrics?x=1 HTTP/1.1\r\nA: b\r\nC:d\r\n\r\nbody", std::string(kMaxRequestBytes + 10, 'G')};
	for (int i = 0; i < 100000; i++) {
		std::string s = mutated(seeds, rng);
		HttpRequest r;
		ParseResult res = parse_http_request(s, r);
		if (res == ParseResult::Ok) {
			ASSERT_FALSE(r.method.empty()) << s;
		}
		if (s.size() > kMaxRequestBytes + 4 && s.find("\r\n\r\n") == std::string::npos) {
			ASSERT_NE(res, ParseResult::NeedMore) << "an unbounded head is waited for";
		}
	}
}

TEST(SidecarParsersFuzz, RetryAfterValues)
{
	std::mt19937 rng(42);
	const std::vector<std::string> seeds = {"120",
											" 5 ",
											"Wed, 21 Oct 2015 07:28:00 GMT",
											"Sunday, 06-Nov-94 08:49:37 GMT",
											"Sun Nov  6 08:49:37 1994",
											"Fri, 31 Dec 9999 23:59:59 GMT",
											""};
	const time_t now = 1700000000;
	for (int i = 0; i < 50000; i++) {
		std::string s = mutated(seeds, rng);
		int64_t v = parse_retry_after(s, now);
		ASSERT_TRUE(v == -1 || (v >= 0 && v <= kMaxRetryAfterSec)) << s << " -> " << v;
	}
}

TEST(SidecarParsersFuzz, TemplatesHostsAndRedaction)
{
	std::mt19937 rng(43);
	const std::vector<std::string> seeds = {
		"https://{{HOST}}/path?x={{ TOKEN }}", "{{UNSET}}",        "{{",   "}}{{A}}",
		"http://user:pw@[::1]:8080/x#f",       "HASURA_GRAPHQL_X", "plain"};
	EnvLookup env = env_of;
	for (int i = 0; i < 100000; i++) {
		std::string s = mutated(seeds, rng);
		std::vector<std::string> secrets;
		Resolution r = expand_templates(s, env, &secrets);
		if (!r.ok) {
			ASSERT_EQ(r.error.find(kSecret), std::string::npos) << "an error names a resolved value: " << r.error;
		}
		Resolution l = lookup_env_var(s, env);
		if (!l.ok) {
			ASSERT_EQ(l.error.find(kSecret), std::string::npos) << l.error;
		}
		url_host(s);
		std::string red = redact(s + kSecret + s, {kSecret, s});
		ASSERT_EQ(red.find(kSecret), std::string::npos) << red;
		proto::Deliver d;
		d.webhook = s;
		d.webhook_from_env = rng() % 2;
		d.headers = {{mutated(seeds, rng), mutated(seeds, rng), bool(rng() % 2)}};
		ResolvedRequest req = resolve_request(d, env, "hasura-events/test");
		if (!req.ok) {
			ASSERT_EQ(req.error.find(kSecret), std::string::npos) << req.error;
		}
		ListenAddress a;
		parse_listen_address(s, a);
	}
}
