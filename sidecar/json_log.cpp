/*
 * sidecar/json_log.cpp
 *
 * JSON line logging for the sidecar.
 */
#include "json_log.hpp"

#include <cerrno>
#include <chrono>
#include <climits>
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
	std::string out;
	append_timestamp(out, unix_ms);
	return out;
}

/*
 * append_timestamp: format_timestamp appended to out. The date and time up to the second are
 * formatted once a second (a busy sidecar logs thousands of lines in one).
 */
void
append_timestamp(std::string &out, int64_t unix_ms)
{
	thread_local int64_t cached_secs = INT64_MIN;
	thread_local char cached[80]; /* room for any int the compiler can imagine */
	int64_t secs = unix_ms / 1000;
	int ms = int(unix_ms % 1000);
	if (ms < 0) { /* before 1970: floor, not truncation */
		secs -= 1;
		ms += 1000;
	}
	if (secs != cached_secs) {
		time_t t = static_cast<time_t>(secs);
		struct tm tm;
		gmtime_r(&t, &tm);
		snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
				 tm.tm_hour, tm.tm_min, tm.tm_sec);
		cached_secs = secs;
	}
	char frac[8];
	snprintf(frac, sizeof frac, ".%03dZ", ms);
	out += cached;
	out += frac;
}

LogLine::LogLine(LogLevel level, std::string_view msg) : level_(level)
{
	if (!log_enabled(level))
		return;
	int64_t now_ms =
		std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
			.count();
	text_.reserve(256);
	text_ += "{\"ts\":\"";
	append_timestamp(text_, now_ms);
	text_ += "\",\"level\":\"";
	text_ += log_level_name(level);
	text_ += "\",\"msg\":";
	append_json_quoted(text_, msg);
}

void
LogLine::key(std::string_view key)
{
	text_ += ',';
	append_json_quoted(text_, key);
	text_ += ':';
}

LogLine &
LogLine::str(std::string_view key, std::string_view value)
{
	if (!text_.empty()) {
		this->key(key);
		append_json_quoted(text_, value);
	}
	return *this;
}

LogLine &
LogLine::num(std::string_view key, int64_t value)
{
	if (!text_.empty()) {
		this->key(key);
		text_ += std::to_string(value);
	}
	return *this;
}

LogLine &
LogLine::boolean(std::string_view key, bool value)
{
	if (!text_.empty()) {
		this->key(key);
		text_ += value ? "true" : "false";
	}
	return *this;
}

namespace {

/* Lines not written yet: info and debug lines wait for log_flush (the event loop calls it before
 * it waits), so that a busy sidecar makes one write for many delivery lines, not one each. */
std::string g_pending;
constexpr size_t kMaxPending = 64 * 1024;

/* write_all: one write(); a short write to a pipe is retried. */
void
write_all(const std::string &text)
{
	const char *p = text.data();
	size_t left = text.size();
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

} // namespace

/*
 * LogLine::emit queues the line. A warning or an error is written at once, with the lines queued
 * before it (in order), as is a queue past 64 KiB.
 */
void
LogLine::emit()
{
	if (text_.empty())
		return;
	g_pending += text_;
	g_pending += "}\n";
	text_.clear();
	if (level_ >= LogLevel::Warn || g_pending.size() >= kMaxPending)
		log_flush();
}

void
log_flush()
{
	if (g_pending.empty())
		return;
	write_all(g_pending);
	g_pending.clear();
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
