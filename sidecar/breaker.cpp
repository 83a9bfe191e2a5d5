/*
 * sidecar/breaker.cpp
 *
 * See breaker.hpp.
 */
#include "breaker.hpp"

#include <algorithm>

namespace hasura_events::sidecar {

bool
connection_level_failure(CURLcode result)
{
	switch (result) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING: return true;
	default: return false;
	}
}

bool
Breaker::may_start(Clock::time_point now) const
{
	return !open_ || (!probing_ && now >= open_until_);
}

bool
Breaker::started(Clock::time_point now)
{
	if (!open_ || probing_ || now < open_until_)
		return false;
	probing_ = true;
	return true;
}

void
Breaker::open(Clock::time_point now)
{
	cooldown_ = open_ ? std::min(cooldown_ * 2, max_cooldown_) : std::min(kFirstCooldown, max_cooldown_);
	open_ = true;
	probing_ = false;
	open_until_ = now + cooldown_;
}

Breaker::Change
Breaker::finished(Result result, bool probe, Clock::time_point now)
{
	if (probe)
		probing_ = false;
	switch (result) {
	case Result::Answered:
		failures_ = 0;
		if (!open_)
			return Change::None;
		/* the probe, or an attempt started before the breaker opened: the webhook answers */
		open_ = false;
		probing_ = false;
		return Change::Closed;
	case Result::ConnectionFailure:
		if (!open_) {
			if (++failures_ < kThreshold)
				return Change::None;
			open(now);
			return Change::Opened;
		}
		if (!probe) /* started before it opened: already counted in */
			return Change::None;
		open(now);
		return Change::Opened;
	case Result::Other: return Change::None;
	}
	return Change::None;
}

bool
Breaker::holding(Clock::time_point now) const
{
	return open_ && now < open_until_;
}

uint32_t
Breaker::remaining_ms(Clock::time_point now) const
{
	if (!holding(now))
		return 0;
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(open_until_ - now).count() + 1;
	return uint32_t(std::min<int64_t>(ms, UINT32_MAX));
}

} // namespace hasura_events::sidecar
