/*
 * sidecar/log_limit.cpp
 *
 * See log_limit.hpp.
 */
#include "log_limit.hpp"

#include <algorithm>

namespace hasura_events::sidecar {

std::string
repeat_key(std::initializer_list<std::string_view> parts)
{
	std::string key;
	for (std::string_view p : parts) {
		key += std::to_string(p.size());
		key += ':';
		key += p;
	}
	return key;
}

std::string
without_numbers(std::string_view text)
{
	std::string out;
	out.reserve(text.size());
	for (size_t i = 0; i < text.size(); i++) {
		bool digit = text[i] >= '0' && text[i] <= '9';
		if (!digit)
			out += text[i];
		else if (i == 0 || text[i - 1] < '0' || text[i - 1] > '9')
			out += '#';
	}
	return out;
}

bool
RepeatLimiter::admit(const std::string &key, const Fields &fields, Clock::time_point now)
{
	auto it = keys_.find(key);
	if (it != keys_.end() && now < it->second.until) {
		it->second.suppressed++;
		return false;
	}
	if (it != keys_.end()) {
		/* its interval is over: its count (if any) is due, and a new interval starts with this line */
		if (it->second.suppressed > 0)
			ended_.push_back(Summary{std::move(it->second.fields), it->second.suppressed});
		it->second.suppressed = 0;
		it->second.until = now + interval_;
		it->second.fields = fields;
		next_due_ = std::min(next_due_, it->second.until);
		return true;
	}
	if (keys_.size() >= max_keys_)
		return true;
	Entry e;
	e.until = now + interval_;
	e.fields = fields;
	next_due_ = std::min(next_due_, e.until);
	keys_.emplace(key, std::move(e));
	return true;
}

std::vector<RepeatLimiter::Summary>
RepeatLimiter::take_due(Clock::time_point now)
{
	std::vector<Summary> due = std::move(ended_);
	ended_.clear();
	if (now < next_due_)
		return due;
	std::vector<std::pair<Clock::time_point, Summary>> ended;
	next_due_ = Clock::time_point::max();
	for (auto it = keys_.begin(); it != keys_.end();) {
		Entry &e = it->second;
		if (now >= e.until) {
			if (e.suppressed > 0)
				ended.emplace_back(e.until, Summary{std::move(e.fields), e.suppressed});
			it = keys_.erase(it);
		} else {
			next_due_ = std::min(next_due_, e.until);
			++it;
		}
	}
	std::stable_sort(ended.begin(), ended.end(), [](const auto &a, const auto &b) { return a.first < b.first; });
	due.reserve(due.size() + ended.size());
	for (auto &p : ended)
		due.push_back(std::move(p.second));
	return due;
}

} // namespace hasura_events::sidecar
