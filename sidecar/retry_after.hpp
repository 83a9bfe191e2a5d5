/*
 * sidecar/retry_after.hpp
 *
 * Parsing of the Retry-After response header (RFC 9110 10.2.3): either delay-seconds or an
 * HTTP-date.
 */
#pragma once

#include <cstdint>
#include <ctime>
#include <string>

namespace hasura_events::sidecar {

/*
 * parse_retry_after returns the delay in seconds from now (a date in the past gives 0), or -1
 * when the value is neither form. Delays are capped at one year.
 */
int64_t parse_retry_after(const std::string &value, time_t now);

constexpr int64_t kMaxRetryAfterSec = 365 * 24 * 3600;

} // namespace hasura_events::sidecar
