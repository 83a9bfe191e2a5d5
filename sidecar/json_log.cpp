/*
 * sidecar/json_log.cpp
 *
 * JSON line logging for the sidecar.
 */
#include "json_log.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <unistd.h>

namespace hasura_events::sidecar {

namespace {

LogLevel g_level = LogLevel::Info;

} // namespace

std::string
format_timestamp(int64_t unix_ms)
{
	time_t secs = static_cast<time_t>(unix_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	char buf[80];
	snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, int(unix_ms % 1000));
	return buf;
}

LogLine::LogLine(LogLevel level, std::string_view msg) : level_(level)
{
	if (!log_enabled(level))
		return;
	int64_t now_ms =
		std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
			.count();
	text_ = "{\"ts\":\"" + format_timestamp(now_ms) + "\",\"level\":\"" + log_level_name(level) +
			"\",\"msg\":" + json_quote(msg);
}

LogLine &
LogLine::str(std::string_view key, std::string_view value)
{
	if (!text_.empty())
		text_ += "," + json_quote(key) + ":" + json_quote(value);
	return *this;
}

LogLine &
LogLine::num(std::string_view key, int64_t value)
{
	if (!text_.empty())
		text_ += "," + json_quote(key) + ":" + std::to_string(value);
	return *this;
}

LogLine &
LogLine::boolean(std::string_view key, bool value)
{
	if (!text_.empty())
		text_ += "," + json_quote(key) + ":" + (value ? "true" : "false");
	return *this;
}

/*
 * LogLine::emit writes the line with one write(); a short write to a pipe is retried.
 */
void
LogLine::emit()
{
	if (text_.empty())
		return;
	std::string line = text_ + "}\n";
	const char *p = line.data();
	size_t left = line.size();
	while (left > 0) {
		ssize_t n = write(STDERR_FILENO, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		left -= size_t(n);
	}
}

void
set_log_level(LogLevel level)
{
	g_level = level;
}

bool
log_enabled(LogLevel level)
{
	return static_cast<int>(level) >= static_cast<int>(g_level);
}

} // namespace hasura_events::sidecar
