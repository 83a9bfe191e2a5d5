/*
 * sidecar/sidecar.cpp
 *
 * One event loop (curl_multi_poll) over curl's sockets, the worker connections, a signalfd and
 * the metrics endpoint's sockets. Each turn: rescan and reconnect, start queued attempts up to
 * the pool size, send coalesced credits, wait, then serve the endpoint, read the workers, drive
 * curl and report finished attempts.
 *
 * Credits: each connection gets pool_size + prefetch credits after Welcome and one more per
 * Outcome. Deliver frames beyond the concurrency cap wait in their webhook's queue (a route,
 * bounded by the credits granted). Each webhook has its own adaptive concurrency limit
 * (concurrency.hpp) under the pool size, and the pool goes to the webhook with the fewest
 * attempts in flight: a slow webhook cannot take the whole pool while others' deliveries wait
 * here (the worker's credits still bound what is here: a big enough backlog of one webhook can
 * fill them).
 */
#include "sidecar.hpp"

#include "socket_io.hpp"

#include "json_log.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unordered_set>
#include <vector>

namespace hasura_events::sidecar {

namespace {

constexpr auto kRescanInterval = std::chrono::seconds(1);
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
constexpr auto kFinalFlush = std::chrono::seconds(5);
constexpr auto kRouteIdle = std::chrono::minutes(10); /* a route kept this long without deliveries */
constexpr size_t kReadChunk = 64 * 1024;
constexpr size_t kMaxReadPerWake = 4u << 20;
const char *const kShutdownReason = "sidecar shutting down";
constexpr uint64_t kSignalSlot = 0;        /* fd_conn entry of the signalfd */
constexpr uint64_t kHttpSlot = UINT64_MAX; /* fd_conn entry of a metrics endpoint socket */

int64_t
unix_now_ms()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
		.count();
}

int
ms_until(Clock::time_point now, Clock::time_point t)
{
	if (t <= now)
		return 0;
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
	return ms > 1000 ? 1000 : int(ms);
}

} // namespace

/*
 * Sidecar::Sidecar creates the multi handle and the signalfd. SIGTERM and SIGINT must already
 * be blocked (main does it before any thread exists, so curl's resolver threads inherit it).
 */
Sidecar::Sidecar(Options options) : opt_(std::move(options))
{
	user_agent_ = std::string("hasura-events/") + HASURA_EVENTS_VERSION;
	multi_.reset(curl_multi_init());
	if (!multi_)
		throw CurlError("curl_multi_init failed");
	CURL_CHECK(curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, long(opt_.pool_size)));

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	signal_fd_.reset(signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC));
	if (!signal_fd_)
		throw std::runtime_error(std::string("signalfd failed: ") + strerror(errno));

	if (!opt_.metrics_address.empty()) {
		ListenAddress addr;
		if (!parse_listen_address(opt_.metrics_address, addr))
			throw std::runtime_error("invalid metrics address " + opt_.metrics_address);
		http_ = std::make_unique<HttpServer>([this](const HttpRequest &req) { return handle_http(req); });
		try {
			http_->listen(addr);
		} catch (const std::runtime_error &e) {
			/* an address the operator chose must work; the default one may be taken by another
			   sidecar on the same host, which must not stop deliveries */
			if (opt_.metrics_address_set)
				throw;
			LogLine(LogLevel::Warn, "metrics endpoint disabled").str("error", e.what()).emit();
			http_.reset();
		}
	}
}

Sidecar::~Sidecar() = default;

/*
 * Sidecar::run is the event loop.
 */
int
Sidecar::run()
{
	LogLine(LogLevel::Info, "sidecar starting")
		.str("version", HASURA_EVENTS_VERSION)
		.str("id", opt_.id)
		.str("socket", opt_.socket_path)
		.num("pool_size", opt_.pool_size)
		.str("metrics_address", http_ ? http_->bound_address() : "off")
		.emit();

	std::vector<curl_waitfd> fds;
	std::vector<uint64_t> fd_conn;
	for (;;) {
		Clock::time_point now = Clock::now();
		if (!shutting_down_ && now >= next_scan_) {
			rescan();
			forget_idle_routes(now);
			next_scan_ = now + kRescanInterval;
		}
		if (!shutting_down_)
			connect_due(now);
		for (auto it = conns_.begin(); it != conns_.end();) {
			Connection &c = *(it++)->second;
			if (!c.ready && now >= c.handshake_deadline)
				close_connection(c.id, "no Welcome from the worker within 10 s", true);
		}
		if (shutting_down_) {
			if (now >= grace_deadline_ && !attempts_.empty())
				abandon_all();
		} else {
			dispatch();
		}
		flush_releases();
		flush_credits();
		flush_log_summaries(now);
		for (auto it = conns_.begin(); it != conns_.end();) {
			Connection &c = *(it++)->second;
			if (c.out_off < c.out.size())
				write_connection(c); /* may close c */
		}

		if (shutting_down_ && attempts_.empty()) {
			bool flushed = true;
			for (auto &entry : conns_)
				flushed = flushed && entry.second->out_off == entry.second->out.size();
			if (flushed || now >= final_deadline_)
				break;
		}

		/* wait: the log lines of this turn are written first, in one write */
		log_flush();
		fds.clear();
		fd_conn.clear();
		fds.push_back(curl_waitfd{signal_fd_.get(), CURL_WAIT_POLLIN, 0});
		fd_conn.push_back(kSignalSlot);
		if (http_) {
			for (const HttpServer::PollFd &p : http_->poll_fds()) {
				short events = p.want_write ? CURL_WAIT_POLLOUT : CURL_WAIT_POLLIN;
				fds.push_back(curl_waitfd{p.fd, events, 0});
				fd_conn.push_back(kHttpSlot);
			}
		}
		for (auto &entry : conns_) {
			Connection &c = *entry.second;
			short events = CURL_WAIT_POLLIN;
			if (c.out_off < c.out.size())
				events |= CURL_WAIT_POLLOUT;
			fds.push_back(curl_waitfd{c.fd.get(), events, 0});
			fd_conn.push_back(c.id);
		}
		int timeout = 1000;
		if (!shutting_down_) {
			timeout = std::min(timeout, ms_until(now, next_scan_));
			for (auto &entry : paths_) {
				if (entry.second.conn_id == 0)
					timeout = std::min(timeout, ms_until(now, entry.second.next_try));
			}
		} else {
			timeout = std::min(timeout, ms_until(now, attempts_.empty() ? final_deadline_ : grace_deadline_));
		}
		for (auto &entry : conns_) {
			if (!entry.second->ready)
				timeout = std::min(timeout, ms_until(now, entry.second->handshake_deadline));
		}
		if (http_)
			timeout = http_->expire(now, timeout);
		int numfds = 0;
		CURL_CHECK(curl_multi_poll(multi_.get(), fds.data(), unsigned(fds.size()), timeout, &numfds));

		if (fds[0].revents != 0 && handle_signals())
			begin_shutdown();
		for (size_t i = 1; i < fds.size(); i++) {
			if (fds[i].revents == 0)
				continue;
			if (fd_conn[i] == kHttpSlot) {
				http_->on_ready(fds[i].fd, fds[i].revents & CURL_WAIT_POLLIN, fds[i].revents & CURL_WAIT_POLLOUT);
				continue;
			}
			auto it = conns_.find(fd_conn[i]);
			if (it == conns_.end())
				continue;
			Connection &c = *it->second;
			if (fds[i].revents & CURL_WAIT_POLLOUT)
				write_connection(c); /* may close c */
			it = conns_.find(fd_conn[i]);
			if (it != conns_.end() && (fds[i].revents & CURL_WAIT_POLLIN))
				read_connection(*it->second);
		}

		int running = 0;
		CURL_CHECK(curl_multi_perform(multi_.get(), &running));
		drain_curl();
	}

	for (auto it = conns_.begin(); it != conns_.end();) {
		uint64_t id = (it++)->first;
		close_connection(id, kShutdownReason, false);
	}
	LogLine(LogLevel::Info, "sidecar stopped").emit();
	return 0;
}

/*
 * Sidecar::handle_signals reads the signalfd; true when SIGTERM or SIGINT arrived. A second
 * signal during shutdown ends the grace period at once.
 */
bool
Sidecar::handle_signals()
{
	bool got = false;
	struct signalfd_siginfo si;
	while (read(signal_fd_.get(), &si, sizeof si) == ssize_t(sizeof si)) {
		LogLine(LogLevel::Info, "signal received").str("signal", strsignal(int(si.ssi_signo))).emit();
		if (shutting_down_)
			grace_deadline_ = Clock::now();
		got = true;
	}
	return got;
}

/*
 * Sidecar::begin_shutdown says Goodbye on every connection, gives the queued deliveries back to
 * the worker (Release) and gives in-flight attempts the grace period.
 */
void
Sidecar::begin_shutdown()
{
	if (shutting_down_)
		return;
	shutting_down_ = true;
	Clock::time_point now = Clock::now();
	grace_deadline_ = now + std::chrono::seconds(opt_.grace_period_sec);
	final_deadline_ = grace_deadline_ + kFinalFlush;
	LogLine(LogLevel::Info, "shutting down")
		.num("in_flight", int64_t(attempts_.size()))
		.num("queued", int64_t(queued_))
		.num("grace_period_sec", opt_.grace_period_sec)
		.emit();
	for (auto it = conns_.begin(); it != conns_.end();) {
		Connection &c = *(it++)->second;
		if (!c.ready) {
			close_connection(c.id, kShutdownReason, false);
			continue;
		}
		send(c, proto::Goodbye{kShutdownReason});
		c.goodbye_sent = true;
		c.pending_credits = 0;
	}
	/* the deliveries not started go back untouched: no try spent, no invocation log */
	for (auto &entry : routes_)
		release_queue(*entry.second, 0);
}

/*
 * Sidecar::abandon_all ends the attempts still running when the grace period is over. As Hasura
 * unlocks what it still holds at the end of its shutdown timeout, they go back to the worker
 * unrecorded (Release): the webhook may have got the request, and will get it again (at least
 * once).
 */
void
Sidecar::abandon_all()
{
	LogLine(LogLevel::Warn, "grace period over, abandoning attempts")
		.num("in_flight", int64_t(attempts_.size()))
		.emit();
	auto attempts = std::move(attempts_);
	attempts_.clear();
	for (auto &entry : attempts) {
		Attempt &a = *entry.second.attempt;
		a.abandon(kShutdownReason);
		attempt_ended(*entry.second.route, a, false);
		release(a.conn_id(), a.deliver(), 0);
	}
}

/*
 * Sidecar::rescan looks for worker sockets. Paths that vanished are forgotten unless connected
 * (the worker closes those itself).
 */
void
Sidecar::rescan()
{
	std::string error;
	std::vector<std::string> found = scan_sockets(opt_.socket_path, &error);
	if (!error.empty())
		LogLine(LogLevel::Debug, "socket scan failed").str("error", error).emit();
	for (const std::string &path : found) {
		if (paths_.find(path) == paths_.end()) {
			LogLine(LogLevel::Debug, "worker socket found").str("path", path).emit();
			paths_[path].next_try = Clock::now();
		}
	}
	for (auto it = paths_.begin(); it != paths_.end();) {
		bool present = std::find(found.begin(), found.end(), it->first) != found.end();
		if (!present && it->second.conn_id == 0)
			it = paths_.erase(it);
		else
			++it;
	}
}

void
Sidecar::connect_due(Clock::time_point now)
{
	for (auto &entry : paths_) {
		if (entry.second.conn_id == 0 && now >= entry.second.next_try)
			connect_path(entry.first, entry.second);
	}
}

/*
 * Sidecar::connect_path opens a non-blocking connection and sends Hello. A Unix socket connect
 * either completes at once or fails (EAGAIN when the backlog is full), so there is no
 * in-progress state.
 */
void
Sidecar::connect_path(const std::string &path, PathState &ps)
{
	auto failed = [&](const std::string &why) {
		uint32_t delay = ps.backoff.next_delay_ms();
		ps.next_try = Clock::now() + std::chrono::milliseconds(delay);
		LogLine(ps.failure_logged ? LogLevel::Debug : LogLevel::Warn, "cannot connect to worker")
			.str("path", path)
			.str("error", why)
			.num("retry_in_ms", delay)
			.emit();
		ps.failure_logged = true;
	};
	struct sockaddr_un addr;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	if (path.size() >= sizeof addr.sun_path) {
		failed("socket path too long");
		return;
	}
	memcpy(addr.sun_path, path.c_str(), path.size() + 1);
	Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
	if (!fd) {
		failed(std::string("socket: ") + strerror(errno));
		return;
	}
	if (connect(fd.get(), reinterpret_cast<struct sockaddr *>(&addr), sizeof addr) != 0) {
		failed(std::string("connect: ") + strerror(errno));
		return;
	}
	auto c = std::make_unique<Connection>();
	c->id = next_conn_id_++;
	c->path = path;
	c->fd = std::move(fd);
	c->handshake_deadline = Clock::now() + kHandshakeTimeout;
	ps.conn_id = c->id;
	LogLine(LogLevel::Debug, "connected, sending Hello").str("path", path).emit();
	Connection &ref = *c;
	conns_.emplace(c->id, std::move(c));
	send(ref, proto::Hello{proto::kVersion, opt_.id, opt_.pool_size});
}

/*
 * Sidecar::close_connection drops a connection. The worker requeues whatever it delivered on
 * it without an Outcome, so queued deliveries from it are discarded and attempts in flight are
 * aborted: a restarted worker hands those events out again, and an event must never be in
 * flight twice at the same time.
 */
void
Sidecar::close_connection(uint64_t conn_id, const std::string &reason, bool failure)
{
	auto it = conns_.find(conn_id);
	if (it == conns_.end())
		return;
	Connection &c = *it->second;
	size_t dropped = 0;
	for (auto &entry : routes_) {
		Route &r = *entry.second;
		size_t before = r.queue.size();
		r.queue.erase(
			std::remove_if(r.queue.begin(), r.queue.end(), [conn_id](const Queued &q) { return q.conn_id == conn_id; }),
			r.queue.end());
		if (r.queue.size() != before) {
			dropped += before - r.queue.size();
			update_ready(r);
		}
	}
	queued_ -= dropped;
	size_t in_flight = 0;
	for (auto a = attempts_.begin(); a != attempts_.end();) {
		if (a->second.attempt->conn_id() == conn_id) {
			a->second.attempt->abandon("worker connection closed");
			attempt_ended(*a->second.route, *a->second.attempt, false);
			if (a->second.probe)
				breaker_result(*a->second.route, *a->second.attempt, Breaker::Result::Other, true);
			a = attempts_.erase(a);
			in_flight++;
		} else {
			++a;
		}
	}
	LogLine(failure ? LogLevel::Warn : LogLevel::Info, "disconnected from worker")
		.str("path", c.path)
		.str("database", c.database)
		.str("reason", reason)
		.num("queued_dropped", int64_t(dropped))
		.num("in_flight_aborted", int64_t(in_flight))
		.emit();
	if (c.ready)
		metrics_.worker_disconnected(c.database);
	auto ps = paths_.find(c.path);
	if (ps != paths_.end()) {
		ps->second.conn_id = 0;
		ps->second.next_try = Clock::now() + std::chrono::milliseconds(ps->second.backoff.next_delay_ms());
	}
	conns_.erase(it);
}

/*
 * Sidecar::read_connection reads what is available (bounded per wake so one busy worker does
 * not starve the rest) and handles every complete frame.
 */
void
Sidecar::read_connection(Connection &c)
{
	uint64_t id = c.id;
	char buf[kReadChunk];
	size_t total = 0;
	bool eof = false;
	std::string io_error;
	while (total < kMaxReadPerWake) {
		ssize_t n = recv(c.fd.get(), buf, sizeof buf, 0);
		if (n > 0) {
			c.reader.feed(buf, size_t(n));
			total += size_t(n);
			continue;
		}
		if (n == 0)
			eof = true;
		else if (errno == EINTR)
			continue;
		else if (errno != EAGAIN && errno != EWOULDBLOCK)
			io_error = std::string("recv: ") + strerror(errno);
		break;
	}
	for (;;) {
		proto::Message m;
		std::string error;
		proto::FrameReader::Result r = c.reader.next(m, error);
		if (r == proto::FrameReader::Result::NeedMore)
			break;
		if (r == proto::FrameReader::Result::Error) {
			close_connection(id, "malformed frame from the worker: " + error, true);
			return;
		}
		if (!handle_message(c, m))
			return; /* closed */
	}
	if (eof)
		close_connection(
			id, c.reader.buffered() ? "worker closed the connection mid-frame" : "worker closed the connection",
			!shutting_down_);
	else if (!io_error.empty())
		close_connection(id, io_error, true);
}

/*
 * Sidecar::handle_message acts on one frame from a worker; false when it closed the connection.
 */
bool
Sidecar::handle_message(Connection &c, proto::Message &m)
{
	auto protocol_error = [&](const std::string &why) {
		close_connection(c.id, why, true);
		return false;
	};
	if (auto *w = std::get_if<proto::Welcome>(&m)) {
		if (c.ready)
			return protocol_error("unexpected second Welcome");
		if (w->version != proto::kVersion)
			return protocol_error("worker speaks protocol version " + std::to_string(w->version));
		c.ready = true;
		c.database = w->database;
		c.peer_max_frame = w->max_frame;
		auto ps = paths_.find(c.path);
		if (ps != paths_.end()) {
			ps->second.backoff.reset();
			ps->second.failure_logged = false;
		}
		LogLine(LogLevel::Info, "connected to worker").str("path", c.path).str("database", c.database).emit();
		if (shutting_down_) {
			send(c, proto::Goodbye{kShutdownReason});
			c.goodbye_sent = true;
		} else {
			uint64_t initial = uint64_t(opt_.pool_size) + opt_.prefetch;
			c.pending_credits += uint32_t(std::min<uint64_t>(initial, UINT32_MAX));
		}
		return true;
	}
	if (auto *r = std::get_if<proto::Reject>(&m)) {
		LogLine(LogLevel::Error, "worker rejected the sidecar").str("path", c.path).str("reason", r->reason).emit();
		return protocol_error("rejected: " + r->reason);
	}
	if (!c.ready)
		return protocol_error(std::string("expected Welcome, got ") + proto::type_name(m));
	if (auto *d = std::get_if<proto::Deliver>(&m)) {
		if (c.credits == 0)
			return protocol_error("worker sent a Deliver without a credit");
		c.credits--;
		if (shutting_down_ || c.goodbye_sent) {
			release(c.id, *d, 0); /* sent before our Goodbye reached the worker */
			return true;
		}
		LogLine(LogLevel::Debug, "deliver received").str("event_id", d->event_id).str("database", c.database).emit();
		enqueue(c.id, std::move(*d));
		return true;
	}
	if (auto *cancel = std::get_if<proto::Cancel>(&m)) {
		cancel_deliveries(c, *cancel);
		return true;
	}
	if (auto *p = std::get_if<proto::Ping>(&m)) {
		send(c, proto::Pong{p->token});
		return true;
	}
	if (std::holds_alternative<proto::Pong>(m))
		return true;
	if (auto *st = std::get_if<proto::Stats>(&m)) {
		/* the database named in Welcome is authoritative, so the gauges go away with the connection */
		st->database = c.database;
		metrics_.apply_stats(*st);
		return true;
	}
	return protocol_error(std::string("unexpected ") + proto::type_name(m) + " frame from the worker");
}

void
Sidecar::send(Connection &c, const proto::Message &m)
{
	if (c.out_off == c.out.size()) {
		c.out.clear();
		c.out_off = 0;
	}
	proto::encode(m, c.out);
}

/*
 * Sidecar::write_connection writes as much buffered output as the socket takes.
 */
void
Sidecar::write_connection(Connection &c)
{
	if (send_buffered(c.fd.get(), c.out, c.out_off) == SendResult::Failed) {
		close_connection(c.id, std::string("send: ") + strerror(errno), !shutting_down_);
		return;
	}
	if (c.out_off == c.out.size()) {
		c.out.clear();
		c.out_off = 0;
	} else if (c.out_off > (1u << 20) && c.out_off * 2 > c.out.size()) {
		c.out.erase(0, c.out_off);
		c.out_off = 0;
	}
}

/*
 * Sidecar::dispatch starts queued deliveries while the pool has room: each from the ready route
 * with the fewest attempts in flight (the oldest delivery first among equals).
 */
void
Sidecar::dispatch()
{
	while (!ready_.empty() && attempts_.size() < opt_.pool_size) {
		Route &r = *std::get<2>(*ready_.begin());
		Queued q = std::move(r.queue.front());
		r.queue.pop_front();
		queued_--;
		auto conn = conns_.find(q.conn_id);
		metrics_.attempt_started(conn != conns_.end() ? conn->second->database : std::string(), q.deliver,
								 unix_now_ms());
		auto a = std::make_unique<Attempt>(q.conn_id, std::move(q.deliver), opt_.max_response_bytes);
		if (!a->start(multi_.get(), easy_pool_, url_cache_, user_agent_)) {
			update_ready(r);
			report(*a);
			continue;
		}
		r.in_flight++;
		r.limit.started(!r.queue.empty() && r.in_flight >= r.limit.limit());
		bool probe = r.breaker.started(Clock::now());
		update_ready(r);
		Attempt *key = a.get();
		attempts_.emplace(key, Running{std::move(a), &r, probe});
	}
}

/*
 * Sidecar::enqueue puts a delivery in its webhook's queue.
 */
void
Sidecar::enqueue(uint64_t conn_id, proto::Deliver d)
{
	Route &r = route_for(d);
	if (r.breaker.holding(Clock::now())) {
		/* its webhook's breaker is open: back to the worker, held until the cool-down ends */
		release(conn_id, d, r.breaker.remaining_ms(Clock::now()));
		return;
	}
	r.queue.push_back(Queued{conn_id, next_seq_++, std::move(d)});
	r.idle_since = Clock::time_point();
	queued_++;
	if (r.queue.size() == 1)
		update_ready(r);
}

Sidecar::Route &
Sidecar::route_for(const proto::Deliver &d)
{
	if (last_route_ && last_route_->from_env == d.webhook_from_env && last_route_->webhook == d.webhook)
		return *last_route_;
	auto &slot = routes_[std::make_pair(d.webhook_from_env, d.webhook)];
	if (!slot) {
		uint32_t floor = std::min(opt_.min_webhook_concurrency, opt_.pool_size);
		slot = std::make_unique<Route>(d.webhook, d.webhook_from_env, floor, opt_.pool_size,
									   std::chrono::seconds(opt_.breaker_max_cooldown_sec));
		metrics_.webhook_limit(d.webhook, d.webhook_from_env, slot->limit.settled());
		metrics_.webhook_circuit(d.webhook, d.webhook_from_env, false);
	}
	last_route_ = slot.get();
	return *last_route_;
}

/* update_ready puts r in ready_ (or takes it out) after its queue, in_flight or limit changed */
void
Sidecar::update_ready(Route &r)
{
	bool ready = !r.queue.empty() && r.in_flight < r.limit.limit() && r.breaker.may_start(Clock::now());
	auto key = ready ? std::make_tuple(r.in_flight, r.queue.front().seq, &r) : std::make_tuple(0u, uint64_t(0), &r);
	if (r.ready && (!ready || key != r.ready_key))
		ready_.erase(r.ready_key);
	if (ready && (!r.ready || key != r.ready_key))
		ready_.insert(key);
	r.ready = ready;
	r.ready_key = key;
}

/*
 * Sidecar::attempt_ended frees the attempt's place in its route. sample: the attempt ran to an
 * outcome of its own, so its latency tells the limit something (not when it was abandoned).
 */
void
Sidecar::attempt_ended(Route &r, Attempt &a, bool sample)
{
	r.in_flight--;
	uint32_t before = r.limit.settled();
	bool ok = a.outcome().kind == proto::OutcomeKind::Delivered;
	if (sample && a.http_sent() && r.limit.finished(a.http_seconds(), ok)) {
		metrics_.webhook_limit(r.webhook, r.from_env, r.limit.settled());
		LogLine(LogLevel::Info, "webhook concurrency limit changed")
			.str("webhook", r.webhook)
			.boolean("webhook_from_env", r.from_env)
			.num("limit", r.limit.settled())
			.num("previous", before)
			.num("latency_us", int64_t(r.limit.last_latency() * 1e6))
			.emit();
	}
	update_ready(r);
}

/*
 * forget_idle_routes drops the routes of webhooks with nothing queued or in flight for 10 minutes.
 * It runs once a second and notes when it first finds a route idle; a delivery clears the note.
 */
void
Sidecar::forget_idle_routes(Clock::time_point now)
{
	for (auto it = routes_.begin(); it != routes_.end();) {
		Route &r = *it->second;
		bool idle = r.queue.empty() && r.in_flight == 0;
		if (idle && r.idle_since == Clock::time_point())
			r.idle_since = now;
		if (idle && now - r.idle_since > kRouteIdle) {
			if (last_route_ == &r)
				last_route_ = nullptr;
			metrics_.forget_webhook(r.webhook, r.from_env);
			it = routes_.erase(it);
		} else {
			++it;
		}
	}
}

/*
 * Sidecar::flush_credits sends the credits earned since the last turn as one Credit frame.
 */
void
Sidecar::flush_credits()
{
	for (auto &entry : conns_) {
		Connection &c = *entry.second;
		if (!c.ready || c.goodbye_sent || c.pending_credits == 0)
			continue;
		send(c, proto::Credit{c.pending_credits});
		c.credits += c.pending_credits;
		c.pending_credits = 0;
	}
}

/*
 * Sidecar::drain_curl reports every finished transfer.
 */
void
Sidecar::drain_curl()
{
	int left = 0;
	while (CURLMsg *msg = curl_multi_info_read(multi_.get(), &left)) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		char *priv = nullptr;
		CURL_CHECK(curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv));
		auto it = attempts_.find(reinterpret_cast<Attempt *>(priv));
		if (it == attempts_.end())
			continue;
		CURLcode result = msg->data.result; /* read before finish(): msg is invalid after remove */
		std::unique_ptr<Attempt> a = std::move(it->second.attempt);
		Route &r = *it->second.route;
		bool probe = it->second.probe;
		attempts_.erase(it);
		a->finish(result);
		attempt_ended(r, *a, true);
		report(*a);
		Breaker::Result verdict = a->outcome().http_status > 0       ? Breaker::Result::Answered
								  : connection_level_failure(result) ? Breaker::Result::ConnectionFailure
																	 : Breaker::Result::Other;
		breaker_result(r, *a, verdict, probe);
	}
}

void
Sidecar::report(Attempt &a)
{
	report_outcome(a.conn_id(), a.deliver(), a.outcome(), &a);
}

/*
 * Sidecar::report_outcome logs the attempt, counts it in the metrics and sends its Outcome,
 * earning the connection a credit. The log shows the webhook as stored, never the resolved URL
 * or header values; the error text was redacted by the attempt. a is null for a delivery that
 * never became an attempt (refused during shutdown).
 */
void
Sidecar::report_outcome(uint64_t conn_id, const proto::Deliver &d, proto::Outcome &o, const Attempt *a)
{
	auto it = conns_.find(conn_id);
	LogLine line(o.kind == proto::OutcomeKind::Delivered ? LogLevel::Info : LogLevel::Warn, "attempt");
	line.str("event_id", d.event_id)
		.str("trigger", d.trigger_name)
		.str("webhook", d.webhook)
		.boolean("webhook_from_env", d.webhook_from_env)
		.num("attempt", d.attempt)
		.str("kind", proto::outcome_kind_name(o.kind))
		.num("status", o.http_status)
		.num("duration_ms", o.duration_ms);
	if (o.retry_after_sec >= 0)
		line.num("retry_after_sec", o.retry_after_sec);
	line.str("error", o.error);
	if (it != conns_.end())
		line.str("database", it->second->database);
	else
		line.boolean("outcome_dropped", true);
	bool write = true;
	if (o.kind != proto::OutcomeKind::Delivered && log_enabled(LogLevel::Warn)) {
		/* a failing webhook fails every attempt alike: the first line of a kind per interval is
		   written, the rest are counted (flush_log_summaries) */
		std::string db = it != conns_.end() ? it->second->database : std::string();
		std::string status = std::to_string(o.http_status);
		/* the error's numbers (the milliseconds of a refused connect) do not make it another kind */
		std::string key = repeat_key(
			{db, d.trigger_name, d.webhook, status, proto::outcome_kind_name(o.kind), without_numbers(o.error)});
		write = repeated_lines_.admit(key,
									  {{"database", db},
									   {"trigger", d.trigger_name},
									   {"webhook", d.webhook},
									   {"kind", proto::outcome_kind_name(o.kind)},
									   {"status", status},
									   {"error", o.error}},
									  Clock::now());
	}
	if (write)
		line.emit();

	EventMetrics::Finished f;
	f.kind = o.kind;
	f.reported = it != conns_.end();
	f.retry_after_sec = o.retry_after_sec;
	if (a && a->http_sent()) {
		f.http_sent = true;
		f.http_seconds = a->http_seconds();
		f.request_bytes = d.body.size();
		f.response_bytes = a->response_bytes();
	}
	metrics_.attempt_finished(it != conns_.end() ? it->second->database : std::string(), d, f, unix_now_ms());
	if (it == conns_.end())
		return;
	Connection &c = *it->second;
	fit_outcome(o, c.peer_max_frame);
	send(c, o);
	if (!c.goodbye_sent)
		c.pending_credits++;
}

size_t
Sidecar::connected_workers() const
{
	size_t n = 0;
	for (const auto &entry : conns_)
		n += entry.second->ready ? 1 : 0;
	return n;
}

/*
 * Sidecar::handle_http answers the metrics endpoint. /healthz is 200 only while at least one
 * worker has completed the handshake, and not during shutdown: an orchestrator should route
 * neither work nor alerts to a sidecar that has nobody to deliver for.
 */
HttpResponse
Sidecar::handle_http(const HttpRequest &req)
{
	HttpResponse r;
	if (req.method != "GET" && req.method != "HEAD") {
		r.status = 405;
		r.body = "method not allowed\n";
		r.headers.emplace_back("Allow", "GET, HEAD");
		return r;
	}
	if (req.path == "/metrics") {
		r.content_type = "text/plain; version=0.0.4; charset=utf-8";
		r.body = metrics_.render(attempts_.size(), connected_workers(), queued_);
	} else if (req.path == "/healthz") {
		if (shutting_down_) {
			r.status = 503;
			r.body = "shutting down\n";
		} else if (connected_workers() == 0) {
			r.status = 503;
			r.body = "not connected to any worker\n";
		} else {
			r.body = "ok\n";
		}
	} else {
		r.status = 404;
		r.body = "not found; try /metrics or /healthz\n";
	}
	return r;
}

/*
 * Sidecar::cancel_deliveries: the worker took these events back (their outcome was overdue) and
 * may hand them to another sidecar. Each still queued here is dropped, each in flight is aborted,
 * neither is reported, and each gives its credit back (as its Outcome would have): an event must
 * not be in flight twice, and the worker ignores an outcome for it now. An event already reported
 * is not here any more: nothing to do, its Outcome earned its credit.
 */
void
Sidecar::cancel_deliveries(Connection &c, const proto::Cancel &cancel)
{
	std::unordered_set<std::string> ids(cancel.event_ids.begin(), cancel.event_ids.end());
	uint64_t conn_id = c.id;
	auto cancelled = [&](const proto::Deliver &d) { return ids.count(d.event_id) > 0; };
	size_t dropped = 0;
	for (auto &entry : routes_) {
		Route &r = *entry.second;
		size_t before = r.queue.size();
		r.queue.erase(std::remove_if(r.queue.begin(), r.queue.end(),
									 [&](const Queued &q) { return q.conn_id == conn_id && cancelled(q.deliver); }),
					  r.queue.end());
		if (r.queue.size() != before) {
			dropped += before - r.queue.size();
			update_ready(r);
		}
	}
	queued_ -= dropped;
	size_t aborted = 0;
	for (auto a = attempts_.begin(); a != attempts_.end();) {
		Attempt &attempt = *a->second.attempt;
		if (attempt.conn_id() == conn_id && cancelled(attempt.deliver())) {
			attempt.abandon("cancelled by the worker");
			attempt_ended(*a->second.route, attempt, false);
			a = attempts_.erase(a);
			aborted++;
		} else {
			++a;
		}
	}
	if (!c.goodbye_sent)
		c.pending_credits += uint32_t(dropped + aborted);
	LogLine(LogLevel::Warn, "deliveries cancelled by the worker (their outcome was overdue)")
		.str("database", c.database)
		.num("cancelled", int64_t(ids.size()))
		.num("queued_dropped", int64_t(dropped))
		.num("in_flight_aborted", int64_t(aborted))
		.emit();
}

} // namespace hasura_events::sidecar
