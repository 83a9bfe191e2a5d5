/*
 * tests/unit/sidecar_options_test.cpp
 *
 * The sidecar's command line and environment parsing (sidecar/options.cpp).
 */
#include "options.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace hasura_events::sidecar;

namespace {

struct FakeEnv {
	std::map<std::string, std::string> vars;
	EnvLookup
	lookup() const
	{
		return [this](const char *name) -> const char * {
			auto it = vars.find(name);
			return it == vars.end() ? nullptr : it->second.c_str();
		};
	}
};

ParsedArgs
parse(std::vector<std::string> args, const FakeEnv &env = FakeEnv{})
{
	return parse_args(args, env.lookup());
}

} // namespace

TEST(SidecarOptions, Defaults)
{
	ParsedArgs p = parse({});
	ASSERT_EQ(p.action, ParsedArgs::Action::Run);
	EXPECT_EQ(p.options.socket_path, "/var/run/postgresql/hasura_events.sock");
	EXPECT_EQ(p.options.pool_size, 100u);
	EXPECT_EQ(p.options.prefetch, 200u);
	EXPECT_EQ(p.options.min_webhook_concurrency, 32u);
	EXPECT_EQ(p.options.max_response_bytes, 65536u);
	EXPECT_EQ(p.options.grace_period_sec, 10u);
	EXPECT_EQ(p.options.breaker_max_cooldown_sec, 60u);
	EXPECT_EQ(p.options.log_level, LogLevel::Info);
	EXPECT_EQ(p.options.id, "");
}

TEST(SidecarOptions, FlagsBothForms)
{
	ParsedArgs p = parse({"--socket", "/tmp/s", "--pool-size=7", "--max-response-bytes", "0", "--grace-period=3",
						  "--log-level", "debug", "--id", "side-1", "--prefetch", "5", "--min-webhook-concurrency=4",
						  "--breaker-max-cooldown", "7"});
	ASSERT_EQ(p.action, ParsedArgs::Action::Run) << p.error;
	EXPECT_EQ(p.options.socket_path, "/tmp/s");
	EXPECT_EQ(p.options.pool_size, 7u);
	EXPECT_EQ(p.options.max_response_bytes, 0u);
	EXPECT_EQ(p.options.grace_period_sec, 3u);
	EXPECT_EQ(p.options.log_level, LogLevel::Debug);
	EXPECT_EQ(p.options.id, "side-1");
	EXPECT_EQ(p.options.prefetch, 5u);
	EXPECT_EQ(p.options.min_webhook_concurrency, 4u);
	EXPECT_EQ(p.options.breaker_max_cooldown_sec, 7u);
}

TEST(SidecarOptions, EnvironmentAndFlagPrecedence)
{
	FakeEnv env;
	env.vars = {{"HASURA_EVENTS_SOCKET", "/run/x.sock"},
				{"HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE", "12"},
				{"HASURA_EVENTS_LOG_LEVEL", "warn"}};
	ParsedArgs p = parse({}, env);
	ASSERT_EQ(p.action, ParsedArgs::Action::Run) << p.error;
	EXPECT_EQ(p.options.socket_path, "/run/x.sock");
	EXPECT_EQ(p.options.pool_size, 12u);
	EXPECT_EQ(p.options.log_level, LogLevel::Warn);
	p = parse({"--pool-size", "3", "--log-level=error", "--socket=/a"}, env);
	EXPECT_EQ(p.options.pool_size, 3u);
	EXPECT_EQ(p.options.log_level, LogLevel::Error);
	EXPECT_EQ(p.options.socket_path, "/a");
}

TEST(SidecarOptions, HelpAndVersion)
{
	EXPECT_EQ(parse({"--help"}).action, ParsedArgs::Action::Help);
	EXPECT_EQ(parse({"-h"}).action, ParsedArgs::Action::Help);
	EXPECT_EQ(parse({"--version"}).action, ParsedArgs::Action::Version);
	EXPECT_NE(usage_text().find("--grace-period"), std::string::npos);
	EXPECT_NE(usage_text().find("--min-webhook-concurrency"), std::string::npos);
}

TEST(SidecarOptions, ErrorsNameTheFlag)
{
	struct Case {
		std::vector<std::string> args;
		const char *needle;
	} cases[] = {
		{{"--bogus"}, "unknown option \"--bogus\""},
		{{"--bogus=1"}, "unknown option \"--bogus\""},
		{{"-p"}, "unknown option \"-p\""},
		{{"positional"}, "unknown option \"positional\""},
		{{"--pool-size"}, "option --pool-size needs a value"},
		{{"--pool-size", "0"}, "invalid value \"0\" for --pool-size"},
		{{"--pool-size", "-1"}, "invalid value \"-1\" for --pool-size"},
		{{"--pool-size", "10x"}, "invalid value \"10x\" for --pool-size"},
		{{"--pool-size", "99999999999"}, "invalid value \"99999999999\" for --pool-size"},
		{{"--min-webhook-concurrency", "0"}, "invalid value \"0\" for --min-webhook-concurrency"},
		{{"--min-webhook-concurrency"}, "option --min-webhook-concurrency needs a value"},
		{{"--grace-period", ""}, "invalid value \"\" for --grace-period"},
		{{"--grace-period", "1.5"}, "invalid value \"1.5\" for --grace-period"},
		{{"--breaker-max-cooldown", "0"}, "invalid value \"0\" for --breaker-max-cooldown"},
		{{"--breaker-max-cooldown=86401"}, "invalid value \"86401\" for --breaker-max-cooldown"},
		{{"--log-level", "loud"}, "invalid value \"loud\" for --log-level"},
		{{"--max-response-bytes", "999999999"}, "for --max-response-bytes"},
		{{"--socket="}, "invalid value \"\" for --socket"},
		{{"--id", ""}, "for --id"},
	};
	for (const Case &c : cases) {
		ParsedArgs p = parse(c.args);
		EXPECT_EQ(p.action, ParsedArgs::Action::Error) << c.args[0];
		EXPECT_NE(p.error.find(c.needle), std::string::npos) << p.error;
	}
	FakeEnv env;
	env.vars = {{"HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE", "many"}};
	ParsedArgs p = parse({}, env);
	EXPECT_EQ(p.action, ParsedArgs::Action::Error);
	EXPECT_NE(p.error.find("HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE"), std::string::npos) << p.error;
}

TEST(SidecarOptions, LogLevels)
{
	LogLevel l;
	EXPECT_TRUE(parse_log_level("warning", l));
	EXPECT_EQ(l, LogLevel::Warn);
	EXPECT_FALSE(parse_log_level("INFO", l));
	EXPECT_STREQ(log_level_name(LogLevel::Debug), "debug");
}
