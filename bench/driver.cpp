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
//       polls until no event is pending (not delivered, not errored, not archived). While it
//       polls, samples VmRSS and RssAnon of each PID. Prints
//       "seconds S" and per PID "pid P hwm_kb H peak_rss_kb R peak_anon_kb A".
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
	const char *q =
		"SELECT EXISTS (SELECT 1 FROM hdb_catalog.event_log WHERE NOT delivered AND NOT error AND NOT archived)";
	double s = 0;
	for (;;) {
		for (Mem &m : mems)
			m.sample();
		PGresult *r = PQexec(c, q);
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			fprintf(stderr, "driver: poll: %s", PQerrorMessage(c));
			return 1;
		}
		bool pending = PQgetvalue(r, 0, 0)[0] == 't';
		PQclear(r);
		s = (mono_ns() - t0) / 1e9;
		if (!pending)
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
