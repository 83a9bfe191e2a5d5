/*
 * sidecar/http_server.hpp
 *
 * The metrics endpoint: a tiny HTTP/1.1 server driven by the sidecar's event loop (no thread).
 * It answers GET and HEAD only, one request per connection (Connection: close), with requests
 * bounded to kMaxRequestBytes and a per-connection deadline, so a slow or hostile client costs
 * one file descriptor for a few seconds at most.
 *
 * Wording: a "client" is one accepted TCP connection to the endpoint.
 */
#pragma once

#include "curl_util.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hasura_events::sidecar {

constexpr size_t kMaxRequestBytes = 8192;

struct HttpRequest {
	std::string method;
	std::string path; /* the target without its query string */
	std::string version;
};

enum class ParseResult { NeedMore, Ok, Bad, TooLarge };

/*
 * parse_http_request looks for a complete request head (request line and headers up to the
 * empty line) at the start of data. A body, if any, is ignored.
 */
ParseResult parse_http_request(std::string_view data, HttpRequest &out);

struct HttpResponse {
	int status = 200;
	std::string content_type = "text/plain; charset=utf-8";
	std::string body;
	std::vector<std::pair<std::string, std::string>> headers;
};

/* format_http_response renders the status line, headers (Content-Length, Connection: close), body */
std::string format_http_response(const HttpResponse &r, bool head_only);

const char *http_reason(int status);

/* ListenAddress is a numeric IPv4 "a.b.c.d:port" or IPv6 "[addr]:port" */
struct ListenAddress {
	std::string host;
	uint16_t port = 0;
	bool ipv6 = false;
};
bool parse_listen_address(const std::string &text, ListenAddress &out);

class HttpServer {
public:
	using Handler = std::function<HttpResponse(const HttpRequest &)>;
	using Clock = std::chrono::steady_clock;

	static constexpr size_t kMaxClients = 16;
	static constexpr std::chrono::seconds kClientTimeout{5};

	explicit HttpServer(Handler handler);

	/* listen binds and listens; throws std::runtime_error naming the address on failure */
	void listen(const ListenAddress &address);
	/* bound_address is "host:port" as bound (the real port when 0 was asked for) */
	std::string bound_address() const;

	struct PollFd {
		int fd;
		bool want_write;
	};
	/* poll_fds lists the sockets to wait on (the listener first) */
	std::vector<PollFd> poll_fds() const;
	/* on_ready handles readiness of one of them */
	void on_ready(int fd, bool readable, bool writable);
	/* expire closes clients past their deadline; returns ms until the next deadline (or max_ms) */
	int expire(Clock::time_point now, int max_ms);

	size_t
	clients() const
	{
		return clients_.size();
	}

private:
	struct Client {
		Fd fd;
		std::string in;
		std::string out;
		size_t out_off = 0;
		bool responding = false;
		Clock::time_point deadline;
	};
	void accept_clients();
	void read_client(Client &c);
	void write_client(Client &c);
	void respond(Client &c, const HttpResponse &r, bool head_only);

	Handler handler_;
	Fd listen_fd_;
	std::string bound_;
	std::map<int, Client> clients_;
};

} // namespace hasura_events::sidecar
