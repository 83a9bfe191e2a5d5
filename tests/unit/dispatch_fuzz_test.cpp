/*
 * tests/unit/dispatch_fuzz_test.cpp
 *
 * A seeded random walk over the dispatcher's bookkeeping (extension/core/dispatch.cpp) with
 * several sidecars that misbehave at random: handshakes of any version, credits of any size,
 * outcomes with extreme fields (for events they hold, or not), Releases, Pings, Goodbyes,
 * random bytes, disconnections, silence, overdue outcomes (Cancel); claims with extreme tries and retry settings;
 * records read and committed at random. The suite unit-asan runs it under AddressSanitizer and
 * UndefinedBehaviorSanitizer. Besides not crashing, the walk checks the claims' invariants:
 * an event is never in the hands of two sidecars, claims never exceed max_inflight, and a
 * disconnection gives back exactly the claims that sidecar held without a reported outcome.
 */
#include "dispatch.hpp"
#include "protocol.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <random>
#include <set>

using namespace hasura_events;
namespace proto = hasura_events::proto;

namespace {

constexpr uint32_t kMaxInflight = 24;
constexpr int kEvents = 64;

struct Sidecar {
	int id;
	proto::FrameReader reader;
	std::set<std::string> held; /* Deliver received, no Outcome sent */
	bool hello = false;
};

struct Walk {
	std::mt19937 rng{20240607};
	Dispatch d;
	std::map<int, Sidecar> sidecars;
	std::map<std::string, int> holder; /* event id -> the sidecar holding it */
	std::set<std::string> reported;    /* outcome accepted, not committed: still claimed */
	int next_id = 1;
	int64_t now_ms = 1000;

	std::vector<std::string> ids;
	std::vector<ClaimedEventView> views;
	const char *names[2] = {"X-A", ""};
	const char *values[2] = {"VAR", ""};
	bool from_env[2] = {true, false};

	Walk() : d(config())
	{
		for (int i = 0; i < kEvents; i++)
			ids.push_back("ev" + std::to_string(i));
		static const uint32_t u32s[] = {
			0, 1, 2, 1000, std::numeric_limits<uint32_t>::max() - 1, std::numeric_limits<uint32_t>::max()};
		for (int i = 0; i < kEvents; i++) {
			ClaimedEventView v{};
			v.id = ids[i].c_str();
			v.trigger_name = i % 3 ? "t" : "";
			v.webhook = "http://x/{{P}}";
			v.webhook_from_env = i % 5 == 0;
			v.headers_json = "[]";
			v.nheaders = i % 3;
			if (v.nheaders > 2)
				v.nheaders = 2;
			v.header_names = names;
			v.header_values = values;
			v.header_from_env = from_env;
			v.timeout_sec = u32s[i % 6];
			v.num_retries = u32s[(i / 6) % 6];
			v.interval_sec = u32s[(i / 2) % 6];
			v.tries = u32s[(i / 3) % 6];
			v.body = "{\"id\": \"\xff\"}";
			v.body_len = 12;
			v.created_at_ms = i % 7 == 0 ? std::numeric_limits<int64_t>::min() : int64_t(i) * 1000;
			views.push_back(v);
		}
	}

	static DispatchConfig
	config()
	{
		DispatchConfig c;
		c.max_inflight = kMaxInflight;
		c.max_retry_after_attempts = 3;
		c.outcome_grace_ms = 3000; /* overdue outcomes (Cancel) happen in the walk */
		c.database = "db";
		return c;
	}

	void
	feed(Sidecar &s, const std::string &bytes)
	{
		d.on_bytes(s.id, bytes.data(), bytes.size());
	}

	void
	send(Sidecar &s, const proto::Message &m)
	{
		std::string buf;
		proto::encode(m, buf);
		feed(s, buf);
	}

	/* reads what the dispatcher wrote to s: every Deliver must be for an event nobody holds */
	void
	drain(Sidecar &s)
	{
		std::string &out = d.outbuf(s.id);
		s.reader.feed(out.data(), out.size());
		out.clear();
		for (;;) {
			proto::Message m;
			std::string err;
			auto r = s.reader.next(m, err);
			ASSERT_NE(r, proto::FrameReader::Result::Error) << "the dispatcher wrote a malformed frame: " << err;
			if (r != proto::FrameReader::Result::Ok)
				break;
			if (auto *del = std::get_if<proto::Deliver>(&m)) {
				ASSERT_EQ(reported.count(del->event_id), 0u)
					<< del->event_id << " handed out again before its outcome was committed";
				ASSERT_EQ(holder.count(del->event_id), 0u) << del->event_id << " handed to sidecar " << s.id
														   << " while sidecar " << holder[del->event_id] << " holds it";
				holder[del->event_id] = s.id;
				s.held.insert(del->event_id);
			} else if (auto *cancel = std::get_if<proto::Cancel>(&m)) {
				/* the worker took these back (their outcome is overdue): s holds them no more */
				for (const std::string &e : cancel->event_ids) {
					ASSERT_EQ(s.held.count(e), 1u)
						<< "Cancel of " << e << ", which sidecar " << s.id << " does not hold";
					s.held.erase(e);
					holder.erase(e);
				}
			}
		}
	}

	void
	disconnect(int id)
	{
		Sidecar &s = sidecars.at(id);
		size_t returned = d.remove_connection(id), held = s.held.size();
		for (const std::string &e : s.held)
			holder.erase(e);
		sidecars.erase(id);
		ASSERT_EQ(returned, held) << "claims given back by sidecar " << id;
	}

	proto::Outcome
	random_outcome(const std::string &event_id)
	{
		static const int64_t retry_after[] = {
			-1, 0, 5, std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min(), 86401};
		static const int32_t statuses[] = {200, 299, 500, 503, 0, -1, std::numeric_limits<int32_t>::min(), 999};
		proto::Outcome o;
		o.event_id = event_id;
		o.kind = proto::OutcomeKind(rng() % 3);
		o.http_status = statuses[rng() % 8];
		o.retry_after_sec = retry_after[rng() % 6];
		o.response_body = rng() % 2 ? std::string("\0\xff\xc3(", 4) : std::string(rng() % 3000, 'r');
		if (rng() % 2)
			o.response_headers = {{"Content-Type", "text/plain"}, {"", std::string("\0", 1)}};
		o.error = rng() % 2 ? "" : "Couldn't connect \xff";
		o.duration_ms = rng();
		return o;
	}

	void
	step()
	{
		switch (rng() % 12) {
		case 0: /* a new sidecar */
			if (sidecars.size() < 4) {
				int id = next_id++;
				d.add_connection(id);
				sidecars.emplace(id, Sidecar{id, proto::FrameReader(), {}, false});
			}
			break;
		case 1: { /* a handshake, of the right version mostly */
			if (sidecars.empty())
				break;
			Sidecar &s = pick();
			if (s.hello && rng() % 16)
				break; /* a second Hello (a protocol error) only now and then */
			s.hello = true;
			send(s, proto::Hello{uint16_t(rng() % 8 ? proto::kVersion : rng()), "sc", uint32_t(rng() % 40)});
			break;
		}
		case 2: { /* credits, sometimes huge */
			if (sidecars.empty())
				break;
			send(pick(), proto::Credit{uint32_t(rng() % 8 ? rng() % 8 : rng())});
			break;
		}
		case 3:
		case 4: { /* a claim: a random run of the events, no more than claimable (as the dispatcher claims) */
			size_t from = rng() % kEvents, n = 1 + rng() % 16;
			n = std::min({n, size_t(kEvents) - from, d.claimable()});
			size_t through = d.hand_out(views.data() + from, n);
			ASSERT_LE(through, n);
			ASSERT_LE(d.inflight(), kMaxInflight);
			break;
		}
		case 5:
		case 6: { /* an outcome for an event the sidecar holds (rarely one it does not) */
			if (sidecars.empty())
				break;
			Sidecar &s = pick();
			std::string e = ids[rng() % kEvents];
			bool unknown = rng() % 32 == 0;
			if (s.held.empty() && !unknown)
				break;
			if (!unknown) {
				auto it = s.held.begin();
				std::advance(it, rng() % s.held.size());
				e = *it;
			}
			if (s.held.count(e)) {
				send(s, random_outcome(e));
				s.held.erase(e);
				holder.erase(e);
				std::string why;
				if (!d.wants_close(s.id, why))
					reported.insert(e);
			} else { /* not handed to it: the connection fails */
				send(s, random_outcome(e));
			}
			break;
		}
		case 7: { /* Ping, Pong, Goodbye, Stats (wrong direction), random bytes */
			if (sidecars.empty())
				break;
			Sidecar &s = pick();
			switch (rng() % 6) {
			case 5: { /* a Release of some of what it holds (shutting down, or a breaker opened) */
				proto::Release r;
				for (const std::string &e : s.held)
					if (rng() % 2)
						r.event_ids.push_back(e);
				if (rng() % 2)
					r.holds.push_back({"t", uint32_t(rng() % 3000)});
				send(s, r);
				std::string why;
				if (!d.wants_close(s.id, why)) {
					for (const std::string &e : r.event_ids) {
						s.held.erase(e);
						holder.erase(e);
					}
				}
				d.take_released();
				d.expire_holds();
				break;
			}
			case 0: send(s, proto::Ping{rng()}); break;
			case 1: send(s, proto::Pong{rng()}); break;
			case 2: send(s, proto::Goodbye{"bye"}); break;
			case 3: send(s, proto::Stats{}); break;
			case 4: { /* then it goes away: what follows junk in a stream is undefined */
				std::string junk(rng() % 32, '\0');
				for (char &c : junk)
					c = char(rng());
				feed(s, junk);
				disconnect(s.id);
				break;
			}
			}
			break;
		}
		case 8: /* a sidecar goes away, now and then */
			if (!sidecars.empty() && rng() % 8 == 0)
				disconnect(pick().id);
			break;
		case 9: /* the records: read, and committed most of the time */
			for (size_t i = 0; i < d.record_count(); i++) {
				RecordView r = d.record(i);
				ASSERT_NE(r.event_id, nullptr);
				ASSERT_NE(r.request_json, nullptr);
				ASSERT_NE(r.response_json, nullptr);
				ASSERT_FALSE(r.delivered && r.dead);
			}
			if (rng() % 4) {
				d.clear_records();
				reported.clear();
			}
			break;
		case 10: /* time passes; silent sidecars are pinged, then failed */
			now_ms += rng() % 2000;
			d.set_now(now_ms);
			d.check_silence(10000);
			d.check_deadlines();
			break;
		case 11: {
			TriggerStatsView t{"t", rng(), -1.0, 0, std::numeric_limits<uint64_t>::max()};
			d.note_fetch(rng() % 100, 0.01);
			d.broadcast_stats(rng(), &t, 1);
			(void)d.stats_json();
			break;
		}
		}
		/* what the dispatcher does after every turn: read out, close what must be closed */
		std::vector<int> live;
		for (auto &[id, s] : sidecars)
			live.push_back(id);
		for (int id : live) {
			drain(sidecars.at(id));
			if (testing::Test::HasFatalFailure())
				return;
			std::string why;
			if (d.wants_close(id, why)) {
				ASSERT_FALSE(why.empty());
				disconnect(id);
			}
		}
		ASSERT_LE(d.inflight(), kMaxInflight);
		ASSERT_LE(d.claimable(), kMaxInflight - std::min<size_t>(d.inflight(), kMaxInflight));
	}

	Sidecar &
	pick()
	{
		auto it = sidecars.begin();
		std::advance(it, rng() % sidecars.size());
		return it->second;
	}
};

} // namespace

TEST(DispatchFuzz, RandomSidecarsKeepTheClaimsConsistent)
{
	Walk w;
	for (int i = 0; i < 500000; i++) {
		w.step();
		if (testing::Test::HasFatalFailure())
			return;
	}
	/* the walk reached every state that matters */
	EXPECT_GT(w.d.stats().delivered, 1000u);
	EXPECT_GT(w.d.stats().retried + w.d.stats().dead, 1000u);
	EXPECT_GT(w.d.stats().returned, 1000u);
	EXPECT_GT(w.d.stats().cancelled, 100u);
}
