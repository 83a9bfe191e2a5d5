#!/usr/bin/env python3
"""tests/receiver/fake_worker.py

A stand-in for the hasura_events background worker (standard library only), to test the
sidecar without Postgres. Listens on a Unix socket, answers Hello with Welcome, sends the given
deliveries as credits allow, and prints one JSON line per Outcome on stdout. Exits 0 once every
delivery has an outcome (or --expect-goodbye saw a Goodbye and the sidecar closed), 1 on timeout
or protocol error.

  fake_worker.py --socket /tmp/x.sock.1 --deliver '{"webhook": "http://127.0.0.1:8080/ok"}' ...

A delivery is a JSON object with the Deliver fields (event_id, trigger_name, webhook,
webhook_from_env, headers [[name, value, from_env]], timeout_sec, attempt, body, created_at_ms);
missing fields get defaults, the body defaults to a Hasura-shaped payload for the event id, and
created_at_ms to the time the delivery was built.

--stats JSON (repeatable) sends a Stats frame after Welcome, one per --stats-interval seconds:
{"worker_restarts": 0, "inflight": 0, "fetches": [[seconds, events]],
 "triggers": [{"name", "pending", "oldest_pending_age_sec", "retries_scheduled", "errored"}]}
(database defaults to --database). --hold SECONDS keeps the connection open that long after the
last outcome (and the last Stats), so a test can look at the sidecar while it is connected.
"""
import argparse
import json
import os
import socket
import struct
import sys
import time
import uuid


def s(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def frame(mtype, body):
    return struct.pack(">IB", len(body) + 1, mtype) + body


def welcome(database, max_frame=512 << 20):
    return frame(2, struct.pack(">H", 1) + s(database) + struct.pack(">I", max_frame))


def deliver(d):
    body = s(d["event_id"]) + s(d["trigger_name"]) + s(d["webhook"]) + bytes([1 if d["webhook_from_env"] else 0])
    body += struct.pack(">I", len(d["headers"]))
    for name, value, from_env in d["headers"]:
        body += s(name) + s(value) + bytes([1 if from_env else 0])
    body += struct.pack(">II", d["timeout_sec"], d["attempt"]) + s(d["body"])
    body += struct.pack(">q", d["created_at_ms"])
    return frame(5, body)


def stats(st, database):
    body = s(st.get("database", database)) + struct.pack(">QQ", st.get("worker_restarts", 0), st.get("inflight", 0))
    fetches = st.get("fetches", [])
    body += struct.pack(">I", len(fetches))
    for seconds, events in fetches:
        body += struct.pack(">dI", float(seconds), events)
    triggers = st.get("triggers", [])
    body += struct.pack(">I", len(triggers))
    for t in triggers:
        body += s(t["name"]) + struct.pack(">QdQQ", t.get("pending", 0), float(t.get("oldest_pending_age_sec", 0)),
                                           t.get("retries_scheduled", 0), t.get("errored", 0))
    return frame(10, body)


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        v = self.data[self.pos:self.pos + n]
        if len(v) != n:
            raise ValueError("short frame")
        self.pos += n
        return v

    def u(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(">" + fmt)))[0]

    def str(self):
        return self.take(self.u("I")).decode("utf-8", "replace")


def decode(mtype, body):
    r = Reader(body)
    if mtype == 1:
        return {"type": "Hello", "version": r.u("H"), "sidecar_id": r.str(), "pool_size": r.u("I")}
    if mtype == 4:
        return {"type": "Credit", "credits": r.u("I")}
    if mtype == 6:
        o = {"type": "Outcome", "event_id": r.str(), "kind": ["delivered", "http_error", "client_error"][r.u("B")],
             "http_status": r.u("i"), "retry_after_sec": r.u("q"), "response_body": r.str()}
        o["response_headers"] = [[r.str(), r.str()] for _ in range(r.u("I"))]
        o["error"], o["duration_ms"] = r.str(), r.u("I")
        return o
    if mtype == 7:
        return {"type": "Ping", "token": r.u("Q")}
    if mtype == 8:
        return {"type": "Pong", "token": r.u("Q")}
    if mtype == 9:
        return {"type": "Goodbye", "reason": r.str()}
    raise ValueError(f"unexpected message type {mtype}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--database", default="testdb")
    ap.add_argument("--deliver", action="append", default=[], help="JSON object, repeatable")
    ap.add_argument("--repeat", type=int, default=1, help="send every --deliver this many times (new event ids)")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--expect-goodbye", action="store_true", help="wait for Goodbye and the close")
    ap.add_argument("--stats", action="append", default=[], help="Stats frame as JSON, repeatable")
    ap.add_argument("--stats-interval", type=float, default=0.2)
    ap.add_argument("--hold", type=float, default=0, help="seconds to stay connected after the last outcome")
    args = ap.parse_args()
    stats_frames = [json.loads(text) for text in args.stats]

    pending = []
    for _ in range(args.repeat):
        for text in args.deliver:
            d = {"event_id": str(uuid.uuid4()), "trigger_name": "test_trigger", "webhook_from_env": False,
                 "headers": [], "timeout_sec": 10, "attempt": 1, "created_at_ms": int(time.time() * 1000),
                 **json.loads(text)}
            d.setdefault("body", json.dumps({"id": d["event_id"], "trigger": {"name": d["trigger_name"]},
                                             "event": {"op": "INSERT", "data": {"old": None, "new": {"x": 1}}},
                                             "delivery_info": {"max_retries": 0, "current_retry": 0}}))
            pending.append(d)
    total = len(pending)

    if os.path.exists(args.socket):
        os.unlink(args.socket)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(4)
    srv.settimeout(args.timeout)
    deadline = time.time() + args.timeout
    conn, _ = srv.accept()
    buf, credits, outcomes, goodbye = b"", 0, 0, False
    welcomed, next_stats, hold_until = False, 0.0, None
    try:
        while True:
            now = time.time()
            if welcomed and stats_frames and now >= next_stats:
                conn.sendall(stats(stats_frames.pop(0), args.database))
                next_stats = now + args.stats_interval
            if outcomes == total and not stats_frames and not args.expect_goodbye:
                if hold_until is None:
                    hold_until = now + args.hold
                if now >= hold_until:
                    return 0
            while credits > 0 and pending:
                conn.sendall(deliver(pending.pop(0)))
                credits -= 1
            wake = deadline if hold_until is None else max(deadline, hold_until)
            if welcomed and stats_frames:
                wake = min(wake, next_stats)
            if hold_until is not None:
                wake = min(wake, hold_until)
            conn.settimeout(max(0.01, wake - time.time()))
            try:
                data = conn.recv(65536)
            except socket.timeout:
                if time.time() < deadline or hold_until is not None:
                    continue
                raise
            if not data:
                print(json.dumps({"type": "closed"}), flush=True)
                return 0 if outcomes == total and (goodbye or not args.expect_goodbye) else 1
            buf += data
            while len(buf) >= 4:
                (length,) = struct.unpack(">I", buf[:4])
                if len(buf) < 4 + length:
                    break
                mtype, body = buf[4], buf[5:4 + length]
                buf = buf[4 + length:]
                m = decode(mtype, body)
                if m["type"] == "Hello":
                    conn.sendall(welcome(args.database))
                    welcomed, next_stats = True, time.time()
                elif m["type"] == "Credit":
                    credits += m["credits"]
                elif m["type"] == "Outcome":
                    outcomes += 1
                elif m["type"] == "Ping":
                    conn.sendall(frame(8, struct.pack(">Q", m["token"])))
                elif m["type"] == "Goodbye":
                    goodbye = True
                print(json.dumps(m), flush=True)
    except socket.timeout:
        print(json.dumps({"type": "timeout", "outcomes": outcomes, "total": total}), flush=True)
        return 1
    finally:
        conn.close()
        srv.close()
        os.unlink(args.socket)


if __name__ == "__main__":
    sys.exit(main())
