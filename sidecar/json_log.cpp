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

/*
 * utf8_sequence_length returns the length of the valid UTF-8 sequence at s[i], or 0.
 */
size_t
utf8_sequence_length(std::string_view s, size_t i)
{
	auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
	unsigned char c = b(0);
	size_t n;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	else if ((c & 0xe0) == 0xc0)
		n = 2, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (i + n > s.size())
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((b(k) & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (b(k) & 0x3f);
	}
	static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
	if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

std::string
json_quote(std::string_view s)
{
	std::string out;
	out.reserve(s.size() + 2);
	out.push_back('"');
	for (size_t i = 0; i < s.size();) {
		unsigned char c = static_cast<unsigned char>(s[i]);
		switch (c) {
		case '"': out += "\\\""; break;
		case '\\': out += "\\\\"; break;
		case '\n': out += "\\n"; break;
		case '\r': out += "\\r"; break;
		case '\t': out += "\\t"; break;
		default:
			if (c < 0x20) {
				char buf[8];
				snprintf(buf, sizeof buf, "\\u%04x", c);
				out += buf;
			} else if (c < 0x80) {
				out.push_back(char(c));
			} else {
				size_t n = utf8_sequence_length(s, i);
				if (n == 0) {
					out += "\\ufffd";
					i++;
				} else {
					out.append(s.substr(i, n));
					i += n;
				}
				continue;
			}
		}
		i++;
	}
	out.push_back('"');
	return out;
}

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
