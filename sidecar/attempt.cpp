/*
 * sidecar/attempt.cpp
 *
 * Building and finishing the curl transfer of one delivery attempt.
 */
#include "attempt.hpp"

#include "resolve.hpp"
#include "retry_after.hpp"

#include <climits>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <strings.h>

namespace hasura_events::sidecar {

namespace {

const char *
process_env(const char *name)
{
	return getenv(name);
}

} // namespace

Attempt::Attempt(uint64_t conn_id, proto::Deliver deliver, uint32_t max_response_bytes)
	: conn_id_(conn_id), deliver_(std::move(deliver)), max_response_bytes_(max_response_bytes)
{
	errbuf_[0] = '\0';
	started_ = Clock::now();
	outcome_.event_id = deliver_.event_id;
}

Attempt::~Attempt()
{
	detach();
	if (pool_ != nullptr)
		pool_->give(std::move(easy_));
}

/*
 * Attempt::detach removes the easy handle from the multi; curl requires that before cleanup.
 */
void
Attempt::detach()
{
	if (multi_ && easy_) {
		curl_multi_remove_handle(multi_, easy_.get()); /* cannot usefully fail here; nothing to report */
		multi_ = nullptr;
	}
}

void
Attempt::set_duration()
{
	Clock::duration elapsed = Clock::now() - started_;
	http_seconds_ = std::chrono::duration<double>(elapsed).count();
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count();
	outcome_.duration_ms = ms < 0 ? 0 : (ms > UINT32_MAX ? UINT32_MAX : uint32_t(ms));
}

void
Attempt::fail(const std::string &error)
{
	outcome_.kind = proto::OutcomeKind::ClientError;
	outcome_.http_status = 0;
	outcome_.retry_after_sec = -1;
	outcome_.error = redact(error, secrets_);
	set_duration();
}

/*
 * set_constant_options: the options every attempt has: only http and https, no redirects, TLS
 * verification on (curl's default, set explicitly), no signals, TCP keep-alive, a POST, and our
 * callbacks.
 */
void
Attempt::set_constant_options(CURL *h)
{
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https"));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https"));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_POST, 1L));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &Attempt::on_body));
	CURL_CHECK(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &Attempt::on_header));
}

/*
 * Attempt::start sets up the POST: the constant options (on a handle new from the pool), the URL
 * (parsed once per URL: UrlCache), headers, body and the Deliver's timeout; the multi handle's
 * connection cache gives keep-alive.
 */
bool
Attempt::start(CURLM *multi, EasyPool &pool, UrlCache &urls, const std::string &user_agent)
{
	started_ = Clock::now();
	ResolvedRequest req = resolve_request(deliver_, process_env, user_agent);
	secrets_ = req.secrets;
	if (!req.ok) {
		fail(req.error);
		return false;
	}
	try {
		bool fresh = false;
		easy_ = pool.take(&fresh);
		pool_ = &pool;
		if (!easy_)
			throw CurlError("curl_easy_init failed");
		CURL *h = easy_.get();
		if (fresh) /* the same for every attempt: set once a handle */
			set_constant_options(h);
		for (const std::string &line : req.header_lines) {
			curl_slist *l = curl_slist_append(headers_.get(), line.c_str());
			if (l == nullptr)
				throw CurlError("curl_slist_append failed");
			headers_.release();
			headers_.reset(l);
		}
		long timeout = curl_timeout_sec(deliver_.timeout_sec);
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_PRIVATE, this));
		url_ = urls.parsed(req.url);
		if (url_) /* CURLOPT_CURLU takes precedence over CURLOPT_URL */
			CURL_CHECK(curl_easy_setopt(h, CURLOPT_CURLU, url_.get()));
		else {
			CURL_CHECK(curl_easy_setopt(h, CURLOPT_CURLU, nullptr));
			CURL_CHECK(curl_easy_setopt(h, CURLOPT_URL, req.url.c_str()));
		}
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(deliver_.body.size())));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_POSTFIELDS, deliver_.body.data()));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers_.get()));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_WRITEDATA, this));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_HEADERDATA, this));
		CURL_CHECK(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf_));
		CURL_CHECK(curl_multi_add_handle(multi, h));
		multi_ = multi;
		http_sent_ = true;
	} catch (const CurlError &e) {
		fail(e.what());
		return false;
	}
	return true;
}

/*
 * Attempt::on_body keeps the first max_response_bytes of the body and discards the rest
 * without failing the transfer: the status decides the outcome, not the body size.
 */
size_t
Attempt::on_body(char *data, size_t size, size_t nmemb, void *self)
{
	auto *a = static_cast<Attempt *>(self);
	size_t n = size * nmemb;
	a->response_bytes_ += n;
	size_t room =
		a->max_response_bytes_ > a->response_body_.size() ? a->max_response_bytes_ - a->response_body_.size() : 0;
	try {
		a->response_body_.append(data, n < room ? n : room);
	} catch (...) {
		return 0; /* as on_header: nothing escapes into curl */
	}
	return n;
}

/*
 * Attempt::on_header collects the response's header lines (collect_response_header). Nothing may
 * escape into curl, whose C frames lie between this callback and the sidecar's loop: a failure
 * (out of memory) returns 0, which ends the transfer with CURLE_WRITE_ERROR, a client_error.
 */
size_t
Attempt::on_header(char *data, size_t size, size_t nmemb, void *self)
{
	auto *a = static_cast<Attempt *>(self);
	size_t n = size * nmemb;
	try {
		collect_response_header(a->response_headers_, std::string_view(data, n));
	} catch (...) {
		return 0;
	}
	return n;
}

/*
 * curl_timeout_sec: the Deliver's timeout_sec as CURLOPT_TIMEOUT takes it. 0 (not set) is 60 s,
 * Hasura's default. curl refuses more than INT_MAX / 1000 s (24.8 days) with
 * CURLE_BAD_FUNCTION_ARGUMENT, which would fail every attempt of a trigger registered with a
 * longer timeout (the API takes any positive integer, as Hasura's does): such a timeout is
 * capped there, which makes no difference a webhook could notice.
 */
long
curl_timeout_sec(uint32_t timeout_sec)
{
	constexpr long kMax = INT_MAX / 1000;
	if (timeout_sec == 0)
		return 60;
	return long(timeout_sec) > kMax ? kMax : long(timeout_sec);
}

namespace {

std::string_view
trim_blanks(std::string_view s)
{
	size_t b = s.find_first_not_of(" \t");
	if (b == std::string_view::npos)
		return std::string_view();
	return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

} // namespace

/*
 * collect_response_header adds one header line as curl hands it over (with its CRLF). A status
 * line starts a new response (after a 100 Continue, for example), so it forgets the headers seen
 * so far. A line starting with a space or a tab continues the previous header (obsolete line
 * folding, which curl passes on): its text, trimmed, is appended to that header's value after a
 * space; a folded line of blanks only adds nothing. Lines without a colon, lines beyond
 * kMaxResponseHeaders headers and bytes beyond kMaxResponseHeaderBytes are dropped.
 */
void
collect_response_header(ResponseHeaders &headers, std::string_view line)
{
	while (!line.empty() && (line.back() == '\n' || line.back() == '\r'))
		line.remove_suffix(1);
	if (line.substr(0, 5) == "HTTP/") {
		headers.clear();
		return;
	}
	if (line.empty())
		return;
	size_t used = 0;
	for (const auto &h : headers)
		used += h.first.size() + h.second.size();
	if (used + line.size() > kMaxResponseHeaderBytes)
		return;
	if (line[0] == ' ' || line[0] == '\t') {
		std::string_view more = trim_blanks(line);
		if (headers.empty() || more.empty())
			return;
		std::string &value = headers.back().second;
		if (!value.empty())
			value += ' ';
		value.append(more);
		return;
	}
	size_t colon = line.find(':');
	if (colon == std::string_view::npos || headers.size() >= kMaxResponseHeaders)
		return;
	headers.emplace_back(std::string(line.substr(0, colon)), std::string(trim_blanks(line.substr(colon + 1))));
}

/*
 * Attempt::finish: a response with a 2xx status is delivered, any other status is an
 * http_error, and no response at all is a client_error with curl's reason.
 */
void
Attempt::finish(CURLcode result)
{
	long status = 0;
	if (easy_)
		curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status); /* status stays 0 on failure */
	detach();
	set_duration();
	if (result != CURLE_OK) {
		std::string error = curl_easy_strerror(result);
		if (errbuf_[0] != '\0' && error != errbuf_)
			error += std::string(": ") + errbuf_;
		fail(error);
		return;
	}
	if (status <= 0) {
		fail("no HTTP response status");
		return;
	}
	outcome_.http_status = int32_t(status);
	outcome_.kind = status >= 200 && status < 300 ? proto::OutcomeKind::Delivered : proto::OutcomeKind::HttpError;
	outcome_.response_body = std::move(response_body_);
	outcome_.response_headers = std::move(response_headers_);
	outcome_.retry_after_sec = -1;
	for (const auto &h : outcome_.response_headers) {
		if (strcasecmp(h.first.c_str(), "Retry-After") == 0)
			outcome_.retry_after_sec = parse_retry_after(h.second, time(nullptr));
	}
	outcome_.error.clear();
}

void
Attempt::abandon(const std::string &reason)
{
	detach();
	fail(reason);
}

/*
 * fit_outcome makes sure the Outcome frame is not larger than the worker accepts.
 */
void
fit_outcome(proto::Outcome &o, uint32_t max_frame)
{
	if (proto::encoded_size(o) <= max_frame)
		return;
	o.response_headers.clear();
	size_t size = proto::encoded_size(o);
	if (size <= max_frame)
		return;
	size_t excess = size - max_frame;
	o.response_body.resize(o.response_body.size() > excess ? o.response_body.size() - excess : 0);
	if (proto::encoded_size(o) > max_frame)
		o.error.resize(0);
}

} // namespace hasura_events::sidecar
