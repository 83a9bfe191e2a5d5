#!/usr/bin/env python3
"""tests/integration/test_peers.py

Peers that misbehave on the dispatcher's socket: one that takes events and never reports their
outcome, connections that never say Hello, frames that are too large or never end; and the
rate limit of the dispatcher's attempt-failure lines. A real cluster, the real sidecar, and
fake peers that speak the protocol from Python (framing as tests/receiver/fake_worker.py).
The last line is "peers: N passed, N failed". Run one test: test_peers.py NAME [NAME...].
"""
import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "receiver"))
from harness import IS_ROOT, Sidecar, wait_for, run_suite  # noqa: E402
from fake_worker import s, frame  # noqa: E402
from test_delivery import Env, all_delivered, create_trigger, event_states, setup_db  # noqa: E402

TESTS = []

# the test process is root when the server runs as postgres: let it connect as a sidecar
PEER_CONF = [f"hasura_events.allowed_peer_uids = '{os.geteuid()}'"] if IS_ROOT else []

HELLO, WELCOME, REJECT, CREDIT, DELIVER, OUTCOME, PING, PONG, GOODBYE, STATS, CANCEL = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12


def test(fn):
    TESTS.append(fn)
    return fn


def socket_path(cluster, db="postgres"):
    """The dispatcher's socket, once it listens."""
    oid = cluster.scalar(f"SELECT oid FROM pg_database WHERE datname = '{db}'")
    path = f"{cluster.socket_prefix}.{oid}"
    wait_for(lambda: os.path.exists(path), what="the dispatcher's socket")
    return path


def read_str(body, pos):
    (n,) = struct.unpack(">I", body[pos:pos + 4])
    return body[pos + 4:pos + 4 + n].decode("utf-8", "replace"), pos + 4 + n


class FakePeer:
    """A connection to the dispatcher that answers Pings and pings every ping_every seconds
    (so it never looks silent), and records the ids of the Deliver and Cancel frames it gets.
    It reports an Outcome only when told to (outcome())."""

    def __init__(self, path, ping_every=1.0, regrant=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.lock = threading.Lock()
        self.delivered, self.cancelled, self.types = [], [], []
        self.closed = False
        self.ping_every = ping_every
        self.regrant = regrant  # grant a credit back for each cancelled event (and still report nothing)
        self.cancels = 0
        threading.Thread(target=self._read, daemon=True).start()

    def send(self, data):
        with self.lock:
            self.sock.sendall(data)

    def hello(self, credits=1000):
        self.send(frame(HELLO, struct.pack(">H", 1) + s("fake-peer") + struct.pack(">I", 1)))
        wait_for(lambda: WELCOME in self.types, what="Welcome")
        if credits:
            self.send(frame(CREDIT, struct.pack(">I", credits)))
        if self.ping_every:
            threading.Thread(target=self._ping, daemon=True).start()

    def outcome(self, event_id, status=200):
        body = s(event_id) + bytes([0 if status < 300 else 1]) + struct.pack(">iq", status, -1) + s("")
        body += struct.pack(">I", 0) + s("") + struct.pack(">I", 1)
        self.send(frame(OUTCOME, body))

    def _ping(self):
        token = 0
        while not self.closed:
            time.sleep(self.ping_every)
            token += 1
            try:
                self.send(frame(PING, struct.pack(">Q", token)))
            except OSError:
                return

    def _read(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            buf += data
            while len(buf) >= 4:
                (length,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + length:
                    break
                mtype, body = buf[4], buf[5:4 + length]
                buf = buf[4 + length:]
                self.types.append(mtype)
                if mtype == DELIVER:
                    self.delivered.append(read_str(body, 0)[0])
                elif mtype == CANCEL:
                    (count,) = struct.unpack(">I", body[:4])
                    pos = 4
                    for _ in range(count):
                        event_id, pos = read_str(body, pos)
                        self.cancelled.append(event_id)
                    self.cancels += 1
                    if self.regrant:
                        try:
                            self.send(frame(CREDIT, struct.pack(">I", count)))
                        except OSError:
                            pass
                elif mtype == PING:
                    try:
                        self.send(frame(PONG, body))
                    except OSError:
                        pass

    def close(self):
        self.closed = True
        self.sock.close()


def event_ids(cluster, trigger):
    return sorted(r[0] for r in cluster.psql(f"SELECT id FROM hdb_catalog.event_log WHERE trigger_name = '{trigger}'"))


def dispatcher_rss_kib(cluster):
    pid = wait_for(lambda: cluster.scalar("SELECT dispatcher_pid FROM hasura_events.worker_status "
                                          "WHERE database = 'postgres'"), what="the dispatcher's pid")
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def is_closed(sock):
    """True once the dispatcher closed sock (EOF or a reset); reads and drops what it sent."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


@test
def a_peer_that_never_reports_loses_its_events():
    # A peer takes 20 events (it grants credits and pings, so it never looks silent) and reports
    # nothing. timeout_sec 1 + outcome_grace 1 s after they were handed out, the dispatcher takes
    # them back and sends it a Cancel with their ids; the real sidecar delivers every one of
    # them, once, on its first try (a cancelled claim costs no try), and the peer gets no more.
    with Env(extra_conf=PEER_CONF + ["hasura_events.outcome_grace = '1s'"], sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "held", env.url("/ok"), retry_conf={"num_retries": 0, "timeout_sec": 1})
        peer = FakePeer(socket_path(c))
        try:
            peer.hello(credits=1000)
            c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 20) g")
            ids = event_ids(c, "held")
            wait_for(lambda: sorted(peer.delivered) == ids, what="20 events handed to the peer")
            env.sidecar = Sidecar(c)
            wait_for(lambda: sorted(peer.cancelled) == ids, timeout=30, what="a Cancel of the 20 events")
            # the outcome it sent before it read the Cancel comes too late: ignored, no protocol error
            peer.outcome(ids[0])
            wait_for(lambda: all_delivered(c, "held", 20), timeout=30, what="20 delivered by the real sidecar")
            got = sorted(r["body"]["id"] for r in env.receiver.requests())
            assert got == ids, got
            assert event_states(c, "held") == [["t", "f", "1"]] * 20, event_states(c, "held")
            assert c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs") == "20"
            log = c.server_log()
            assert "20 events returned to the queue: no outcome within their trigger's timeout_sec" in log, log[-3000:]
            assert "not handed to this sidecar" not in log, log[-3000:]
            time.sleep(0.5)
            assert not peer.closed, "the peer was disconnected"
            assert len(peer.delivered) == 20, "the peer got events again without reporting an outcome"
            assert '"deliveries cancelled by the worker' not in env.sidecar.output()
        finally:
            peer.close()


@test
def a_peer_that_regrants_credits_but_never_reports_is_disconnected():
    # A Credit ends the pause after a Cancel (what a sidecar sends for the deliveries it dropped),
    # so a peer that grants credits again gets the events again. At its third Cancel without an
    # outcome in between it is disconnected, and the real sidecar delivers.
    with Env(extra_conf=PEER_CONF + ["hasura_events.outcome_grace = '1s'"], sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "again", env.url("/ok"), retry_conf={"num_retries": 0, "timeout_sec": 1})
        peer = FakePeer(socket_path(c), regrant=True)
        try:
            peer.hello(credits=5)
            c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 5) g")
            wait_for(lambda: peer.closed, timeout=60, what="the peer disconnected")
            assert peer.cancels == 3, peer.cancels
            assert sorted(peer.cancelled) == sorted(event_ids(c, "again") * 3), peer.cancelled
            assert "no outcome reported for the events of 3 Cancels in a row" in c.server_log()
            env.sidecar = Sidecar(c)
            wait_for(lambda: all_delivered(c, "again", 5), timeout=30, what="5 delivered by the real sidecar")
            assert event_states(c, "again") == [["t", "f", "1"]] * 5, event_states(c, "again")
        finally:
            peer.close()


@test
def the_sidecar_drops_deliveries_cancelled_by_the_worker():
    # The real sidecar holds more than it can finish in time: one attempt at a time (pool 1), a
    # webhook that answers after 2.5 s, timeout_sec 3 + outcome_grace 1 s. Of 3 events handed out
    # together, the first is delivered at 2.5 s; at 4 s the second (in flight for 1.5 s) and the
    # third (still queued) are overdue. The dispatcher cancels them; the sidecar aborts the one,
    # drops the other, reports neither and gives their credits back, and they are handed out
    # again: every event delivered, each with one try and one invocation log (a cancelled
    # delivery costs no try), and no outcome taken for a protocol error.
    with Env(extra_conf=["hasura_events.outcome_grace = '1s'"],
             sidecar_args=("--pool-size", "1", "--min-webhook-concurrency", "1", "--prefetch", "4")) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "slowish", env.url("/slow/2.5"), retry_conf={"num_retries": 0, "timeout_sec": 3})
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 3) g")
        wait_for(lambda: all_delivered(c, "slowish", 3), timeout=60, what="3 delivered")
        lines = [json.loads(x) for x in env.sidecar.output().splitlines()
                 if '"deliveries cancelled by the worker' in x]
        assert lines, "the sidecar got no Cancel"
        assert lines[0]["in_flight_aborted"] == 1 and lines[0]["queued_dropped"] == 1, lines[0]
        assert event_states(c, "slowish") == [["t", "f", "1"]] * 3, event_states(c, "slowish")
        assert c.scalar("SELECT count(*) FROM hdb_catalog.event_invocation_logs") == "3"
        log = c.server_log()
        assert "events returned to the queue: no outcome within" in log, log[-3000:]
        assert "not handed to this sidecar" not in log and "sidecar connection closed" not in log, log[-3000:]


@test
def connections_that_never_say_hello_do_not_lock_sidecars_out():
    # 70 connections that say nothing: more than the 64 sidecars a dispatcher serves. A real
    # sidecar that connects after them is served, and the silent ones are closed.
    with Env(extra_conf=PEER_CONF, sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "hello", env.url("/ok"))
        path = socket_path(c)
        idle = []
        try:
            for _ in range(70):
                sk = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sk.connect(path)  # blocking: waits for room in the listen backlog
                idle.append(sk)
            env.sidecar = Sidecar(c)
            c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 5) g")
            wait_for(lambda: all_delivered(c, "hello", 5), timeout=30, what="5 delivered by the real sidecar")
            wait_for(lambda: all(is_closed(sk) for sk in idle), timeout=30, what="the silent connections closed")
            assert "no Hello within 5 s of connecting" in c.server_log()
        finally:
            for sk in idle:
                sk.close()


@test
def oversized_and_unending_frames_close_the_connection():
    # A frame announced at 200 MiB (beyond the 4 MiB bound): the connection is closed at its
    # header, and what was sent of it is not kept. A frame within the bound that stops halfway
    # is closed after 10 s. Before its Hello a connection may not send a 1 MiB frame. The
    # dispatcher's memory stays as it was, and a real sidecar is served afterwards.
    with Env(extra_conf=PEER_CONF, sidecar=False) as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "after", env.url("/ok"))
        path = socket_path(c)
        rss_before = dispatcher_rss_kib(c)

        huge = FakePeer(path, ping_every=0)
        huge.hello(credits=0)
        chunk = b"x" * (1 << 20)
        sent = 0
        try:
            huge.send(struct.pack(">IB", 200 << 20, OUTCOME))
            for _ in range(32):  # 32 MiB of it, which the dispatcher buffered before
                huge.send(chunk)
                sent += 1
        except OSError:
            pass
        wait_for(lambda: huge.closed, timeout=15, what="the 200 MiB frame's connection closed")
        assert sent < 32, "32 MiB of a 200 MiB frame were taken"
        assert "exceeds the limit of 4194304" in c.server_log()

        stuck = FakePeer(path, ping_every=0)
        stuck.hello(credits=0)
        stuck.send(struct.pack(">IB", 3 << 20, OUTCOME) + b"y" * (1 << 20))  # 1 MiB of 3
        wait_for(lambda: stuck.closed, timeout=30, what="the unfinished frame's connection closed")
        assert "a frame is incomplete after 10 s" in c.server_log()

        early = FakePeer(path, ping_every=0)
        try:
            early.send(struct.pack(">IB", 1 << 20, HELLO) + b"z" * 65536)
        except OSError:
            pass
        wait_for(lambda: early.closed, timeout=15, what="the big frame before Hello closed")
        assert "exceeds the limit of 65536" in c.server_log()

        grown = dispatcher_rss_kib(c) - rss_before
        assert grown < 16 * 1024, f"the dispatcher grew by {grown} KiB"
        env.sidecar = Sidecar(c)
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: all_delivered(c, "after", 1), what="delivered afterwards")


@test
def repeated_attempt_failures_are_rate_limited_in_the_server_log():
    # 30 events whose webhook answers 500, no retries, hasura_events.log_attempts = failures: one
    # attempt line in the server log for that failure, then one line that says 29 were left out.
    with Env() as env:
        c = env.cluster
        setup_db(c)
        create_trigger(c, "boom", env.url("/fail"), retry_conf={"num_retries": 0})
        c.psql("INSERT INTO t SELECT g, 'n' FROM generate_series(1, 30) g")
        wait_for(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE error") == "30",
                 what="30 dead events")

        def lines(msg):
            out = []
            for line in c.server_log().splitlines():
                at = line.find('{"msg": "' + msg + '"')
                if at >= 0:
                    out.append(json.loads(line[at:]))
            return [x for x in out if x.get("trigger") == "boom"]

        summaries = wait_for(lambda: lines("attempt failures suppressed"), timeout=30, what="a summary line")
        assert len(lines("attempt")) == 1, lines("attempt")
        assert summaries == [{"msg": "attempt failures suppressed", "trigger": "boom", "kind": "http_error",
                              "status": 500, "result": "dead", "suppressed": 29, "interval_sec": 10}], summaries


def main(argv):
    return run_suite("peers", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
