/*
 * tests/unit/sidecar_breaker_test.cpp
 *
 * The per-webhook circuit breaker (sidecar/breaker.hpp) and the limiter of repeated log lines
 * (sidecar/log_limit.hpp).
 */
#include "breaker.hpp"
#include "log_limit.hpp"

#include <gtest/gtest.h>

using namespace hasura_events::sidecar;
using std::chrono::milliseconds;
using Result = Breaker::Result;
using Change = Breaker::Change;

namespace {

Breaker::Clock::time_point
at(int64_t ms)
{
	return Breaker::Clock::time_point() + milliseconds(ms);
}

/* opens b at time t with kThreshold connection failures in a row */
void
open_it(Breaker &b, int64_t t)
{
	for (uint32_t i = 0; i + 1 < Breaker::kThreshold; i++)
		ASSERT_EQ(b.finished(Result::ConnectionFailure, false, at(t)), Change::None);
	ASSERT_EQ(b.finished(Result::ConnectionFailure, false, at(t)), Change::Opened);
}

} // namespace

TEST(Breaker, ConnectionFailuresClassified)
{
	EXPECT_TRUE(connection_level_failure(CURLE_COULDNT_CONNECT));
	EXPECT_TRUE(connection_level_failure(CURLE_COULDNT_RESOLVE_HOST));
	EXPECT_TRUE(connection_level_failure(CURLE_OPERATION_TIMEDOUT));
	EXPECT_TRUE(connection_level_failure(CURLE_SSL_CONNECT_ERROR));
	EXPECT_TRUE(connection_level_failure(CURLE_PEER_FAILED_VERIFICATION));
	EXPECT_TRUE(connection_level_failure(CURLE_SEND_ERROR));
	EXPECT_TRUE(connection_level_failure(CURLE_RECV_ERROR));
	EXPECT_FALSE(connection_level_failure(CURLE_OK));
	EXPECT_FALSE(connection_level_failure(CURLE_URL_MALFORMAT));
	EXPECT_FALSE(connection_level_failure(CURLE_WRITE_ERROR));
	EXPECT_FALSE(connection_level_failure(CURLE_ABORTED_BY_CALLBACK));
}

TEST(Breaker, OpensAfterConsecutiveConnectionFailuresOnly)
{
	Breaker b(milliseconds(60000));
	EXPECT_TRUE(b.may_start(at(0)));
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i + 1 < Breaker::kThreshold; i++)
			EXPECT_EQ(b.finished(Result::ConnectionFailure, false, at(0)), Change::None);
		/* an answer of any status resets the count: a 500 is an attempt, not a dead webhook */
		EXPECT_EQ(b.finished(Result::Answered, false, at(0)), Change::None);
		EXPECT_EQ(b.consecutive_failures(), 0u);
	}
	/* failures with no network verdict neither count nor reset */
	for (uint32_t i = 0; i + 1 < Breaker::kThreshold; i++) {
		EXPECT_EQ(b.finished(Result::ConnectionFailure, false, at(0)), Change::None);
		EXPECT_EQ(b.finished(Result::Other, false, at(0)), Change::None);
	}
	EXPECT_FALSE(b.is_open());
	EXPECT_EQ(b.finished(Result::ConnectionFailure, false, at(10)), Change::Opened);
	EXPECT_TRUE(b.is_open());
	EXPECT_TRUE(b.holding(at(10)));
	EXPECT_FALSE(b.may_start(at(10)));
	EXPECT_EQ(b.cooldown(), milliseconds(1000));
	EXPECT_EQ(b.remaining_ms(at(10)), 1001u);
	EXPECT_EQ(b.remaining_ms(at(1009)), 2u);
	EXPECT_FALSE(b.holding(at(1010)));
	EXPECT_EQ(b.remaining_ms(at(1010)), 0u);
}

TEST(Breaker, OneProbeAtATimeThenCloseOrReopenDoubled)
{
	Breaker b(milliseconds(5000));
	open_it(b, 0);
	/* attempts that were in flight when it opened end with no change */
	EXPECT_EQ(b.finished(Result::ConnectionFailure, false, at(5)), Change::None);
	EXPECT_FALSE(b.started(at(500))) << "no probe during the cool-down";
	ASSERT_TRUE(b.may_start(at(1000)));
	EXPECT_TRUE(b.started(at(1000))) << "the first attempt after the cool-down is the probe";
	EXPECT_FALSE(b.may_start(at(1000))) << "alone in flight";
	EXPECT_FALSE(b.holding(at(1000))) << "deliveries wait for the probe's verdict";
	EXPECT_EQ(b.finished(Result::ConnectionFailure, true, at(1100)), Change::Opened);
	EXPECT_EQ(b.cooldown(), milliseconds(2000));
	EXPECT_TRUE(b.holding(at(3099)));
	EXPECT_TRUE(b.started(at(3100)));
	EXPECT_EQ(b.finished(Result::ConnectionFailure, true, at(3100)), Change::Opened);
	EXPECT_EQ(b.cooldown(), milliseconds(4000));
	EXPECT_TRUE(b.started(at(7100)));
	EXPECT_EQ(b.finished(Result::ConnectionFailure, true, at(7100)), Change::Opened);
	EXPECT_EQ(b.cooldown(), milliseconds(5000)) << "capped";
	/* a probe with no verdict (abandoned) lets another one go */
	EXPECT_TRUE(b.started(at(12100)));
	EXPECT_EQ(b.finished(Result::Other, true, at(12100)), Change::None);
	EXPECT_TRUE(b.may_start(at(12100)));
	EXPECT_TRUE(b.started(at(12100)));
	/* an answer, even a 500, closes it; the next opening starts at 1 s again */
	EXPECT_EQ(b.finished(Result::Answered, true, at(12200)), Change::Closed);
	EXPECT_FALSE(b.is_open());
	EXPECT_TRUE(b.may_start(at(12200)));
	EXPECT_FALSE(b.started(at(12200))) << "closed: no probe";
	open_it(b, 20000);
	EXPECT_EQ(b.cooldown(), milliseconds(1000));
}

TEST(Breaker, AnswerOfAnAttemptStartedBeforeItOpenedClosesIt)
{
	Breaker b(milliseconds(60000));
	open_it(b, 0);
	EXPECT_EQ(b.finished(Result::Answered, false, at(10)), Change::Closed);
	EXPECT_TRUE(b.may_start(at(10)));
}

TEST(Breaker, MaxCooldownBelowTheFirst)
{
	Breaker b(milliseconds(300));
	open_it(b, 0);
	EXPECT_EQ(b.cooldown(), milliseconds(300));
}

TEST(RepeatLimiter, FirstLineWrittenRestCountedOnceAnInterval)
{
	RepeatLimiter lim(milliseconds(10000));
	RepeatLimiter::Fields fa = {{"trigger", "a"}}, fb = {{"trigger", "b"}};
	EXPECT_TRUE(lim.admit("a", fa, at(0)));
	EXPECT_TRUE(lim.admit("b", fb, at(1)));
	for (int i = 0; i < 1000; i++)
		EXPECT_FALSE(lim.admit("a", fa, at(2 + i)));
	EXPECT_FALSE(lim.admit("b", fb, at(5)));
	EXPECT_TRUE(lim.take_due(at(9999)).empty());
	auto due = lim.take_due(at(10001));
	ASSERT_EQ(due.size(), 2u);
	EXPECT_EQ(due[0].fields, fa);
	EXPECT_EQ(due[0].suppressed, 1000u);
	EXPECT_EQ(due[1].fields, fb);
	EXPECT_EQ(due[1].suppressed, 1u);
	EXPECT_EQ(lim.tracked(), 0u);
	/* after the interval, the next line is written again and starts a new interval */
	EXPECT_TRUE(lim.admit("a", fa, at(10002)));
	EXPECT_FALSE(lim.admit("a", fa, at(10003)));
	EXPECT_TRUE(lim.take_due(at(10004)).empty());
}

TEST(RepeatLimiter, LineAfterTheIntervalBeforeTheSummaryKeepsTheCount)
{
	RepeatLimiter lim(milliseconds(1000));
	EXPECT_TRUE(lim.admit("k", {}, at(0)));
	EXPECT_FALSE(lim.admit("k", {}, at(1)));
	EXPECT_FALSE(lim.admit("k", {}, at(2)));
	/* the interval is over, take_due not called yet */
	EXPECT_TRUE(lim.admit("k", {}, at(1500)));
	EXPECT_FALSE(lim.admit("k", {}, at(1501)));
	auto due = lim.take_due(at(1502));
	ASSERT_EQ(due.size(), 1u);
	EXPECT_EQ(due[0].suppressed, 2u);
	due = lim.take_due(at(2500));
	ASSERT_EQ(due.size(), 1u);
	EXPECT_EQ(due[0].suppressed, 1u);
}

TEST(RepeatLimiter, KeysBeyondTheBoundAreAllWritten)
{
	RepeatLimiter lim(milliseconds(1000), 2);
	EXPECT_TRUE(lim.admit("a", {}, at(0)));
	EXPECT_TRUE(lim.admit("b", {}, at(0)));
	EXPECT_TRUE(lim.admit("c", {}, at(0)));
	EXPECT_TRUE(lim.admit("c", {}, at(0)));
	EXPECT_FALSE(lim.admit("a", {}, at(0)));
	EXPECT_EQ(lim.tracked(), 2u);
}

TEST(RepeatLimiter, KeysOfPartsAndErrorsWithoutNumbers)
{
	EXPECT_NE(repeat_key({"ab", "c"}), repeat_key({"a", "bc"}));
	EXPECT_EQ(repeat_key({"t1", "x"}), repeat_key({"t1", "x"}));
	EXPECT_NE(repeat_key({"t1"}), repeat_key({"t2"})) << "only the error loses its numbers";
	EXPECT_EQ(without_numbers("Failed to connect to 127.0.0.1 port 4711 after 0 ms"),
			  "Failed to connect to #.#.#.# port # after # ms");
	EXPECT_EQ(without_numbers("after 12 ms"), without_numbers("after 3 ms"));
	EXPECT_EQ(without_numbers(""), "");
	EXPECT_EQ(without_numbers("9"), "#");
}
