/*
 * tests/unit/sidecar_resolve_test.cpp
 *
 * Webhook URL and header resolution from the environment (sidecar/resolve.cpp).
 */
#include "resolve.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace hasura_events::sidecar;
namespace proto = hasura_events::proto;

namespace {

std::map<std::string, std::string> g_env = {
	{"HOST", "hooks.internal:8443"},
	{"TOKEN", "tok-123"},
	{"URL", "https://secret.example.com/hook?k=v"},
	{"EMPTY", ""},
	{"HASURA_GRAPHQL_ADMIN_SECRET", "admin"},
	{"CRLF", "a\r\nInjected: yes"},
};

const char *
fake_env(const char *name)
{
	auto it = g_env.find(name);
	return it == g_env.end() ? nullptr : it->second.c_str();
}

proto::Deliver
deliver(std::string webhook, bool from_env = false, std::vector<proto::Header> headers = {})
{
	proto::Deliver d;
	d.event_id = "e1";
	d.webhook = std::move(webhook);
	d.webhook_from_env = from_env;
	d.headers = std::move(headers);
	return d;
}

} // namespace

TEST(SidecarResolve, LookupEnvVar)
{
	Resolution r = lookup_env_var("TOKEN", fake_env);
	EXPECT_TRUE(r.ok);
	EXPECT_EQ(r.value, "tok-123");
	r = lookup_env_var("EMPTY", fake_env);
	EXPECT_TRUE(r.ok);
	EXPECT_EQ(r.value, "");
	r = lookup_env_var("NOPE", fake_env);
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error, "environment variable NOPE is not set");
	r = lookup_env_var("HASURA_GRAPHQL_ADMIN_SECRET", fake_env);
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error, "environment variable HASURA_GRAPHQL_ADMIN_SECRET may not be used");
	EXPECT_EQ(r.value, "");
	EXPECT_FALSE(lookup_env_var("", fake_env).ok);
	EXPECT_FALSE(lookup_env_var("A=B", fake_env).ok);
}

TEST(SidecarResolve, Templates)
{
	EXPECT_EQ(expand_templates("https://{{HOST}}/x", fake_env).value, "https://hooks.internal:8443/x");
	EXPECT_EQ(expand_templates("{{ HOST }}{{TOKEN}}", fake_env).value, "hooks.internal:8443tok-123");
	EXPECT_EQ(expand_templates("no templates", fake_env).value, "no templates");
	EXPECT_EQ(expand_templates("", fake_env).value, "");
	EXPECT_EQ(expand_templates("a{{unterminated", fake_env).value, "a{{unterminated");
	EXPECT_EQ(expand_templates("a}}b{{TOKEN}}", fake_env).value, "a}}btok-123");
	Resolution r = expand_templates("https://{{MISSING}}/x", fake_env);
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error, "environment variable MISSING is not set");
	r = expand_templates("https://{{HASURA_GRAPHQL_ADMIN_SECRET}}", fake_env);
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error, "environment variable HASURA_GRAPHQL_ADMIN_SECRET may not be used");
	EXPECT_FALSE(expand_templates("{{}}", fake_env).ok);
	std::vector<std::string> secrets;
	expand_templates("{{HOST}}/{{TOKEN}}", fake_env, &secrets);
	EXPECT_EQ(secrets, (std::vector<std::string>{"hooks.internal:8443", "tok-123"}));
}

TEST(SidecarResolve, RequestWithPlainUrlAndHeaders)
{
	ResolvedRequest r =
		resolve_request(deliver("http://example.com/hook", false,
								{{"X-Key", "TOKEN", true}, {"X-Plain", "v1", false}, {"X-Empty", "", false}}),
						fake_env, "hasura-events/9.9");
	ASSERT_TRUE(r.ok) << r.error;
	EXPECT_EQ(r.url, "http://example.com/hook");
	EXPECT_EQ(r.header_lines,
			  (std::vector<std::string>{"Content-Type: application/json", "User-Agent: hasura-events/9.9",
										"Expect:", "X-Key: tok-123", "X-Plain: v1", "X-Empty;"}));
	EXPECT_EQ(r.secrets, (std::vector<std::string>{"tok-123"}));
}

TEST(SidecarResolve, ConfiguredHeadersReplaceDefaults)
{
	ResolvedRequest r =
		resolve_request(deliver("http://h/", false,
								{{"content-type", "application/cloudevents+json", false}, {"USER-AGENT", "me", false}}),
						fake_env, "ua");
	ASSERT_TRUE(r.ok);
	EXPECT_EQ(r.header_lines,
			  (std::vector<std::string>{"Expect:", "content-type: application/cloudevents+json", "USER-AGENT: me"}));
}

TEST(SidecarResolve, WebhookFromEnv)
{
	ResolvedRequest r = resolve_request(deliver("URL", true), fake_env, "ua");
	ASSERT_TRUE(r.ok);
	EXPECT_EQ(r.url, "https://secret.example.com/hook?k=v");
	EXPECT_NE(std::find(r.secrets.begin(), r.secrets.end(), "secret.example.com"), r.secrets.end());
	r = resolve_request(deliver("NOPE", true), fake_env, "ua");
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error, "environment variable NOPE is not set");
	r = resolve_request(deliver("HASURA_GRAPHQL_DATABASE_URL", true), fake_env, "ua");
	EXPECT_EQ(r.error, "environment variable HASURA_GRAPHQL_DATABASE_URL may not be used");
	r = resolve_request(deliver("EMPTY", true), fake_env, "ua");
	EXPECT_EQ(r.error, "webhook URL is empty");
}

TEST(SidecarResolve, HeaderErrors)
{
	ResolvedRequest r = resolve_request(deliver("http://h/", false, {{"X-Key", "NOPE", true}}), fake_env, "ua");
	EXPECT_EQ(r.error, "environment variable NOPE is not set");
	r = resolve_request(deliver("http://h/", false, {{"X-Key", "HASURA_GRAPHQL_ADMIN_SECRET", true}}), fake_env, "ua");
	EXPECT_EQ(r.error, "environment variable HASURA_GRAPHQL_ADMIN_SECRET may not be used");
	r = resolve_request(deliver("http://h/", false, {{"X-Key", "CRLF", true}}), fake_env, "ua");
	EXPECT_FALSE(r.ok);
	EXPECT_EQ(r.error.find("Injected"), std::string::npos) << "must not echo the value";
	EXPECT_NE(r.error.find("X-Key"), std::string::npos);
	r = resolve_request(deliver("http://h/", false, {{"Bad Name", "v", false}}), fake_env, "ua");
	EXPECT_FALSE(r.ok);
	r = resolve_request(deliver("http://h/", false, {{"", "v", false}}), fake_env, "ua");
	EXPECT_FALSE(r.ok);
	r = resolve_request(deliver("http://h/", false, {{"X:Y", "v", false}}), fake_env, "ua");
	EXPECT_FALSE(r.ok);
}

TEST(SidecarResolve, UrlHost)
{
	EXPECT_EQ(url_host("https://user:pw@Example.com:8443/p?q#f"), "Example.com");
	EXPECT_EQ(url_host("http://[::1]:80/"), "[::1]");
	EXPECT_EQ(url_host("http://host"), "host");
	EXPECT_EQ(url_host("host/path"), "");
}

TEST(SidecarResolve, Redact)
{
	EXPECT_EQ(
		redact("Could not resolve host: secret.example.com", {"https://secret.example.com/x", "secret.example.com"}),
		"Could not resolve host: <redacted>");
	EXPECT_EQ(redact("url https://secret.example.com/x failed", {"secret.example.com", "https://secret.example.com/x"}),
			  "url <redacted> failed");
	EXPECT_EQ(redact("ab ab", {"ab"}), "ab ab") << "secrets under 3 bytes are ignored";
	EXPECT_EQ(redact("xyzxyz", {"xyz"}), "<redacted><redacted>");
	EXPECT_EQ(redact("nothing", {}), "nothing");
}
