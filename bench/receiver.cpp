// bench/receiver.cpp: the benchmark's webhook receiver.
//
// A single-threaded epoll HTTP/1.1 server with keep-alive that answers 200 to every request.
// Per request it records the receive time (CLOCK_REALTIME, microseconds, taken when the last
// byte of the request has been read) and a marker from the body: the integer value of the first
// "id" key after the first "new" key (the row id in a hasura_events payload), or -1.
//
//   receiver --port 0 --out FILE
//     prints "listening on 127.0.0.1:PORT" on stdout once it accepts connections.
//     SIGUSR1: writes every record since the previous dump to FILE ("recv_us id" per line,
//              written to FILE.tmp then renamed, so FILE appears complete) and forgets them.
//     SIGTERM/SIGINT: exits (without dumping).
//
// "Expect: 100-continue" is answered at once. Chunked request bodies are not supported (the
// sidecar and bench/loadgen send Content-Length).
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

namespace {

volatile sig_atomic_t dump_requested = 0;
volatile sig_atomic_t stop_requested = 0;

struct Record {
	long long recv_us;
	long long id;
};

struct Conn {
	std::string in;
	std::string out;
	size_t out_off = 0;
};

long long
now_us()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// Case-insensitive search for a header line; returns the value or an empty string.
std::string
header_value(const char *head, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	size_t pos = 0;
	while (pos < len) {
		const char *line = head + pos;
		const char *eol = (const char *)memchr(line, '\n', len - pos);
		size_t llen = eol ? (size_t)(eol - line) : len - pos;
		if (llen > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			size_t v = nlen + 1;
			while (v < llen && (line[v] == ' ' || line[v] == '\t'))
				v++;
			size_t e = llen;
			while (e > v && (line[e - 1] == '\r' || line[e - 1] == ' '))
				e--;
			return std::string(line + v, e - v);
		}
		pos += llen + 1;
	}
	return std::string();
}

long long
extract_id(const char *body, size_t len)
{
	std::string_view b(body, len);
	size_t n = b.find("\"new\"");
	if (n == std::string_view::npos)
		return -1;
	size_t k = b.find("\"id\"", n);
	if (k == std::string_view::npos)
		return -1;
	k += 4;
	while (k < len && (b[k] == ' ' || b[k] == ':'))
		k++;
	if (k < len && b[k] == '"')
		k++; // a text id
	long long v = 0;
	bool any = false;
	while (k < len && b[k] >= '0' && b[k] <= '9') {
		v = v * 10 + (b[k] - '0');
		k++;
		any = true;
	}
	return any ? v : -1;
}

void
dump(const std::string &path, std::vector<Record> &recs)
{
	std::string tmp = path + ".tmp";
	FILE *f = fopen(tmp.c_str(), "w");
	if (!f) {
		perror("receiver: fopen");
		return;
	}
	for (const Record &r : recs)
		fprintf(f, "%lld %lld\n", r.recv_us, r.id);
	fclose(f);
	rename(tmp.c_str(), path.c_str());
	recs.clear();
}

const char kResponse[] =
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}";
const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";

} // namespace

int
main(int argc, char **argv)
{
	int port = 0;
	std::string out = "receiver.dump";
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--port"))
			port = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--out"))
			out = argv[i + 1];
	}
	struct sigaction sa {};
	sa.sa_handler = [](int) { dump_requested = 1; };
	sigaction(SIGUSR1, &sa, nullptr);
	sa.sa_handler = [](int) { stop_requested = 1; };
	sigaction(SIGTERM, &sa, nullptr);
	sigaction(SIGINT, &sa, nullptr);
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sockaddr_in addr{};
	addr.sin_family = AF_INET;
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons(port);
	if (bind(lfd, (sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1024) < 0) {
		perror("receiver: bind/listen");
		return 1;
	}
	socklen_t alen = sizeof(addr);
	getsockname(lfd, (sockaddr *)&addr, &alen);
	printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
	fflush(stdout);

	int ep = epoll_create1(0);
	epoll_event ev{};
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

	std::unordered_map<int, Conn> conns;
	std::vector<Record> recs;
	recs.reserve(1 << 20);
	std::vector<char> buf(1 << 16);
	epoll_event evs[256];

	auto close_conn = [&](int fd) {
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
		close(fd);
		conns.erase(fd);
	};
	auto flush_out = [&](int fd, Conn &c) -> bool {
		while (c.out_off < c.out.size()) {
			ssize_t w = write(fd, c.out.data() + c.out_off, c.out.size() - c.out_off);
			if (w < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					epoll_event e{};
					e.events = EPOLLIN | EPOLLOUT;
					e.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
					return true;
				}
				return false;
			}
			c.out_off += (size_t)w;
		}
		c.out.clear();
		c.out_off = 0;
		return true;
	};

	while (!stop_requested) {
		if (dump_requested) {
			dump_requested = 0;
			dump(out, recs);
		}
		int n = epoll_wait(ep, evs, 256, 50);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				for (;;) {
					int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK);
					if (cfd < 0)
						break;
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					epoll_event e{};
					e.events = EPOLLIN;
					e.data.fd = cfd;
					epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e);
					conns[cfd];
				}
				continue;
			}
			auto it = conns.find(fd);
			if (it == conns.end())
				continue;
			Conn &c = it->second;
			if (evs[i].events & EPOLLOUT) {
				if (!flush_out(fd, c)) {
					close_conn(fd);
					continue;
				}
				if (c.out.empty()) {
					epoll_event e{};
					e.events = EPOLLIN;
					e.data.fd = fd;
					epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
				}
			}
			if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				continue;
			bool dead = false;
			for (;;) {
				ssize_t r = read(fd, buf.data(), buf.size());
				if (r > 0) {
					c.in.append(buf.data(), (size_t)r);
					if ((size_t)r < buf.size())
						break;
				} else if (r == 0) {
					dead = true;
					break;
				} else {
					if (errno != EAGAIN && errno != EWOULDBLOCK)
						dead = true;
					break;
				}
			}
			// every complete request in the buffer
			size_t pos = 0;
			for (;;) {
				size_t he = c.in.find("\r\n\r\n", pos);
				if (he == std::string::npos)
					break;
				const char *head = c.in.data() + pos;
				size_t hlen = he - pos;
				std::string cl = header_value(head, hlen, "Content-Length");
				size_t body_len = cl.empty() ? 0 : (size_t)strtoull(cl.c_str(), nullptr, 10);
				size_t body_start = he + 4;
				if (c.in.size() < body_start + body_len) {
					std::string ex = header_value(head, hlen, "Expect");
					if (!ex.empty() && strncasecmp(ex.c_str(), "100-continue", 12) == 0 && c.in.size() == body_start) {
						c.out.append(kContinue, sizeof(kContinue) - 1);
					}
					break;
				}
				recs.push_back({now_us(), extract_id(c.in.data() + body_start, body_len)});
				c.out.append(kResponse, sizeof(kResponse) - 1);
				pos = body_start + body_len;
			}
			if (pos > 0)
				c.in.erase(0, pos);
			if (!c.out.empty() && !flush_out(fd, c))
				dead = true;
			if (dead)
				close_conn(fd);
		}
	}
	return 0;
}
