// bench/driver.cpp: libpq helpers of the benchmark that need precise timing.
//
//   driver paced CONNINFO RATE SECONDS CONNECTIONS FIRST_ID OUT
//       Inserts rows id = FIRST_ID, FIRST_ID+1, ... into bench_lat at a fixed offered RATE
//       (row i is due at t0 + i/RATE), each INSERT its own transaction (autocommit), spread over
//       CONNECTIONS connections (one thread each). Right after the INSERT returns (the commit is
//       done and acknowledged), records CLOCK_REALTIME in microseconds. Writes "id commit_us" per
//       line to OUT; prints "offered R achieved A rows N late L" (late: sent >1 ms after due).
//
//   driver drain CONNINFO TIMEOUT_S POLL_MS [PID...]
//       Unpauses delivery (ALTER SYSTEM SET hasura_events.paused = off; pg_reload_conf()), then
//       polls until no event is pending (not delivered, not errored, not archived; each poll
//       starts at the first pending event the previous one found, and the last one starts over
//       from the beginning of the claim index). While it polls, samples VmRSS and RssAnon of
//       each PID. Prints "seconds S" and per PID "pid P hwm_kb H peak_rss_kb R peak_anon_kb A".
//
//   driver watch SECONDS POLL_MS PID...
//       Only the memory sampling, for SECONDS or until SIGINT/SIGTERM; then prints as drain does.
#include <libpq-fe.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

namespace {

long long
realtime_us()
{
	timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

long long
mono_ns()
{
	timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

PGconn *
connect_or_die(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "driver: connect: %s", PQerrorMessage(c));
		exit(1);
	}
	return c;
}

void
exec_or_die(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "driver: %s: %s", sql, PQerrorMessage(c));
		exit(1);
	}
	PQclear(r);
}

struct Mem {
	int pid;
	long hwm = 0, peak_rss = 0, peak_anon = 0;
	void
	sample()
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/status", pid);
		FILE *f = fopen(path, "r");
		if (!f)
			return;
		char line[256];
		while (fgets(line, sizeof(line), f)) {
			long v;
			if (sscanf(line, "VmHWM: %ld", &v) == 1)
				hwm = v;
			else if (sscanf(line, "VmRSS: %ld", &v) == 1 && v > peak_rss)
				peak_rss = v;
			else if (sscanf(line, "RssAnon: %ld", &v) == 1 && v > peak_anon)
				peak_anon = v;
		}
		fclose(f);
	}
};

int
paced(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: driver paced CONNINFO RATE SECONDS CONNECTIONS FIRST_ID OUT\n");
		return 2;
	}
	const char *conninfo = argv[2];
	double rate = atof(argv[3]), seconds = atof(argv[4]);
	int nconn = atoi(argv[5]);
	long long first = atoll(argv[6]);
	const char *out = argv[7];
	long long total = (long long)(rate * seconds);
	std::vector<long long> commit_us(total, 0);
	std::atomic<long long> late{0};
	std::vector<PGconn *> conns;
	for (int i = 0; i < nconn; i++) {
		PGconn *c = connect_or_die(conninfo);
		PGresult *r =
			PQprepare(c, "ins", "INSERT INTO bench_lat (id, note) VALUES ($1::bigint, 'latency probe')", 1, nullptr);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "driver: prepare: %s", PQerrorMessage(c));
			return 1;
		}
		PQclear(r);
		conns.push_back(c);
	}
	long long t0 = mono_ns() + 50 * 1000000LL;
	auto worker = [&](int k) {
		PGconn *c = conns[k];
		char idbuf[32];
		for (long long i = k; i < total; i += nconn) {
			long long due = t0 + (long long)(i * 1e9 / rate);
			timespec ts{(time_t)(due / 1000000000LL), (long)(due % 1000000000LL)};
			while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
			}
			if (mono_ns() - due > 1000000)
				late++;
			snprintf(idbuf, sizeof(idbuf), "%lld", first + i);
			const char *params[1] = {idbuf};
			PGresult *r = PQexecPrepared(c, "ins", 1, params, nullptr, nullptr, 0);
			commit_us[i] = realtime_us();
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				fprintf(stderr, "driver: insert: %s", PQerrorMessage(c));
				exit(1);
			}
			PQclear(r);
		}
	};
	std::vector<std::thread> ts;
	for (int k = 0; k < nconn; k++)
		ts.emplace_back(worker, k);
	for (auto &t : ts)
		t.join();
	double elapsed = (mono_ns() - t0) / 1e9;
	FILE *f = fopen(out, "w");
	for (long long i = 0; i < total; i++)
		fprintf(f, "%lld %lld\n", first + i, commit_us[i]);
	fclose(f);
	for (PGconn *c : conns)
		PQfinish(c);
	printf("offered %.0f achieved %.0f rows %lld late %lld\n", rate, total / elapsed, total, late.load());
	return 0;
}

void
print_mem(std::vector<Mem> &mems)
{
	for (Mem &m : mems) {
		m.sample();
		printf("pid %d hwm_kb %ld peak_rss_kb %ld peak_anon_kb %ld\n", m.pid, m.hwm, m.peak_rss, m.peak_anon);
	}
}

// first_pending: the claim-index key (due, created_at, id) of the first event still to deliver,
// from the start (FLOOR null) or at/after FLOOR; zero rows when there is none. Both queries are
// prepared once with generic plans: planning a query over event_log each poll costs more than
// running it.
PGresult *
first_pending(PGconn *c, const std::string *floor)
{
	static PGconn *prepared_on = nullptr; /* the statements belong to one connection */
	if (prepared_on != c) {
		static const char *const kFrom =
			"SELECT COALESCE(e.next_retry_at, '-infinity'::timestamptz)::text AS due, e.created_at::text AS at, e.id "
			"FROM hdb_catalog.event_log e WHERE NOT e.delivered AND NOT e.error AND NOT e.archived ";
		static const char *const kOrder =
			"ORDER BY COALESCE(e.next_retry_at, '-infinity'::timestamptz), e.created_at, e.id LIMIT 1";
		std::string first = std::string(kFrom) + kOrder;
		std::string after = std::string(kFrom) +
							"AND (COALESCE(e.next_retry_at, '-infinity'::timestamptz), e.created_at, e.id) >= "
							"($1::timestamptz, $2::timestamptz, $3 COLLATE \"C\") " +
							kOrder;
		exec_or_die(c, "SET plan_cache_mode = force_generic_plan");
		for (auto [name, sql] : {std::pair{"first", &first}, std::pair{"after", &after}}) {
			PGresult *r = PQprepare(c, name, sql->c_str(), 0, nullptr);
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				fprintf(stderr, "driver: prepare: %s", PQerrorMessage(c));
				exit(1);
			}
			PQclear(r);
		}
		prepared_on = c;
	}
	const char *params[3] = {};
	for (int i = 0; floor && i < 3; i++)
		params[i] = floor[i].c_str();
	PGresult *r =
		PQexecPrepared(c, floor ? "after" : "first", floor ? 3 : 0, floor ? params : nullptr, nullptr, nullptr, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "driver: poll: %s", PQerrorMessage(c));
		exit(1);
	}
	return r;
}

int
drain(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: driver drain CONNINFO TIMEOUT_S POLL_MS [PID...]\n");
		return 2;
	}
	PGconn *c = connect_or_die(argv[2]);
	double timeout = atof(argv[3]);
	int poll_ms = atoi(argv[4]);
	std::vector<Mem> mems;
	for (int i = 5; i < argc; i++)
		mems.push_back(Mem{atoi(argv[i])});
	// the poll must stay cheap: the claim index, never a sequential scan of the log
	exec_or_die(c, "SET enable_seqscan = off");
	exec_or_die(c, "ALTER SYSTEM SET hasura_events.paused = off");
	long long t0 = mono_ns();
	exec_or_die(c, "SELECT pg_reload_conf()");
	double s = 0;
	// The first pending event in the claim index's order, from the start of the index or from the
	// one the previous poll found. Delivered events leave their entries in the claim index until
	// vacuum, so a poll from the start would walk every event delivered so far, and the polls of a
	// drain would cost CPU growing with the square of its size. The drain adds no
	// events and a retry only moves an event later, so nothing pending can appear before the
	// floor; still, "done" is only said after a poll from the start finds nothing.
	std::string floor[3];
	bool have_floor = false;
	for (;;) {
		for (Mem &m : mems)
			m.sample();
		PGresult *r = first_pending(c, have_floor ? floor : nullptr);
		if (have_floor && PQntuples(r) == 0) {
			PQclear(r);
			r = first_pending(c, nullptr);
		}
		have_floor = PQntuples(r) == 1;
		for (int i = 0; have_floor && i < 3; i++)
			floor[i] = PQgetvalue(r, 0, i);
		PQclear(r);
		s = (mono_ns() - t0) / 1e9;
		if (!have_floor)
			break;
		if (s > timeout) {
			printf("timeout\n");
			break;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
	}
	printf("seconds %.3f\n", s);
	print_mem(mems);
	PQfinish(c);
	return 0;
}

volatile sig_atomic_t watch_stop = 0;

int
watch(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: driver watch SECONDS POLL_MS PID...\n");
		return 2;
	}
	double seconds = atof(argv[2]);
	int poll_ms = atoi(argv[3]);
	std::vector<Mem> mems;
	for (int i = 4; i < argc; i++)
		mems.push_back(Mem{atoi(argv[i])});
	signal(SIGINT, [](int) { watch_stop = 1; });
	signal(SIGTERM, [](int) { watch_stop = 1; });
	long long end = mono_ns() + (long long)(seconds * 1e9);
	while (mono_ns() < end && !watch_stop) {
		for (Mem &m : mems)
			m.sample();
		std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
	}
	print_mem(mems);
	return 0;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "paced"))
		return paced(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "drain"))
		return drain(argc, argv);
	if (argc >= 2 && !strcmp(argv[1], "watch"))
		return watch(argc, argv);
	fprintf(stderr, "usage: driver paced|drain|watch ...\n");
	return 2;
}
