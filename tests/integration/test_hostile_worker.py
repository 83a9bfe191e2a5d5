#!/usr/bin/env python3
"""tests/integration/test_hostile_worker.py

The real sidecar against a worker that misbehaves: frames out of order or of the wrong
direction, malformed and truncated frames, Deliver frames with extreme field values (empty,
huge, negative, control characters, undefined variables), Stats with non-finite values, a Ping
flood, seeded random bytes. No Postgres: the worker is this script, on a Unix socket the sidecar
finds by its prefix (as fake_worker.py). After every session the sidecar must still run, answer
each well-formed Deliver with one Outcome, and in the end deliver a normal event and stop
cleanly. Under the sidecar built with the sanitizers (tests/run-all.sh suite sidecar-asan), any
sanitizer report fails the test.
The last line is "hostile: N passed, N failed".
"""
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "receiver"))
from harness import SIDECAR, Receiver, run_suite  # noqa: E402
import fake_worker as fw  # noqa: E402

TESTS = []
POOL, PREFETCH = 4, 4


def test(fn):
    TESTS.append(fn)
    return fn


class Worker:
    """A listening socket the sidecar connects to, one session (connection) at a time."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="he_hostile_")
        self.prefix = os.path.join(self.dir, "he.sock")
        self.path = self.prefix + ".1"
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(4)
        self.receiver = Receiver()
        self.logpath = os.path.join(self.dir, "sidecar.log")
        self.logfile = open(self.logpath, "w")
        # as root the sidecar runs as root too: the socket is this process's
        self.sidecar = subprocess.Popen([SIDECAR, "--socket", self.prefix, "--log-level", "debug",
                                         "--pool-size", str(POOL), "--prefetch", str(PREFETCH),
                                         "--metrics-address", "off"],
                                        stdout=self.logfile, stderr=subprocess.STDOUT)

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def session(self, send, welcome=True, wait=1.0, until=None):
        """Accepts the sidecar's next connection, reads its Hello, sends Welcome (if welcome), then
        send(conn, frames) where frames is what the sidecar sent so far (send may pump() more);
        then reads for up to wait seconds (or until until(frames) holds) or until the sidecar
        closes. Returns (frames, closed by the sidecar)."""
        self.srv.settimeout(20)
        conn, _ = self.srv.accept()
        frames = []
        self.buf = b""
        try:
            while not frames:
                assert self.pump(conn, frames, 10), "the sidecar closed before its Hello"
            assert frames[0]["type"] == "Hello", frames
            if welcome:
                conn.sendall(fw.welcome("hostile"))
            try:
                send(conn, frames)
            except (BrokenPipeError, ConnectionResetError):
                return frames, True  # the sidecar closed on what it read
            deadline = time.time() + wait
            while time.time() < deadline and not (until and until(frames)):
                try:
                    if not self.pump(conn, frames, deadline - time.time()):
                        return frames, True
                except socket.timeout:
                    break
                except (BrokenPipeError, ConnectionResetError):
                    return frames, True
            return frames, False
        finally:
            conn.close()
            assert self.sidecar.poll() is None, f"the sidecar exited ({self.sidecar.returncode}):\n{self.log()[-3000:]}"

    def pump(self, conn, frames, timeout):
        """Reads once (up to timeout seconds) and appends the complete frames; answers Pings as
        a worker does. False when the sidecar closed."""
        conn.settimeout(max(0.01, timeout))
        data = conn.recv(1 << 20)
        if not data:
            return False
        self.buf += data
        while len(self.buf) >= 4:
            (length,) = struct.unpack(">I", self.buf[:4])
            if len(self.buf) < 4 + length:
                break
            f = fw.decode(self.buf[4], self.buf[5:4 + length])
            self.buf = self.buf[4 + length:]
            frames.append(f)
            if f["type"] == "Ping":
                conn.sendall(fw.frame(8, struct.pack(">Q", f["token"])))
        return True

    def send_after_credit(self, data):
        """A send function for session(): waits for the sidecar's first Credit, then sends data."""
        def send(conn, frames):
            while not any(f["type"] == "Credit" for f in frames):
                assert self.pump(conn, frames, 10), "the sidecar closed"
            conn.sendall(data)
        return send

    def close(self):
        rc = None
        if self.sidecar.poll() is None:
            self.sidecar.send_signal(signal.SIGTERM)
            try:
                rc = self.sidecar.wait(20)
            except subprocess.TimeoutExpired:
                self.sidecar.kill()
                self.sidecar.wait(5)
        self.logfile.close()
        self.receiver.stop()
        self.srv.close()
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is not None:
                print("---- sidecar log (tail) ----")
                print("\n".join(self.log().splitlines()[-30:]))
            rc = self.close()
            if exc[0] is None:
                assert rc == 0, f"the sidecar's exit status after SIGTERM: {rc}"
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def delivery(**fields):
    d = {"event_id": str(uuid.uuid4()), "trigger_name": "hostile", "webhook": "", "webhook_from_env": False,
         "headers": [], "timeout_sec": 5, "attempt": 1, "created_at_ms": int(time.time() * 1000)}
    d.update(fields)
    d.setdefault("body", json.dumps({"id": d["event_id"]}))
    return d


def bad_bool(deliver_frame):
    """The Deliver frame with its webhook_from_env byte (after three strings) set to 2."""
    pos = 5
    for _ in range(3):
        (n,) = struct.unpack(">I", deliver_frame[pos:pos + 4])
        pos += 4 + n
    return deliver_frame[:pos] + b"\x02" + deliver_frame[pos + 1:]


def raw(mtype, body):
    return fw.frame(mtype, body)


def outcomes(frames):
    return [f for f in frames if f["type"] == "Outcome"]


@test
def protocol_violations_close_the_connection_only():
    with Worker() as w:
        ok = w.receiver.base + "/ok"
        violations = {
            "deliver before welcome": (False, fw.deliver(delivery(webhook=ok))),
            "zero-length frame": (True, struct.pack(">I", 0)),
            "unknown type": (True, raw(99, b"x")),
            "length prefix 4 GiB - 1": (True, struct.pack(">I", 0xFFFFFFFF) + b"\x05"),
            "Hello from the worker": (True, raw(1, struct.pack(">H", 1) + fw.s("w") + struct.pack(">I", 1))),
            "Credit from the worker": (True, raw(4, struct.pack(">I", 10))),
            "Outcome from the worker": (True, raw(6, fw.s("e") + b"\x00" + struct.pack(">iq", 200, -1) + fw.s("")
                                                  + struct.pack(">I", 0) + fw.s("") + struct.pack(">I", 0))),
            "a second Welcome": (True, fw.welcome("again")),
            "Welcome of version 999": (False, raw(2, struct.pack(">H", 999) + fw.s("db") + struct.pack(">I", 1 << 20))),
            # after a credit, so that only the frame itself is wrong
            "a Deliver cut short": ("credit", raw(5, fw.deliver(delivery(webhook=ok))[5:-3])),
            "a Deliver with trailing bytes": ("credit", raw(5, fw.deliver(delivery(webhook=ok))[5:] + b"\x00")),
            "a bool of 2": ("credit", bad_bool(fw.deliver(delivery(webhook=ok)))),
            "more Deliver frames than credits": ("credit", b"".join(
                fw.deliver(delivery(webhook=ok)) for _ in range(POOL + PREFETCH + 1))),
            "Reject": (False, raw(3, fw.s("go away"))),
            "Goodbye": (True, raw(9, fw.s("bye"))),
        }
        for name, (welcome, data) in violations.items():
            send = w.send_after_credit(data) if welcome == "credit" else lambda conn, _f: conn.sendall(data)
            frames, closed = w.session(send, welcome=bool(welcome), wait=3.0)
            if name != "Goodbye":
                assert closed, f"{name}: the sidecar kept the connection"
        # a max_frame smaller than any Outcome is not refused: the Outcome is cut to its minimum
        tiny = delivery(webhook=ok)
        send = w.send_after_credit(fw.deliver(tiny))
        frames, _ = w.session(lambda conn, fr: conn.sendall(raw(2, struct.pack(">H", 1) + fw.s("db") + struct.pack(
            ">I", 16))) or send(conn, fr), welcome=False, wait=10, until=lambda fr: outcomes(fr))
        assert [(o["event_id"], o["response_body"]) for o in outcomes(frames)] == [(tiny["event_id"], "")], frames
        # still serving: a normal delivery
        good = delivery(webhook=ok)
        frames, _ = w.session(w.send_after_credit(fw.deliver(good)), wait=10, until=lambda fr: outcomes(fr))
        assert [o["kind"] for o in outcomes(frames)] == ["delivered"], frames


@test
def extreme_deliveries_each_get_one_outcome():
    with Worker() as w:
        base = w.receiver.base
        os.environ.pop("HE_HOSTILE_UNSET", None)
        odd = [
            delivery(webhook=""),
            delivery(webhook="not a url"),
            delivery(webhook="http://[::1"),
            delivery(webhook="ftp://127.0.0.1/x"),
            delivery(webhook=base + "/ok?" + "a" * 100000),
            delivery(webhook="{{UNCLOSED"),
            delivery(webhook="{{HE_HOSTILE_UNSET}}/x"),
            delivery(webhook="HE_HOSTILE_UNSET", webhook_from_env=True),
            delivery(webhook=base + "/ok", headers=[["X-Bad\r\nInjected", "1", False]]),
            delivery(webhook=base + "/ok", headers=[["X-Nul", "a\x00b", False]]),
            delivery(webhook=base + "/ok", headers=[["X-Env", "HE_HOSTILE_UNSET", True]]),
            delivery(webhook=base + "/ok", headers=[[f"X-H{i}", "v" * 100, False] for i in range(500)]),
            delivery(webhook=base + "/ok", headers=[["", "", False]]),
            delivery(webhook=base + "/ok", timeout_sec=0xFFFFFFFF),
            delivery(webhook=base + "/ok", attempt=0),
            delivery(webhook=base + "/ok", attempt=0xFFFFFFFF),
            delivery(webhook=base + "/ok", created_at_ms=-(1 << 63)),
            delivery(webhook=base + "/ok", created_at_ms=(1 << 63) - 1),
            delivery(webhook=base + "/ok", created_at_ms=0),
            delivery(webhook=base + "/ok", event_id=""),
            delivery(webhook=base + "/ok", event_id="x" * 70000),
            delivery(webhook=base + "/ok", body=b"\xff\xfe not json"),
            delivery(webhook=base + "/ok", body="b" * (2 << 20)),
            delivery(webhook=base + "/ok", trigger_name=""),
            delivery(webhook=base + "/retry-after/99999999999999999999"),
            delivery(webhook=base + "/retry-after/-5"),
            delivery(webhook=base + "/folded"),
            delivery(webhook=base + "/slow/0.5", event_id="twice"),
            delivery(webhook=base + "/ok", event_id="twice"),  # the same id while the first is in flight
        ]
        sent = []

        def send(conn, frames):
            # one Deliver per credit: the sidecar grants pool + prefetch after Welcome, one per Outcome
            for d in odd:
                while sum(f["credits"] for f in frames if f["type"] == "Credit") <= len(sent):
                    assert w.pump(conn, frames, 20), "the sidecar closed"
                conn.sendall(fw.deliver(d))
                sent.append(d["event_id"])

        frames, closed = w.session(send, wait=60, until=lambda fr: len(outcomes(fr)) >= len(odd))
        assert not closed, "the sidecar closed the connection"
        got = sorted(o["event_id"] for o in outcomes(frames))
        assert got == sorted(sent), f"{len(got)} outcomes for {len(sent)} deliveries"


@test
def odd_stats_and_a_ping_flood_are_survived():
    with Worker() as w:
        nan, inf = float("nan"), float("inf")
        stats = [
            {"worker_restarts": (1 << 64) - 1, "inflight": (1 << 64) - 1,
             "fetches": [[nan, 1], [inf, 2], [-inf, 3], [-1.0, 0], [1e308, (1 << 32) - 1]],
             "triggers": [{"name": "", "pending": (1 << 64) - 1, "oldest_pending_age_sec": nan},
                          {"name": "t\n\"x\\", "oldest_pending_age_sec": -inf, "errored": (1 << 64) - 1},
                          {"name": "big", "oldest_pending_age_sec": 1e308}]},
            {"triggers": [{"name": f"t{i}", "pending": i} for i in range(5000)]},
            {"database": "another name", "triggers": []},
        ]

        def send(conn, _frames):
            for st in stats:
                conn.sendall(fw.stats(st, "hostile"))
            conn.sendall(b"".join(fw.frame(7, struct.pack(">Q", i)) for i in range(20000)))

        frames, closed = w.session(send, wait=5, until=lambda fr: sum(f["type"] == "Pong" for f in fr) >= 20000)
        assert not closed, "the sidecar closed the connection"
        assert sum(f["type"] == "Pong" for f in frames) == 20000


@test
def random_bytes_after_welcome():
    rng = random.Random(19)
    with Worker() as w:
        for _ in range(12):
            junk = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 4096)))
            w.session(lambda conn, _f: conn.sendall(junk), wait=1.0)
        ok = w.receiver.base + "/ok"
        good = delivery(webhook=ok)
        frames, _ = w.session(w.send_after_credit(fw.deliver(good)), wait=10, until=lambda fr: outcomes(fr))
        assert [o["kind"] for o in outcomes(frames)] == ["delivered"], frames


def main(argv):
    return run_suite("hostile", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
