/*
 * extension/core/repeat_limiter.cpp
 *
 * See repeat_limiter.hpp.
 */
#include "repeat_limiter.hpp"

#include "cpp_only.hpp"

namespace hasura_events {

RepeatLimiter::RepeatLimiter(std::string msg, int64_t interval_ms, size_t max_kinds)
	: msg_(std::move(msg)), interval_ms_(interval_ms), max_kinds_(max_kinds)
{
}

void
RepeatLimiter::summarize(const std::string &key, uint64_t suppressed)
{
	std::string line = "{\"msg\": \"" + msg_ + "\", ";
	line += key.empty() ? std::string("\"other_kinds\": true") : key;
	line += ", \"suppressed\": " + std::to_string(suppressed) +
			", \"interval_sec\": " + std::to_string(interval_ms_ / 1000) + "}";
	ready_.push_back(std::move(line));
}

bool
RepeatLimiter::admit(const std::string &key, int64_t now_ms)
{
	auto it = windows_.find(key);
	if (it == windows_.end() && windows_.size() >= max_kinds_)
		it = windows_.find(std::string()); /* the kinds beyond max_kinds */
	if (it == windows_.end()) {
		windows_.emplace(windows_.size() >= max_kinds_ ? std::string() : key, Window{now_ms, 0});
		return true;
	}
	Window &w = it->second;
	if (now_ms - w.start_ms < interval_ms_) {
		w.suppressed++;
		return false;
	}
	/* the previous interval is over (pop_summary has not run since): its count is not lost */
	if (w.suppressed > 0)
		summarize(it->first, w.suppressed);
	w = Window{now_ms, 0};
	return true;
}

bool
RepeatLimiter::pop_summary(int64_t now_ms, std::string &line)
{
	if (ready_.empty()) {
		for (auto it = windows_.begin(); it != windows_.end();) {
			if (now_ms - it->second.start_ms < interval_ms_) {
				++it;
				continue;
			}
			if (it->second.suppressed > 0)
				summarize(it->first, it->second.suppressed);
			it = windows_.erase(it);
		}
	}
	if (ready_.empty())
		return false;
	line = std::move(ready_.front());
	ready_.pop_front();
	return true;
}

} // namespace hasura_events
