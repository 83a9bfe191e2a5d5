/*
 * sidecar/log_limit.hpp
 *
 * Rate limiting of repeated log lines. A failing webhook fails every attempt the same way; one
 * line per attempt says nothing the first did not, and at thousands of attempts a second it fills
 * the disk. The first line of a kind (its key: the caller's choice, e.g. trigger, webhook, error
 * kind and message) in an interval is written; the next ones in that interval are only counted,
 * and when the interval ends one summary line gives the count. Pure logic (the clock is passed
 * in), unit-tested.
 */
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hasura_events::sidecar {

/* repeat_key: one key of the parts, none of which can run into the next */
std::string repeat_key(std::initializer_list<std::string_view> parts);
/* without_numbers: text with each run of digits replaced by '#' */
std::string without_numbers(std::string_view text);

class RepeatLimiter {
public:
	using Clock = std::chrono::steady_clock;
	using Fields = std::vector<std::pair<std::string, std::string>>;

	/* max_keys bounds the memory: beyond that many keys in their interval, every line is written */
	explicit RepeatLimiter(std::chrono::milliseconds interval, size_t max_keys = 10000)
		: interval_(interval), max_keys_(max_keys)
	{
	}

	/* admit: true when the line must be written (the first of its key in an interval); false when
	 * it is counted instead. fields are kept for the summary line (from the first line). */
	bool admit(const std::string &key, const Fields &fields, Clock::time_point now);

	struct Summary {
		Fields fields;
		uint64_t suppressed; /* lines counted and not written */
	};
	/* take_due: the keys whose interval is over and that had lines counted (oldest first); their
	 * intervals end (a key that had none just ends) */
	std::vector<Summary> take_due(Clock::time_point now);

	std::chrono::milliseconds
	interval() const
	{
		return interval_;
	}
	size_t
	tracked() const
	{
		return keys_.size();
	}

private:
	struct Entry {
		Clock::time_point until;
		uint64_t suppressed = 0;
		Fields fields;
	};
	std::chrono::milliseconds interval_;
	size_t max_keys_;
	std::unordered_map<std::string, Entry> keys_;
	std::vector<Summary> ended_; /* intervals that admit found over, with lines counted */
	Clock::time_point next_due_ = Clock::time_point::max();
};

} // namespace hasura_events::sidecar
