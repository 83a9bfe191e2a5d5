/*
 * sidecar/main.cpp
 *
 * Entry point of hasura-events-sidecar: parses the options, blocks the shutdown signals before
 * any thread exists, and runs the event loop. Exit codes: 0 after a clean shutdown, 1 on a
 * fatal error, 2 on a bad command line.
 */
#include "curl_util.hpp"
#include "json_log.hpp"
#include "options.hpp"
#include "sidecar.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <unistd.h>
#include <vector>

using namespace hasura_events::sidecar;

namespace {

std::string
default_id()
{
	char host[256];
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	return std::string(host) + ":" + std::to_string(getpid());
}

int
run_main(int argc, char **argv)
{
	std::vector<std::string> args(argv + 1, argv + argc);
	ParsedArgs parsed = parse_args(args, [](const char *name) -> const char * { return getenv(name); });
	switch (parsed.action) {
	case ParsedArgs::Action::Help: fputs(usage_text().c_str(), stdout); return 0;
	case ParsedArgs::Action::Version: printf("hasura-events-sidecar %s\n", HASURA_EVENTS_VERSION); return 0;
	case ParsedArgs::Action::Error: fprintf(stderr, "hasura-events-sidecar: %s\n", parsed.error.c_str()); return 2;
	case ParsedArgs::Action::Run: break;
	}
	Options opt = parsed.options;
	if (opt.id.empty())
		opt.id = default_id();
	set_log_level(opt.log_level);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0)
		throw std::runtime_error("sigprocmask failed");
	signal(SIGPIPE, SIG_IGN);

	CurlGlobal curl_global;
	Sidecar sidecar(opt);
	return sidecar.run();
}

} // namespace

int
main(int argc, char **argv)
{
	try {
		int rc = run_main(argc, argv);
		log_flush();
		return rc;
	} catch (const std::exception &e) {
		LogLine(LogLevel::Error, "fatal error").str("error", e.what()).emit();
		fprintf(stderr, "hasura-events-sidecar: fatal: %s\n", e.what());
	} catch (...) {
		log_flush();
		fprintf(stderr, "hasura-events-sidecar: fatal: unknown exception\n");
	}
	return 1;
}
