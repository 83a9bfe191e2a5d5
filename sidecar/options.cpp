/*
 * sidecar/options.cpp
 *
 * Parsing of the sidecar's flags (--name VALUE or --name=VALUE) and of the environment
 * variables that provide their defaults.
 */
#include "options.hpp"

#include "http_server.hpp"

#include <cerrno>
#include <cstdlib>

namespace hasura_events::sidecar {

namespace {

/*
 * parse_u32 accepts a decimal integer in [min, max] and nothing else.
 */
bool
parse_u32(const std::string &text, uint32_t min, uint32_t max, uint32_t &out)
{
	if (text.empty() || text.size() > 10)
		return false;
	uint64_t v = 0;
	for (char c : text) {
		if (c < '0' || c > '9')
			return false;
		v = v * 10 + uint64_t(c - '0');
	}
	if (v < min || v > max)
		return false;
	out = static_cast<uint32_t>(v);
	return true;
}

/*
 * parse_metrics_address: "off" disables the endpoint (stored as ""), anything else must be a
 * numeric address with a port.
 */
bool
parse_metrics_address(const std::string &text, std::string &out)
{
	if (text == "off") {
		out.clear();
		return true;
	}
	ListenAddress addr;
	if (!parse_listen_address(text, addr))
		return false;
	out = text;
	return true;
}

} // namespace

bool
parse_log_level(const std::string &text, LogLevel &out)
{
	if (text == "debug")
		out = LogLevel::Debug;
	else if (text == "info")
		out = LogLevel::Info;
	else if (text == "warn" || text == "warning")
		out = LogLevel::Warn;
	else if (text == "error")
		out = LogLevel::Error;
	else
		return false;
	return true;
}

const char *
log_level_name(LogLevel level)
{
	switch (level) {
	case LogLevel::Debug: return "debug";
	case LogLevel::Info: return "info";
	case LogLevel::Warn: return "warn";
	case LogLevel::Error: return "error";
	}
	return "info";
}

/*
 * parse_args applies the environment first, then the flags, so a flag wins.
 */
ParsedArgs
parse_args(const std::vector<std::string> &args, const EnvLookup &env)
{
	ParsedArgs r;
	Options &o = r.options;
	auto fail = [&r](std::string msg) {
		r.action = ParsedArgs::Action::Error;
		r.error = std::move(msg);
		return r;
	};

	if (const char *v = env("HASURA_EVENTS_SOCKET"); v && *v)
		o.socket_path = v;
	if (const char *v = env("HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE"); v && *v) {
		if (!parse_u32(v, 1, 100000, o.pool_size))
			return fail(std::string("invalid value \"") + v +
						"\" for HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE: expected an integer from 1 to 100000");
	}
	if (const char *v = env("HASURA_EVENTS_LOG_LEVEL"); v && *v) {
		if (!parse_log_level(v, o.log_level))
			return fail(std::string("invalid value \"") + v +
						"\" for HASURA_EVENTS_LOG_LEVEL: expected debug, info, warn or error");
	}
	if (const char *v = env("HASURA_EVENTS_METRICS_ADDRESS"); v && *v) {
		o.metrics_address_set = true;
		if (!parse_metrics_address(v, o.metrics_address))
			return fail(
				std::string("invalid value \"") + v +
				"\" for HASURA_EVENTS_METRICS_ADDRESS: expected off or a numeric HOST:PORT such as 127.0.0.1:9464");
	}

	for (size_t i = 0; i < args.size(); i++) {
		const std::string &arg = args[i];
		if (arg == "--help" || arg == "-h") {
			r.action = ParsedArgs::Action::Help;
			return r;
		}
		if (arg == "--version") {
			r.action = ParsedArgs::Action::Version;
			return r;
		}
		std::string name = arg, value;
		bool has_value = false;
		if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
			name = arg.substr(0, eq);
			value = arg.substr(eq + 1);
			has_value = true;
		}
		static const char *const with_value[] = {"--socket",
												 "--pool-size",
												 "--min-webhook-concurrency",
												 "--prefetch",
												 "--max-response-bytes",
												 "--grace-period",
												 "--breaker-max-cooldown",
												 "--log-level",
												 "--id",
												 "--metrics-address"};
		bool known = false;
		for (const char *f : with_value)
			known = known || name == f;
		if (!known)
			return fail("unknown option \"" + name + "\" (see --help)");
		if (!has_value) {
			if (i + 1 >= args.size())
				return fail("option " + name + " needs a value");
			value = args[++i];
		}
		auto bad = [&](const char *expected) {
			return fail("invalid value \"" + value + "\" for " + name + ": expected " + expected);
		};
		if (name == "--socket") {
			if (value.empty())
				return bad("a path");
			o.socket_path = value;
		} else if (name == "--pool-size") {
			if (!parse_u32(value, 1, 100000, o.pool_size))
				return bad("an integer from 1 to 100000");
		} else if (name == "--min-webhook-concurrency") {
			if (!parse_u32(value, 1, 100000, o.min_webhook_concurrency))
				return bad("an integer from 1 to 100000");
		} else if (name == "--prefetch") {
			if (!parse_u32(value, 0, 100000, o.prefetch))
				return bad("an integer from 0 to 100000");
		} else if (name == "--max-response-bytes") {
			if (!parse_u32(value, 0, 64u << 20, o.max_response_bytes))
				return bad("an integer from 0 to 67108864");
		} else if (name == "--grace-period") {
			if (!parse_u32(value, 0, 86400, o.grace_period_sec))
				return bad("a number of seconds from 0 to 86400");
		} else if (name == "--breaker-max-cooldown") {
			if (!parse_u32(value, 1, 86400, o.breaker_max_cooldown_sec))
				return bad("a number of seconds from 1 to 86400");
		} else if (name == "--log-level") {
			if (!parse_log_level(value, o.log_level))
				return bad("debug, info, warn or error");
		} else if (name == "--id") {
			if (value.empty())
				return bad("a non-empty name");
			o.id = value;
		} else if (name == "--metrics-address") {
			o.metrics_address_set = true;
			if (!parse_metrics_address(value, o.metrics_address))
				return bad("off or a numeric HOST:PORT such as 127.0.0.1:9464");
		}
	}
	return r;
}

std::string
usage_text()
{
	return "Usage: hasura-events-sidecar [OPTION]...\n"
		   "Delivers hasura_events webhooks for the Postgres background workers it connects to.\n"
		   "\n"
		   "  --socket PATH             socket prefix; connects to PATH and every PATH.* socket\n"
		   "                            (env HASURA_EVENTS_SOCKET, default /var/run/postgresql/hasura_events.sock)\n"
		   "  --pool-size N             concurrent HTTP attempts across all connections\n"
		   "                            (env HASURA_GRAPHQL_EVENTS_HTTP_POOL_SIZE, default 100)\n"
		   "  --min-webhook-concurrency N\n"
		   "                            the least concurrency a webhook gets; above it each webhook's limit\n"
		   "                            adapts, up to pool-size, growing while more attempts in flight raise\n"
		   "                            its throughput (default 32; pool-size or more: a fixed limit)\n"
		   "  --prefetch N              extra deliveries per connection queued beyond pool-size, so the\n"
		   "                            pool never waits for the worker (default 200)\n"
		   "  --max-response-bytes N    response body bytes kept per attempt (default 65536)\n"
		   "  --grace-period SEC        on SIGTERM/SIGINT, time for in-flight attempts to finish (default 10)\n"
		   "  --breaker-max-cooldown SEC\n"
		   "                            the longest a webhook's circuit breaker stays open after failures to\n"
		   "                            connect (refused, DNS, TLS, timeouts); the cool-down starts at 1 s\n"
		   "                            and doubles up to this (default 60)\n"
		   "  --log-level LEVEL         debug, info, warn or error (env HASURA_EVENTS_LOG_LEVEL, default info)\n"
		   "  --id NAME                 name sent to the workers (default hostname:pid)\n"
		   "  --metrics-address ADDR    serve /metrics and /healthz on ADDR (numeric HOST:PORT, [IPv6]:PORT),\n"
		   "                            or off (env HASURA_EVENTS_METRICS_ADDRESS, default 127.0.0.1:9464)\n"
		   "  --help                    show this help and exit\n"
		   "  --version                 show the version and exit\n";
}

} // namespace hasura_events::sidecar
