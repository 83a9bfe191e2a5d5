/*
 * tests/unit/sidecar_concurrency_test.cpp
 *
 * The adaptive per-webhook concurrency limit (sidecar/concurrency.cpp), driven by a simulated
 * webhook: a closed loop that keeps `limit` attempts in flight while a backlog waits, against a
 * server of W workers with a service time per request (a webhook that saturates), or a latency
 * that does not depend on the load (a webhook that scales), with or without jitter. Time is
 * simulated; every run is deterministic (fixed seeds).
 */
#include "concurrency.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <queue>
#include <random>
#include <vector>

using namespace hasura_events::sidecar;

namespace {

/* Server: the latency model of the simulated webhook, asked once per request at its start. */
struct Server {
	virtual ~Server() = default;
	virtual double start(double now, std::mt19937 &rng) = 0; /* returns the finish time */
};

/* W workers, each request takes `service` seconds, FIFO: saturates beyond W in flight */
struct Workers : Server {
	std::priority_queue<double, std::vector<double>, std::greater<double>> free_at;
	double service;
	Workers(int w, double service_sec) : service(service_sec)
	{
		for (int i = 0; i < w; i++)
			free_at.push(0);
	}
	double
	start(double now, std::mt19937 &) override
	{
		double begin = std::max(now, free_at.top());
		free_at.pop();
		free_at.push(begin + service);
		return begin + service;
	}
};

/* a latency drawn from [lo, hi] whatever the load: scales without limit */
struct Uniform : Server {
	double lo, hi;
	Uniform(double lo_sec, double hi_sec) : lo(lo_sec), hi(hi_sec) {}
	double
	start(double now, std::mt19937 &rng) override
	{
		return now + std::uniform_real_distribution<double>(lo, hi)(rng);
	}
};

struct Sim {
	ConcurrencyLimit limit;
	Server *server;
	std::mt19937 rng{42};
	double now = 0;
	uint64_t completed = 0;
	uint64_t changes = 0;
	double limit_sum = 0; /* over completions, for the average limit */
	bool ok = true;       /* the outcome of every attempt */
	struct Running {
		double finish, start;
		bool
		operator>(const Running &o) const
		{
			return finish > o.finish;
		}
	};
	std::priority_queue<Running, std::vector<Running>, std::greater<Running>> running;

	Sim(uint32_t floor, uint32_t ceiling, Server *s) : limit(floor, ceiling), server(s) {}

	/* run: `n` completions with a backlog that never runs dry; returns the throughput (1/s) */
	double
	run(uint64_t n)
	{
		double t0 = now;
		limit_sum = 0;
		for (uint64_t i = 0; i < n; i++) {
			while (running.size() < limit.limit()) {
				running.push(Running{server->start(now, rng), now});
				limit.started(running.size() >= limit.limit());
			}
			Running r = running.top();
			running.pop();
			now = r.finish;
			changes += limit.finished(now - r.start, ok) ? 1 : 0;
			limit_sum += limit.limit();
			completed++;
		}
		return double(n) / (now - t0);
	}
	double
	average_limit(uint64_t n) const
	{
		return limit_sum / double(n);
	}
};

} // namespace

TEST(SidecarConcurrencyLimit, StartsAtTheFloor)
{
	ConcurrencyLimit l(32, 100);
	EXPECT_EQ(l.limit(), 32u);
	ConcurrencyLimit clamped(500, 100);
	EXPECT_EQ(clamped.limit(), 100u);
	ConcurrencyLimit zero(0, 0);
	EXPECT_EQ(zero.limit(), 1u);
}

TEST(SidecarConcurrencyLimit, AWebhookThatScalesGetsTheCeiling)
{
	Uniform flat(0.050, 0.050);
	Sim sim(32, 100, &flat);
	sim.run(3000);
	EXPECT_EQ(sim.limit.limit(), 100u);
	/* and keeps it: probes down find the throughput falls with the limit */
	double rate = sim.run(20000);
	EXPECT_GE(sim.average_limit(20000), 95.0);
	EXPECT_GE(rate, 0.95 * 100 / 0.050);
}

TEST(SidecarConcurrencyLimit, JitterDoesNotReadAsSaturation)
{
	Uniform jittery(0.010, 0.100); /* mean 55 ms, the mean of a window moves at random */
	Sim sim(32, 100, &jittery);
	sim.run(5000);
	sim.run(20000);
	EXPECT_GE(sim.average_limit(20000), 85.0);
}

TEST(SidecarConcurrencyLimit, ASaturatedWebhookIsNotGivenMoreThanItServes)
{
	Workers sixty(60, 0.050); /* serves 1,200 /s with 60 in flight; more in flight only wait */
	Sim sim(8, 400, &sixty);
	sim.run(5000);
	double rate = sim.run(40000);
	EXPECT_LE(sim.average_limit(40000), 100.0);
	EXPECT_GE(sim.average_limit(40000), 48.0);
	EXPECT_GE(rate, 0.9 * 1200);
}

TEST(SidecarConcurrencyLimit, AFastLocalWebhookStaysNearTheFloor)
{
	Workers local(4, 0.0001); /* a loopback receiver: 40,000 /s, saturated far below the floor */
	Sim sim(32, 100, &local);
	sim.run(5000);
	sim.run(100000);
	EXPECT_LE(sim.average_limit(100000), 36.0);
	EXPECT_LE(sim.limit.limit(), 40u);
}

TEST(SidecarConcurrencyLimit, FollowsAWebhookThatSlowsDownAndRecovers)
{
	Workers big(400, 0.050);
	Workers small(20, 0.050);
	Sim sim(8, 100, &big);
	sim.run(5000);
	EXPECT_EQ(sim.limit.limit(), 100u);
	sim.server = &small; /* its capacity falls to 400 /s */
	sim.run(30000);
	EXPECT_LE(sim.limit.limit(), 32u);
	EXPECT_LE(sim.average_limit(30000), 50.0);
	Workers big_again(400, 0.050);
	big_again.free_at = {};
	for (int i = 0; i < 400; i++)
		big_again.free_at.push(sim.now);
	sim.server = &big_again;
	sim.run(30000);
	EXPECT_EQ(sim.limit.limit(), 100u);
}

TEST(SidecarConcurrencyLimit, WindowsWithoutWaitingDeliveriesChangeNothing)
{
	ConcurrencyLimit l(32, 100);
	for (int i = 0; i < 10000; i++) {
		l.started(false);
		EXPECT_FALSE(l.finished(0.050, true));
	}
	EXPECT_EQ(l.limit(), 32u);
}

TEST(SidecarConcurrencyLimit, FloorEqualToCeilingIsAFixedLimit)
{
	Uniform flat(0.050, 0.050);
	Sim sim(100, 100, &flat);
	sim.run(5000);
	EXPECT_EQ(sim.limit.limit(), 100u);
	EXPECT_EQ(sim.changes, 0u);
}

TEST(SidecarConcurrencyLimit, AFailingWebhookIsNotGivenMore)
{
	/* every attempt times out after 10 s: the latency is the same at any load, which alone would
	 * read as a webhook that scales */
	Uniform timeouts(10.0, 10.0);
	Sim sim(32, 100, &timeouts);
	sim.ok = false;
	sim.run(5000);
	EXPECT_EQ(sim.limit.limit(), 32u);
	EXPECT_EQ(sim.changes, 0u);
	/* one that scaled and then fails fast (a load-shedding 503) is not given more either */
	Uniform flat(0.050, 0.050);
	Sim grown(8, 100, &flat);
	grown.run(1500);
	uint32_t reached = grown.limit.settled();
	EXPECT_LT(reached, 100u);
	Uniform shedding(0.001, 0.001);
	grown.server = &shedding;
	grown.ok = false;
	grown.run(20000);
	EXPECT_LE(grown.limit.settled(), reached);
}
