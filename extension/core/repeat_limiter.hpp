/*
 * extension/core/repeat_limiter.hpp
 *
 * Rate limiting of repeated identical log lines: the first line of each kind per interval is
 * written, the others of that interval only counted, and once the interval is over one summary
 * line says how many were left out. The dispatcher uses it for its attempt-failure lines
 * (hasura_events.log_attempts), so that a webhook that keeps failing the same way writes a line or
 * two per interval instead of one per attempt.
 *
 * Pure C++. A "kind" is the caller's key: lines with equal keys are the same line for this purpose.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

namespace hasura_events {

class RepeatLimiter {
public:
	/*
	 * msg names the summary lines; at most max_kinds kinds are told apart within an interval, the
	 * lines of any further kind are counted together (their summary has "other_kinds": true).
	 */
	RepeatLimiter(std::string msg, int64_t interval_ms, size_t max_kinds = 1000);

	/*
	 * admit: true when the line of this kind should be written now (the first of its interval),
	 * false when it is only counted. key is a JSON object's members ("a": 1, "b": "x"), which the
	 * summary line repeats.
	 */
	bool admit(const std::string &key, int64_t now_ms);

	/*
	 * pop_summary: one summary line (a JSON object) of an interval that is over by now_ms and left
	 * lines out, or false when there is none. Kinds whose interval is over are forgotten.
	 */
	bool pop_summary(int64_t now_ms, std::string &line);

	size_t
	kinds() const
	{
		return windows_.size();
	}
	int64_t
	interval_ms() const
	{
		return interval_ms_;
	}

private:
	struct Window {
		int64_t start_ms;
		uint64_t suppressed;
	};
	void summarize(const std::string &key, uint64_t suppressed);

	std::string msg_;
	int64_t interval_ms_;
	size_t max_kinds_;
	std::unordered_map<std::string, Window> windows_; /* key "" is the kinds beyond max_kinds */
	std::deque<std::string> ready_;                   /* summary lines not yet popped */
};

} // namespace hasura_events
