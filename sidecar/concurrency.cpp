/*
 * sidecar/concurrency.cpp
 *
 * ConcurrencyLimit's probing (see concurrency.hpp). A step is a quarter of the limit up, or the
 * inverse (a fifth) down. After each change the attempts started under the previous limit are let
 * finish before the next window is measured, so a window's latencies belong to one limit.
 */
#include "concurrency.hpp"

#include <algorithm>
#include <cmath>

namespace hasura_events::sidecar {

namespace {

constexpr uint32_t kMinWindow = 64;   /* latencies a window needs at the least */
constexpr uint32_t kMaxBackoff = 16;  /* windows between failed probes, at the most */
constexpr double kKeepLarger = 0.5;   /* a larger limit is kept below this elasticity */
constexpr double kKeepSmaller = 0.75; /* a smaller one above it */

} // namespace

ConcurrencyLimit::ConcurrencyLimit(uint32_t floor, uint32_t ceiling)
	: floor_(std::max<uint32_t>(1, std::min(floor, ceiling))), ceiling_(std::max<uint32_t>(1, ceiling)), limit_(floor_),
	  settled_(floor_)
{
}

uint32_t
ConcurrencyLimit::step_up() const
{
	return std::min(ceiling_, std::max(settled_ + 1, settled_ + settled_ / 4));
}

uint32_t
ConcurrencyLimit::step_down() const
{
	uint32_t step = std::max<uint32_t>(1, settled_ / 5);
	return settled_ - step < floor_ ? floor_ : settled_ - step;
}

/* begin puts `limit` in force; the window is measured once the attempts in flight before are done */
void
ConcurrencyLimit::begin(uint32_t limit)
{
	skip_ = std::max(limit_, limit);
	limit_ = limit;
	phase_ = Phase::Settle;
	starts_ = 0;
	waiting_starts_ = 0;
	failures_ = 0;
	samples_.clear();
}

void
ConcurrencyLimit::started(bool waiting)
{
	if (phase_ != Phase::Measure)
		return;
	starts_++;
	if (waiting)
		waiting_starts_++;
}

bool
ConcurrencyLimit::finished(double seconds, bool ok)
{
	if (floor_ == ceiling_)
		return false;
	if (phase_ == Phase::Settle) {
		if (skip_ > 0)
			skip_--;
		if (skip_ == 0)
			phase_ = Phase::Measure;
		return false;
	}
	samples_.push_back(std::max(seconds, 1e-6));
	if (!ok)
		failures_++;
	if (samples_.size() < std::max<size_t>(kMinWindow, 2 * size_t(limit_)))
		return false;
	return close_window();
}

/*
 * close_window ends a window: the window's latency, then the decision. Returns true when the
 * settled limit changed.
 */
bool
ConcurrencyLimit::close_window()
{
	/* the mean of all but the slowest tenth: a few timeouts do not swing it, and unlike a
	 * percentile it moves with the limit even when the service time is about constant */
	auto cut = samples_.begin() + (samples_.size() - samples_.size() / 10);
	std::nth_element(samples_.begin(), cut, samples_.end());
	double sum = 0;
	for (auto it = samples_.begin(); it != cut; ++it)
		sum += *it;
	double latency = sum / double(cut - samples_.begin());
	bool bound = starts_ > 0 && 2 * waiting_starts_ >= starts_;
	bool failing = 10 * size_t(failures_) > samples_.size();
	last_latency_ = latency;
	starts_ = 0;
	waiting_starts_ = 0;
	failures_ = 0;
	samples_.clear();

	if (!bound) {
		/* the webhook had room to spare: nothing learned; a probe in progress is called off (a
		 * probe only ever starts from a window that bound, so its reference is always measured) */
		if (probing_) {
			probing_ = false;
			begin(settled_);
		}
		return false;
	}
	if (!probing_) {
		settled_latency_ = latency;
		if (hold_ > 0) {
			hold_--;
			return false;
		}
		bool up = (probe_up_ && settled_ < ceiling_) || settled_ == floor_;
		if (failing && up && settled_ == floor_)
			return false;
		up = up && !failing;
		uint32_t probe = up ? step_up() : step_down();
		if (probe == settled_)
			return false;
		probing_ = true;
		begin(probe);
		return false;
	}

	probing_ = false;
	bool up = limit_ > settled_;
	double elasticity = std::log(latency / settled_latency_) / std::log(double(limit_) / double(settled_));
	bool keep = up ? elasticity < kKeepLarger && !failing : elasticity > kKeepSmaller;
	if (keep) {
		settled_ = limit_;
		settled_latency_ = latency;
		backoff_ = 1;
		hold_ = 0;
		probe_up_ = up;
		uint32_t next = up ? step_up() : step_down();
		if (next != settled_) { /* go on in the same direction at once */
			probing_ = true;
			begin(next);
		}
		return true;
	}
	hold_ = backoff_;
	backoff_ = std::min(kMaxBackoff, backoff_ * 2);
	probe_up_ = !up;
	begin(settled_);
	return false;
}

} // namespace hasura_events::sidecar
