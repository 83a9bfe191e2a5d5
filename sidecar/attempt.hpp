/*
 * sidecar/attempt.hpp
 *
 * One delivery attempt: the HTTP POST of one Deliver, as a curl easy handle driven by the
 * sidecar's multi handle, and the Outcome built from its result.
 *
 * Wording: an "attempt" is one HTTP request for one event; the worker counts attempts (tries)
 * and decides about retries. The sidecar never retries.
 */
#pragma once

#include "curl_util.hpp"
#include "protocol.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hasura_events::sidecar {

using Clock = std::chrono::steady_clock;
using ResponseHeaders = std::vector<std::pair<std::string, std::string>>;

constexpr size_t kMaxResponseHeaders = 200;
constexpr size_t kMaxResponseHeaderBytes = 64 * 1024;

/* collect_response_header adds one response header line, as curl's header callback gets it */
void collect_response_header(ResponseHeaders &headers, std::string_view line);
/* curl_timeout_sec is the CURLOPT_TIMEOUT of a Deliver's timeout_sec: 0 means 60, capped at curl's maximum */
long curl_timeout_sec(uint32_t timeout_sec);

class Attempt {
public:
	/* Attempt does not start anything: call start() */
	Attempt(uint64_t conn_id, proto::Deliver deliver, uint32_t max_response_bytes);
	~Attempt();
	Attempt(const Attempt &) = delete;
	Attempt &operator=(const Attempt &) = delete;

	/*
	 * start resolves the request and adds the transfer to multi. On false, the attempt failed
	 * before any network activity and outcome() holds the client_error to report.
	 */
	bool start(CURLM *multi, EasyPool &pool, UrlCache &urls, const std::string &user_agent);

	/* finish builds the outcome once curl reports the transfer done; removes it from the multi */
	void finish(CURLcode result);

	/* abandon ends a running transfer with a client_error (shutdown) */
	void abandon(const std::string &reason);

	uint64_t
	conn_id() const
	{
		return conn_id_;
	}
	const proto::Deliver &
	deliver() const
	{
		return deliver_;
	}
	proto::Outcome &
	outcome()
	{
		return outcome_;
	}
	CURL *
	easy() const
	{
		return easy_.get();
	}
	/* http_sent: the request was handed to curl (false when resolving it failed) */
	bool
	http_sent() const
	{
		return http_sent_;
	}
	/* response_bytes: body bytes received, including those beyond max_response_bytes */
	uint64_t
	response_bytes() const
	{
		return response_bytes_;
	}
	/* http_seconds: from start() to the outcome, with sub-millisecond precision */
	double
	http_seconds() const
	{
		return http_seconds_;
	}

private:
	static void set_constant_options(CURL *h);
	static size_t on_body(char *data, size_t size, size_t nmemb, void *self);
	static size_t on_header(char *data, size_t size, size_t nmemb, void *self);
	void fail(const std::string &error);
	void detach();
	void set_duration();

	uint64_t conn_id_;
	proto::Deliver deliver_; /* owns the body curl posts */
	uint32_t max_response_bytes_;
	std::vector<std::string> secrets_;
	CURLM *multi_ = nullptr;   /* set while the easy handle is in the multi */
	EasyPool *pool_ = nullptr; /* where the easy handle goes back */
	CurlEasy easy_;            /* from pool_, and back to it when the attempt ends */
	CurlSlist headers_;
	std::shared_ptr<CURLU> url_; /* the parsed URL curl reads while the transfer runs */
	std::string response_body_;
	ResponseHeaders response_headers_;
	char errbuf_[CURL_ERROR_SIZE];
	Clock::time_point started_;
	bool http_sent_ = false;
	uint64_t response_bytes_ = 0;
	double http_seconds_ = 0;
	proto::Outcome outcome_;
};

/* fit_outcome trims response headers, then the body, so the Outcome frame fits max_frame */
void fit_outcome(proto::Outcome &o, uint32_t max_frame);

} // namespace hasura_events::sidecar
