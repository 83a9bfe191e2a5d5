/*
 * sidecar/sidecar.hpp
 *
 * The sidecar's event loop: connections to the workers' Unix sockets, the local queue of
 * Deliver frames, the HTTP attempts on one curl multi handle, and shutdown.
 *
 * Wording: a "connection" is one Unix socket connection to one worker (one database); a
 * "credit" lets the worker send one Deliver on that connection.
 */
#pragma once

#include "attempt.hpp"
#include "breaker.hpp"
#include "concurrency.hpp"
#include "curl_util.hpp"
#include "discovery.hpp"
#include "event_metrics.hpp"
#include "http_server.hpp"
#include "log_limit.hpp"
#include "options.hpp"
#include "protocol.hpp"

#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

namespace hasura_events::sidecar {

class Sidecar {
public:
	explicit Sidecar(Options options);
	~Sidecar();

	/* run loops until shutdown is complete; returns the process exit code */
	int run();

private:
	struct Connection {
		uint64_t id = 0;
		std::string path;
		Fd fd;
		bool ready = false; /* Welcome received */
		Clock::time_point handshake_deadline;
		proto::FrameReader reader;
		std::string out;
		size_t out_off = 0;
		std::string database;
		uint32_t peer_max_frame = proto::kDefaultMaxFrame;
		uint64_t credits = 0;         /* granted and not yet used by a Deliver */
		uint32_t pending_credits = 0; /* earned by outcomes, not yet sent */
		bool goodbye_sent = false;
		/* deliveries given back and trigger holds, sent as one Release a turn (flush_releases) */
		std::vector<std::string> release_ids;
		std::map<std::string, uint32_t> release_holds;
	};
	struct PathState {
		Backoff backoff;
		Clock::time_point next_try;
		uint64_t conn_id = 0; /* 0: not connected */
		bool failure_logged = false;
	};
	struct Queued {
		uint64_t conn_id;
		uint64_t seq; /* arrival order across every webhook */
		proto::Deliver deliver;
	};
	/* Route: one webhook as stored (a URL, or the name of the variable that holds it), its queue
	 * of deliveries and its adaptive concurrency limit */
	struct Route {
		Route(std::string hook, bool env, uint32_t floor, uint32_t ceiling, std::chrono::milliseconds max_cooldown)
			: webhook(std::move(hook)), from_env(env), limit(floor, ceiling), breaker(max_cooldown)
		{
		}
		std::string webhook;
		bool from_env;
		std::deque<Queued> queue;
		uint32_t in_flight = 0;
		ConcurrencyLimit limit;
		Breaker breaker;
		bool ready = false; /* in ready_, under ready_key */
		std::tuple<uint32_t, uint64_t, Route *> ready_key;
		Clock::time_point idle_since; /* nothing queued or in flight since (forget_idle_routes) */
	};
	struct Running {
		std::unique_ptr<Attempt> attempt;
		Route *route;
		bool probe = false; /* the half-open breaker's probe */
	};

	void rescan();
	void connect_due(Clock::time_point now);
	void connect_path(const std::string &path, PathState &ps);
	void close_connection(uint64_t conn_id, const std::string &reason, bool failure);
	void read_connection(Connection &c);
	bool handle_message(Connection &c, proto::Message &m);
	void write_connection(Connection &c);
	void send(Connection &c, const proto::Message &m);
	void dispatch();
	void enqueue(uint64_t conn_id, proto::Deliver d);
	void cancel_deliveries(Connection &c, const proto::Cancel &cancel);
	Route &route_for(const proto::Deliver &d);
	void update_ready(Route &r);
	void attempt_ended(Route &r, Attempt &a, bool sample);
	void forget_idle_routes(Clock::time_point now);
	void flush_credits();
	void drain_curl();
	void report(Attempt &a);
	void report_outcome(uint64_t conn_id, const proto::Deliver &d, proto::Outcome &o, const Attempt *a = nullptr);
	HttpResponse handle_http(const HttpRequest &req);
	size_t connected_workers() const;
	void begin_shutdown();
	void abandon_all();
	bool handle_signals();
	/* sidecar_release.cpp: giving deliveries back (Release), circuit breakers, repeated log lines */
	void release(uint64_t conn_id, const proto::Deliver &d, uint32_t hold_ms);
	void release_queue(Route &r, uint32_t hold_ms);
	void flush_releases();
	void breaker_result(Route &r, Attempt &a, Breaker::Result result, bool probe);
	void flush_log_summaries(Clock::time_point now);

	Options opt_;
	std::string user_agent_;
	CurlMulti multi_;
	EasyPool easy_pool_{1024}; /* after multi_: destroyed first, its handles out of the multi */
	UrlCache url_cache_{256};  /* after easy_pool_: destroyed first; attempts hold their URLs */
	Fd signal_fd_;
	std::map<std::string, PathState> paths_;
	std::map<uint64_t, std::unique_ptr<Connection>> conns_;
	uint64_t next_conn_id_ = 1;
	/* The queue: deliveries wait in their webhook's route. ready_ holds the routes that have one
	 * waiting and room under their limit, fewest in flight first, then oldest delivery first:
	 * the pool is shared fairly between webhooks, and one that is slow or saturated does not hold
	 * up the others. */
	std::map<std::pair<bool, std::string>, std::unique_ptr<Route>> routes_;
	Route *last_route_ = nullptr; /* route_for's cache: consecutive deliveries mostly share one */
	std::set<std::tuple<uint32_t, uint64_t, Route *>> ready_;
	size_t queued_ = 0;
	uint64_t next_seq_ = 0;
	std::unordered_map<Attempt *, Running> attempts_;
	bool shutting_down_ = false;
	Clock::time_point grace_deadline_;
	Clock::time_point final_deadline_;
	Clock::time_point next_scan_;
	EventMetrics metrics_;
	RepeatLimiter repeated_lines_{std::chrono::seconds(10)};
	std::unique_ptr<HttpServer> http_; /* null when --metrics-address off */
};

} // namespace hasura_events::sidecar
