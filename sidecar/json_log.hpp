/*
 * sidecar/json_log.hpp
 *
 * Structured logging: one JSON object per line on stderr. Lines are written whole, one write()
 * for one or more lines (on a pipe that other processes write too, a write above PIPE_BUF may
 * interleave with theirs); info and debug lines wait for log_flush, which the event loop calls
 * before it waits, so a crash loses the info lines of the loop turn it happened in. Never pass
 * resolved URLs or header values from the environment.
 */
#pragma once

#include "json_text.hpp"
#include "options.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace hasura_events::sidecar {

/* JSON quoting is shared with the worker (protocol/json_text.hpp) */
using hasura_events::append_utf8_or;
using hasura_events::json_quote;

class LogLine {
public:
	LogLine(LogLevel level, std::string_view msg);
	LogLine &str(std::string_view key, std::string_view value);
	LogLine &num(std::string_view key, int64_t value);
	LogLine &boolean(std::string_view key, bool value);
	const std::string &
	text() const
	{
		return text_;
	} /* without the closing brace */
	LogLevel
	level() const
	{
		return level_;
	}
	void emit(); /* queues the line if its level is enabled; writes at once from warn up */

private:
	void key(std::string_view key);

	LogLevel level_;
	std::string text_;
};

/* log_flush writes the queued lines (before the event loop waits, and at exit) */
void log_flush();
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

/* format_timestamp renders a Unix time in milliseconds as 2024-05-21T10:11:12.345Z */
std::string format_timestamp(int64_t unix_ms);
void append_timestamp(std::string &out, int64_t unix_ms);

} // namespace hasura_events::sidecar
