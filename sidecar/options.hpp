/*
 * sidecar/options.hpp
 *
 * Command line and environment configuration of hasura-events-sidecar. Parsing is pure: the
 * environment is passed in as a lookup function so the tests control it.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#ifndef HASURA_EVENTS_VERSION
#define HASURA_EVENTS_VERSION "0.2.0"
#endif

namespace hasura_events::sidecar {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

struct Options {
	std::string socket_path = "/var/run/postgresql/hasura_events.sock";
	uint32_t pool_size = 100;              /* concurrent HTTP attempts across every connection */
	uint32_t prefetch = 200;               /* extra credits per connection beyond pool_size */
	uint32_t min_webhook_concurrency = 32; /* the floor of each webhook's adaptive limit */
	uint32_t max_response_bytes = 65536;   /* response body bytes kept per attempt */
	uint32_t grace_period_sec = 10;
	uint32_t breaker_max_cooldown_sec = 60; /* the longest a webhook's circuit breaker stays open */
	LogLevel log_level = LogLevel::Info;
	std::string id;                                 /* empty: hostname:pid, filled in by main */
	std::string metrics_address = "127.0.0.1:9464"; /* numeric host:port; empty: the endpoint is off */
	bool metrics_address_set = false;               /* given by flag or environment: failing to bind it is fatal */
};

struct ParsedArgs {
	enum class Action { Run, Help, Version, Error } action = Action::Run;
	Options options;
	std::string error; /* for Action::Error: names the flag or variable and the bad value */
};

using EnvLookup = std::function<const char *(const char *name)>;

/* parse_args reads args (without argv[0]); flags override the environment */
ParsedArgs parse_args(const std::vector<std::string> &args, const EnvLookup &env);

bool parse_log_level(const std::string &text, LogLevel &out);
const char *log_level_name(LogLevel level);

std::string usage_text();

} // namespace hasura_events::sidecar
