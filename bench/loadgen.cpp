// bench/loadgen.cpp: measures the receiver's capacity (closed loop, keep-alive).
//
//   loadgen PORT CONNECTIONS SECONDS BODY_BYTES [THREADS]
//
// Every connection sends one POST (a hasura-like JSON body of about BODY_BYTES), waits for the
// whole response, and sends the next. Prints "requests N seconds S rps R".
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

std::atomic<long long> total{0};

struct C {
	int fd;
	std::string in;
	size_t sent = 0;
};

void
run(int port, int nconn, double seconds, const std::string &req)
{
	int ep = epoll_create1(0);
	std::vector<C> cs(nconn);
	for (int i = 0; i < nconn; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		sockaddr_in a{};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons(port);
		if (connect(fd, (sockaddr *)&a, sizeof(a)) < 0) {
			perror("loadgen: connect");
			exit(1);
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		cs[i].fd = fd;
		epoll_event e{};
		e.events = EPOLLIN;
		e.data.u32 = i;
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
		if (write(fd, req.data(), req.size()) != (ssize_t)req.size()) {
			perror("loadgen: write");
			exit(1);
		}
	}
	auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
	long long done = 0;
	char buf[65536];
	epoll_event evs[256];
	while (std::chrono::steady_clock::now() < end) {
		int n = epoll_wait(ep, evs, 256, 10);
		for (int k = 0; k < n; k++) {
			C &c = cs[evs[k].data.u32];
			ssize_t r = read(c.fd, buf, sizeof(buf));
			if (r <= 0) {
				fprintf(stderr, "loadgen: connection closed\n");
				exit(1);
			}
			c.in.append(buf, (size_t)r);
			for (;;) {
				size_t he = c.in.find("\r\n\r\n");
				if (he == std::string::npos)
					break;
				size_t cl = 0;
				const char *p = strcasestr(c.in.c_str(), "content-length:");
				if (p && (size_t)(p - c.in.c_str()) < he)
					cl = strtoul(p + 15, nullptr, 10);
				if (c.in.size() < he + 4 + cl)
					break;
				c.in.erase(0, he + 4 + cl);
				done++;
				if (write(c.fd, req.data(), req.size()) != (ssize_t)req.size()) {
					perror("loadgen: write");
					exit(1);
				}
			}
		}
	}
	total += done;
	for (C &c : cs)
		close(c.fd);
	close(ep);
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: loadgen PORT CONNECTIONS SECONDS BODY_BYTES [THREADS]\n");
		return 2;
	}
	int port = atoi(argv[1]), nconn = atoi(argv[2]);
	double seconds = atof(argv[3]);
	int body_bytes = atoi(argv[4]);
	int threads = argc > 5 ? atoi(argv[5]) : 1;
	std::string body = "{\"id\":\"0b7c2f1e-0000-4000-8000-000000000000\",\"trigger\":{\"name\":\"bench\"},"
					   "\"event\":{\"op\":\"INSERT\",\"data\":{\"old\":null,\"new\":{\"id\": 1, \"note\": \"";
	while ((int)body.size() < body_bytes - 8)
		body += 'x';
	body += "\"}}}}";
	std::string req = "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " +
					  std::to_string(body.size()) + "\r\n\r\n" + body;
	auto t0 = std::chrono::steady_clock::now();
	std::vector<std::thread> ts;
	for (int t = 0; t < threads; t++)
		ts.emplace_back(run, port, nconn / threads, seconds, req);
	for (auto &t : ts)
		t.join();
	double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
	printf("requests %lld seconds %.2f rps %.0f\n", total.load(), s, total.load() / s);
	return 0;
}
