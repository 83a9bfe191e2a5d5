/*
 * sidecar/http_server.cpp
 *
 * Request parsing, response formatting and the non-blocking socket handling of the metrics
 * endpoint. Every socket is non-blocking; the event loop polls the descriptors that
 * poll_fds() lists and calls on_ready().
 */
#include "http_server.hpp"

#include "socket_io.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <stdexcept>
#include <sys/socket.h>

namespace hasura_events::sidecar {

namespace {

bool
is_token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		   std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

} // namespace

/*
 * parse_http_request accepts CRLF or bare LF line ends. The request line must be exactly
 * "METHOD SP origin-form-target SP HTTP/1.x"; header lines must be "name: value".
 */
ParseResult
parse_http_request(std::string_view data, HttpRequest &out)
{
	size_t end = data.find("\r\n\r\n");
	size_t lf_end = data.find("\n\n");
	if (lf_end != std::string_view::npos && (end == std::string_view::npos || lf_end < end))
		end = lf_end;
	if (end == std::string_view::npos)
		return data.size() >= kMaxRequestBytes ? ParseResult::TooLarge : ParseResult::NeedMore;
	if (end >= kMaxRequestBytes)
		return ParseResult::TooLarge;
	std::string_view head = data.substr(0, end);

	std::vector<std::string_view> lines;
	for (size_t pos = 0; pos <= head.size();) {
		size_t nl = head.find('\n', pos);
		std::string_view line = head.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
		if (!line.empty() && line.back() == '\r')
			line.remove_suffix(1);
		lines.push_back(line);
		if (nl == std::string_view::npos)
			break;
		pos = nl + 1;
	}

	std::string_view rl = lines[0];
	size_t sp1 = rl.find(' ');
	size_t sp2 = sp1 == std::string_view::npos ? sp1 : rl.find(' ', sp1 + 1);
	if (sp2 == std::string_view::npos || rl.find(' ', sp2 + 1) != std::string_view::npos)
		return ParseResult::Bad;
	std::string_view method = rl.substr(0, sp1);
	std::string_view target = rl.substr(sp1 + 1, sp2 - sp1 - 1);
	std::string_view version = rl.substr(sp2 + 1);
	if (method.empty())
		return ParseResult::Bad;
	for (char c : method) {
		if (!is_token_char(c))
			return ParseResult::Bad;
	}
	if (target.empty() || target[0] != '/')
		return ParseResult::Bad;
	for (char c : target) {
		if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
			return ParseResult::Bad;
	}
	if (version != "HTTP/1.1" && version != "HTTP/1.0")
		return ParseResult::Bad;

	for (size_t i = 1; i < lines.size(); i++) {
		std::string_view h = lines[i];
		size_t colon = h.find(':');
		if (colon == 0 || colon == std::string_view::npos)
			return ParseResult::Bad;
		for (char c : h.substr(0, colon)) {
			if (!is_token_char(c))
				return ParseResult::Bad; /* also refuses obsolete line folding */
		}
	}

	out.method = std::string(method);
	out.path = std::string(target.substr(0, target.find('?')));
	out.version = std::string(version);
	return ParseResult::Ok;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Unknown";
}

std::string
format_http_response(const HttpResponse &r, bool head_only)
{
	std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + http_reason(r.status) + "\r\n";
	out += "Content-Type: " + r.content_type + "\r\n";
	out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
	out += "Cache-Control: no-store\r\n";
	for (const auto &h : r.headers)
		out += h.first + ": " + h.second + "\r\n";
	out += "Connection: close\r\n\r\n";
	if (!head_only)
		out += r.body;
	return out;
}

/*
 * parse_listen_address accepts numeric addresses only: the endpoint never resolves names.
 */
bool
parse_listen_address(const std::string &text, ListenAddress &out)
{
	size_t colon = text.rfind(':');
	if (colon == std::string::npos || colon + 1 >= text.size() || text.size() - colon - 1 > 5)
		return false;
	uint32_t port = 0;
	for (size_t i = colon + 1; i < text.size(); i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		port = port * 10 + uint32_t(text[i] - '0');
	}
	if (port > 65535)
		return false;
	std::string host = text.substr(0, colon);
	bool ipv6 = false;
	if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
		host = host.substr(1, host.size() - 2);
		ipv6 = true;
	}
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(ipv6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1)
		return false;
	out.host = host;
	out.port = uint16_t(port);
	out.ipv6 = ipv6;
	return true;
}

HttpServer::HttpServer(Handler handler) : handler_(std::move(handler)) {}

void
HttpServer::listen(const ListenAddress &address)
{
	std::string shown = address.ipv6 ? "[" + address.host + "]:" + std::to_string(address.port)
									 : address.host + ":" + std::to_string(address.port);
	auto fail = [&](const char *what) {
		throw std::runtime_error(std::string("metrics endpoint ") + shown + ": " + what + ": " + strerror(errno));
	};
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	socklen_t len;
	if (address.ipv6) {
		auto *a = reinterpret_cast<struct sockaddr_in6 *>(&ss);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(address.port);
		inet_pton(AF_INET6, address.host.c_str(), &a->sin6_addr);
		len = sizeof *a;
	} else {
		auto *a = reinterpret_cast<struct sockaddr_in *>(&ss);
		a->sin_family = AF_INET;
		a->sin_port = htons(address.port);
		inet_pton(AF_INET, address.host.c_str(), &a->sin_addr);
		len = sizeof *a;
	}
	Fd fd(socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!fd)
		fail("socket");
	int one = 1;
	if (setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
		fail("setsockopt");
	if (address.ipv6 && setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
		fail("setsockopt");
	if (bind(fd.get(), reinterpret_cast<struct sockaddr *>(&ss), len) != 0)
		fail("bind");
	if (::listen(fd.get(), 16) != 0)
		fail("listen");
	memset(&ss, 0, sizeof ss);
	len = sizeof ss;
	if (getsockname(fd.get(), reinterpret_cast<struct sockaddr *>(&ss), &len) != 0)
		fail("getsockname");
	uint16_t port = ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<struct sockaddr_in6 *>(&ss)->sin6_port)
											 : ntohs(reinterpret_cast<struct sockaddr_in *>(&ss)->sin_port);
	bound_ =
		address.ipv6 ? "[" + address.host + "]:" + std::to_string(port) : address.host + ":" + std::to_string(port);
	listen_fd_ = std::move(fd);
}

std::string
HttpServer::bound_address() const
{
	return bound_;
}

std::vector<HttpServer::PollFd>
HttpServer::poll_fds() const
{
	std::vector<PollFd> fds;
	if (!listen_fd_)
		return fds;
	fds.push_back(PollFd{listen_fd_.get(), false});
	for (const auto &entry : clients_)
		fds.push_back(PollFd{entry.first, entry.second.responding});
	return fds;
}

void
HttpServer::on_ready(int fd, bool readable, bool writable)
{
	if (listen_fd_ && fd == listen_fd_.get()) {
		if (readable)
			accept_clients();
		return;
	}
	auto it = clients_.find(fd);
	if (it == clients_.end())
		return;
	Client &c = it->second;
	if (c.responding) {
		if (writable || readable)
			write_client(c); /* may erase c */
	} else if (readable) {
		read_client(c); /* may erase c */
	}
}

/*
 * HttpServer::expire drops clients that sent no complete request, or did not take their
 * response, within kClientTimeout.
 */
int
HttpServer::expire(Clock::time_point now, int max_ms)
{
	int wait = max_ms;
	for (auto it = clients_.begin(); it != clients_.end();) {
		Client &c = it->second;
		if (now >= c.deadline) {
			it = clients_.erase(it);
			continue;
		}
		auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(c.deadline - now).count() + 1;
		if (ms < wait)
			wait = int(ms);
		++it;
	}
	return wait;
}

/*
 * HttpServer::accept_clients takes every pending connection; beyond kMaxClients the newcomer is
 * closed at once (scrapers retry; the loop must not grow without bound).
 */
void
HttpServer::accept_clients()
{
	for (;;) {
		int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return; /* EAGAIN, or EMFILE and the like: try again on the next wake */
		}
		if (clients_.size() >= kMaxClients) {
			::close(fd);
			continue;
		}
		Client &c = clients_[fd];
		c.fd.reset(fd);
		c.deadline = Clock::now() + kClientTimeout;
	}
}

void
HttpServer::read_client(Client &c)
{
	char buf[4096];
	for (;;) {
		size_t room = kMaxRequestBytes + 1 - c.in.size();
		ssize_t n = recv(c.fd.get(), buf, room < sizeof buf ? room : sizeof buf, 0);
		if (n > 0) {
			c.in.append(buf, size_t(n));
			if (c.in.size() > kMaxRequestBytes)
				break;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		clients_.erase(c.fd.get()); /* EOF before a complete request, or an error */
		return;
	}
	HttpRequest req;
	switch (parse_http_request(c.in, req)) {
	case ParseResult::NeedMore: return;
	case ParseResult::Bad:
		respond(c, HttpResponse{400, "text/plain; charset=utf-8", "bad request\n", {}}, false);
		return;
	case ParseResult::TooLarge:
		respond(c, HttpResponse{431, "text/plain; charset=utf-8", "request too large\n", {}}, false);
		return;
	case ParseResult::Ok: break;
	}
	HttpResponse r;
	try {
		r = handler_(req);
	} catch (const std::exception &e) {
		r = HttpResponse{500, "text/plain; charset=utf-8", "internal error\n", {}};
	}
	respond(c, r, req.method == "HEAD");
}

void
HttpServer::respond(Client &c, const HttpResponse &r, bool head_only)
{
	c.out = format_http_response(r, head_only);
	c.out_off = 0;
	c.responding = true;
	c.deadline = Clock::now() + kClientTimeout;
	write_client(c);
}

/*
 * HttpServer::write_client sends the response; once it is out, the write side is shut and the
 * connection closed (after discarding unread input, so the close does not turn into a reset
 * that could cut the response short at the client).
 */
void
HttpServer::write_client(Client &c)
{
	SendResult r = send_buffered(c.fd.get(), c.out, c.out_off);
	if (r == SendResult::WouldBlock)
		return;
	if (r == SendResult::Failed) {
		clients_.erase(c.fd.get());
		return;
	}
	shutdown(c.fd.get(), SHUT_WR);
	char buf[4096];
	while (recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
	}
	clients_.erase(c.fd.get());
}

} // namespace hasura_events::sidecar
