/*
 * sidecar/retry_after.cpp
 *
 * Retry-After parsing. Dates go through curl_getdate, which knows the three HTTP-date forms
 * (IMF-fixdate, RFC 850, asctime).
 */
#include "retry_after.hpp"

#include <curl/curl.h>

namespace hasura_events::sidecar {

int64_t
parse_retry_after(const std::string &value, time_t now)
{
	size_t b = value.find_first_not_of(" \t");
	if (b == std::string::npos)
		return -1;
	size_t e = value.find_last_not_of(" \t");
	std::string v = value.substr(b, e - b + 1);

	bool digits = true;
	for (char c : v)
		digits = digits && c >= '0' && c <= '9';
	if (digits) {
		int64_t secs = 0;
		for (char c : v) {
			secs = secs * 10 + (c - '0');
			if (secs > kMaxRetryAfterSec)
				return kMaxRetryAfterSec;
		}
		return secs;
	}
	/* curl_getdate also accepts things like "+5" or "tomorrow"-free fragments; insist on a letter first */
	if (!((v[0] >= 'A' && v[0] <= 'Z') || (v[0] >= 'a' && v[0] <= 'z')))
		return -1;
	time_t t = curl_getdate(v.c_str(), nullptr);
	if (t == -1)
		return -1;
	int64_t delta = int64_t(t) - int64_t(now);
	if (delta < 0)
		return 0;
	return delta > kMaxRetryAfterSec ? kMaxRetryAfterSec : delta;
}

} // namespace hasura_events::sidecar
