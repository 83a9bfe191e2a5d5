/*
 * sidecar/curl_util.hpp
 *
 * RAII owners for libcurl handles and file descriptors, and CURL_CHECK, which turns a failed
 * libcurl call into an exception naming the call.
 */
#pragma once

#include <curl/curl.h>

#include <memory>
#include <vector>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <unordered_map>

namespace hasura_events::sidecar {

class CurlError : public std::runtime_error {
public:
	using std::runtime_error::runtime_error;
};

inline void
check_curl(CURLcode rc, const char *call)
{
	if (rc != CURLE_OK)
		throw CurlError(std::string(call) + " failed: " + curl_easy_strerror(rc));
}

inline void
check_curl(CURLMcode rc, const char *call)
{
	if (rc != CURLM_OK)
		throw CurlError(std::string(call) + " failed: " + curl_multi_strerror(rc));
}

#define CURL_CHECK(call) ::hasura_events::sidecar::check_curl((call), #call)

struct CurlEasyDeleter {
	void
	operator()(CURL *h) const
	{
		curl_easy_cleanup(h);
	}
};
struct CurlMultiDeleter {
	void
	operator()(CURLM *h) const
	{
		curl_multi_cleanup(h);
	}
};
struct CurlSlistDeleter {
	void
	operator()(curl_slist *l) const
	{
		curl_slist_free_all(l);
	}
};

using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMulti = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistDeleter>;

/*
 * EasyPool keeps finished easy handles for the next attempts: curl_easy_init allocates and clears
 * its buffers on every call, and a new attempt every few microseconds makes that a visible share
 * of the sidecar's time. At most `cap` handles are kept.
 *
 * A handle comes back without curl_easy_reset, which frees and rebuilds all of its settings: the
 * options that are the same for every attempt are set once,
 * when take() makes the handle (*fresh), and Attempt::start sets the others on every attempt, the
 * same list each time, so none carries over. give() clears the options that point into the
 * attempt that used the handle, so that nothing in the pool points to freed memory.
 */
class EasyPool {
public:
	explicit EasyPool(size_t cap) : cap_(cap) {}
	CurlEasy
	take(bool *fresh)
	{
		*fresh = idle_.empty();
		if (idle_.empty())
			return CurlEasy(curl_easy_init());
		CurlEasy h = std::move(idle_.back());
		idle_.pop_back();
		return h;
	}
	void
	give(CurlEasy h)
	{
		if (!h || idle_.size() >= cap_)
			return; /* the deleter frees it */
		CURL *e = h.get();
		/* pointers into the finished attempt; these options cannot fail */
		curl_easy_setopt(e, CURLOPT_PRIVATE, nullptr);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, nullptr);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, nullptr);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, nullptr);
		curl_easy_setopt(e, CURLOPT_HEADERDATA, nullptr);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, nullptr);
		curl_easy_setopt(e, CURLOPT_CURLU, nullptr);
		idle_.push_back(std::move(h));
	}

private:
	size_t cap_;
	std::vector<CurlEasy> idle_;
};

struct CurlUrlDeleter {
	void
	operator()(CURLU *u) const
	{
		curl_url_cleanup(u);
	}
};

/*
 * UrlCache keeps the webhook URLs in use parsed (CURLU): given CURLOPT_CURLU, curl copies the
 * parsed URL instead of parsing the string again for every transfer. A URL is parsed as curl
 * parses CURLOPT_URL (its flags in 7.88's
 * url.c); one it refuses is kept as refused (nullptr), and its attempts pass the string, so that
 * curl reports the error it always did. An attempt holds its entry while its transfer runs; past
 * `cap` URLs the cache starts over.
 */
class UrlCache {
public:
	explicit UrlCache(size_t cap) : cap_(cap) {}
	std::shared_ptr<CURLU>
	parsed(const std::string &url)
	{
		auto it = urls_.find(url);
		if (it != urls_.end())
			return it->second;
		if (urls_.size() >= cap_)
			urls_.clear(); /* attempts keep theirs alive */
		std::shared_ptr<CURLU> u(curl_url(), CurlUrlDeleter());
		if (u && curl_url_set(u.get(), CURLUPART_URL, url.c_str(), CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
					 CURLUE_OK)
			u.reset();
		urls_.emplace(url, u);
		return u;
	}

private:
	size_t cap_;
	std::unordered_map<std::string, std::shared_ptr<CURLU>> urls_;
};

/* CurlGlobal brackets curl_global_init / curl_global_cleanup */
class CurlGlobal {
public:
	CurlGlobal() { CURL_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT)); }
	~CurlGlobal() { curl_global_cleanup(); }
	CurlGlobal(const CurlGlobal &) = delete;
	CurlGlobal &operator=(const CurlGlobal &) = delete;
};

/* Fd owns a file descriptor */
class Fd {
public:
	Fd() = default;
	explicit Fd(int fd) : fd_(fd) {}
	Fd(Fd &&o) noexcept : fd_(o.release()) {}
	Fd &
	operator=(Fd &&o) noexcept
	{
		if (this != &o)
			reset(o.release());
		return *this;
	}
	Fd(const Fd &) = delete;
	Fd &operator=(const Fd &) = delete;
	~Fd() { reset(); }

	int
	get() const
	{
		return fd_;
	}
	explicit operator bool() const { return fd_ >= 0; }
	int
	release()
	{
		int fd = fd_;
		fd_ = -1;
		return fd;
	}
	void
	reset(int fd = -1)
	{
		if (fd_ >= 0)
			::close(fd_);
		fd_ = fd;
	}

private:
	int fd_ = -1;
};

} // namespace hasura_events::sidecar
