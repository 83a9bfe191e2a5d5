#!/usr/bin/env python3
"""tests/receiver/receiver.py

A webhook receiver for tests (standard library only). Appends one JSON line per request to
--log (path, method, headers, body parsed as JSON when possible, timestamp) and answers by path:

  /ok                 200
  /fail               500
  /fail-then-ok       500 for the first request of each event id (the body's "id"), then 200
  /retry-after/N      503 with Retry-After: N
  /slow/N             sleeps N seconds (may be fractional), then 200
  /slow-fail/N        sleeps N seconds, then 500
  /folded             200 with an obsolete folded header: X-Folded: first, then continuation
                      lines "  second", " " (blanks only), "\tthird"
  /random-fail/SEED/PCT[/S]
                      500 for PCT % of the requests, else 200, after sleeping S seconds (default
                      0); the choice is a function of SEED, the event id and how many requests
                      of that id came before, so a run is reproducible whatever the arrival order
  /random-hang/SEED/PCT/H
                      hangs H seconds then answers 504 for PCT % of the requests (chosen as
                      above), else 200 at once
  /answer/S/B[/H]     status S with the body whose bytes are the hex string B (any bytes: NUL,
                      invalid UTF-8...), Content-Type text/plain; with H, also the header
                      X-Odd whose value is the bytes of the hex string H, sent as they are
  anything else       404

With --answers LOG, one JSON line per response, written just before the response is sent (so
every response a client received is there; one whose client had gone, or whose receiver was
stopped meanwhile, may be there too): the event id, the row id of the event's data (new, else
old), the status answered.
"""
import argparse
import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
SEEN_IDS = set()
REQUESTS_BY_ID = {}  # event id -> requests of it so far (the random modes)


def chosen(seed, event_id, pct):
    """Whether this request of event_id falls in the PCT % (see the module docstring)."""
    with LOCK:
        n = REQUESTS_BY_ID.get(event_id, 0)
        REQUESTS_BY_ID[event_id] = n + 1
    digest = hashlib.sha256(f"{seed}:{event_id}:{n}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < pct


def row_id(body):
    """The id column of the event's row (new, else old), or None."""
    try:
        data = body["event"]["data"]
        return (data.get("new") or data.get("old") or {}).get("id")
    except (KeyError, TypeError, AttributeError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            body = None
        record = {
            "ts": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body,
            "raw_body": raw.decode("utf-8", "replace"),  # the exact bytes, for byte-level checks
            "client_port": self.client_address[1],
        }
        with LOCK:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        self.respond(body)

    do_GET = do_PUT = do_POST

    def respond(self, body):
        parts = self.path.split("?")[0].strip("/").split("/")
        status, extra = 404, {}
        if parts[0] == "ok":
            status = 200
        elif parts[0] == "fail":
            status = 500
        elif parts[0] == "fail-then-ok":
            event_id = body.get("id") if isinstance(body, dict) else None
            with LOCK:
                first = event_id not in SEEN_IDS
                SEEN_IDS.add(event_id)
            status = 500 if first else 200
        elif parts[0] == "retry-after" and len(parts) > 1:
            status, extra = 503, {"Retry-After": parts[1]}
        elif parts[0] == "folded":
            status = 200
        elif parts[0] in ("slow", "slow-fail") and len(parts) > 1:
            try:
                time.sleep(float(parts[1]))
            except ValueError:
                pass
            status = 200 if parts[0] == "slow" else 500
        elif parts[0] in ("random-fail", "random-hang") and len(parts) > 2:
            event_id = body.get("id") if isinstance(body, dict) else None
            try:
                pct, pause = int(parts[2]), float(parts[3]) if len(parts) > 3 else 0.0
            except ValueError:
                pct, pause = 100, 0.0
            hit = chosen(parts[1], event_id, pct)
            if parts[0] == "random-fail":
                time.sleep(pause)
                status = 500 if hit else 200
            else:
                if hit:
                    time.sleep(pause)
                status = 504 if hit else 200
        payload = json.dumps({"status": status}).encode()
        if self.server.answers_path:  # before the response: a receiver stopped meanwhile may never send it
            event_id = body.get("id") if isinstance(body, dict) else None
            line = json.dumps({"ts": time.time(), "id": event_id, "row": row_id(body), "status": status})
            with LOCK:
                with open(self.server.answers_path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
        content_type, raw_headers = "application/json", b""
        if parts[0] == "answer" and len(parts) > 2:
            try:
                status, payload = int(parts[1]), bytes.fromhex(parts[2])
                if len(parts) > 3:
                    raw_headers = b"X-Odd: " + bytes.fromhex(parts[3]) + b"\r\n"
                content_type = "text/plain"
            except ValueError:
                status, payload = 400, b"bad /answer path"
        try:
            self.send_response(status)
            for k, v in extra.items():
                self.send_header(k, v)
            if parts[0] == "folded":  # raw lines: send_header cannot write folding
                self._headers_buffer.append(b"X-Folded: first\r\n  second\r\n \r\n\tthird\r\n")
            if raw_headers:  # raw bytes: send_header would encode them as latin-1
                self._headers_buffer.append(raw_headers)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def log_message(self, fmt, *args):
        pass  # the JSON log is the record


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # a client that went away mid-request (a killed sidecar, a timeout) is no error here
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port (printed on stdout)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--log", required=True)
    ap.add_argument("--answers", help="log of the responses sent (see above)")
    args = ap.parse_args()
    ThreadingHTTPServer.request_queue_size = 1024  # the default backlog of 5 stalls concurrent senders
    server = Server((args.host, args.port), Handler)
    server.daemon_threads = True
    server.log_path = args.log
    server.answers_path = args.answers
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
