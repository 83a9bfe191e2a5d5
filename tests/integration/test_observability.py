#!/usr/bin/env python3
"""tests/integration/test_observability.py

The sidecar's metrics endpoint, health check and logs, against the fake worker
(tests/receiver/fake_worker.py, which can send Stats frames) and the local HTTP receiver; the
last test has a real Prometheus server (the `prometheus` binary, run here with a temporary
config and storage, never the system service) scrape the sidecar. Loopback addresses only.
Each test prints PASS/FAIL; the last line is "observability: N passed, N failed".
Run one test: test_observability.py NAME [NAME...].
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SIDECAR, Receiver, free_port, run_suite, wait_for  # noqa: E402

FAKE_WORKER = os.path.join(ROOT, "tests", "receiver", "fake_worker.py")
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
DATABASE = "obsdb"

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def http_get(url, method="GET", timeout=5):
    """(status, headers, body text); connection errors raise."""
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def parse_metrics(text):
    """{'name{labels}': float} for every sample line (labels as rendered)."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        samples[key] = float(value.replace("+Inf", "inf").replace("-Inf", "-inf").replace("NaN", "nan"))
    return samples


class Env:
    """A temp dir, the receiver and a sidecar with its metrics endpoint on a free loopback port."""

    def __init__(self, sidecar_env=None, metrics=True):
        """sidecar_env: extra environment, or a function of the receiver's base URL returning it."""
        self.dir = tempfile.mkdtemp(prefix="he_obs_")
        self.socket_prefix = os.path.join(self.dir, "he.sock")
        self.receiver = Receiver()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.logpath = os.path.join(self.dir, "sidecar.log")
        self.logfile = open(self.logpath, "w")
        env = dict(os.environ)
        env.update((sidecar_env(self.receiver.base) if callable(sidecar_env) else sidecar_env) or {})
        args = [SIDECAR, "--socket", self.socket_prefix, "--log-level", "debug", "--pool-size", "4",
                "--metrics-address", f"127.0.0.1:{self.port}" if metrics else "off"]
        self.sidecar = subprocess.Popen(args, env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        self.workers = []
        if metrics:
            wait_for(self.endpoint_up, timeout=10, what="metrics endpoint")
        else:
            wait_for(lambda: "sidecar starting" in self.log(), timeout=10, what="sidecar start")

    def endpoint_up(self):
        try:
            return http_get(self.base + "/healthz")[0] in (200, 503)
        except OSError:
            return False

    def url(self, path):
        return self.receiver.base + path

    def log(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def metrics(self):
        status, headers, body = http_get(self.base + "/metrics")
        assert status == 200, status
        assert headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers
        return body

    def start_worker(self, deliveries=(), stats=(), hold=30, suffix="1"):
        args = [sys.executable, FAKE_WORKER, "--socket", f"{self.socket_prefix}.{suffix}", "--database", DATABASE,
                "--timeout", "30", "--hold", str(hold), "--stats-interval", "0.1"]
        for d in deliveries:
            args += ["--deliver", json.dumps(d)]
        for st in stats:
            args += ["--stats", json.dumps(st)]
        out = open(os.path.join(self.dir, f"worker{suffix}.out"), "w")
        p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.workers.append((p, out))
        return p

    def worker_outcomes(self, suffix="1"):
        with open(os.path.join(self.dir, f"worker{suffix}.out")) as f:
            lines = [json.loads(line) for line in f if line.startswith("{")]
        return [m for m in lines if m.get("type") == "Outcome"]

    def close(self):
        for p, out in self.workers:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
            out.close()
        if self.sidecar.poll() is None:
            self.sidecar.send_signal(signal.SIGTERM)
            try:
                self.sidecar.wait(20)
            except subprocess.TimeoutExpired:
                self.sidecar.kill()
                self.sidecar.wait(5)
        self.logfile.close()
        self.receiver.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            print("---- sidecar log (tail) ----")
            print("\n".join(self.log().splitlines()[-30:]))
        self.close()


# Hasura's event-trigger metrics and their labels (Hasura docs, docs/docs/event-triggers/
# observability-and-performace.mdx; server/src-lib/Hasura/Eventing/EventTrigger.hs labels them with
# DynamicEventTriggerLabel trigger_name source_name): a dashboard written for Hasura selects and
# groups by these. Histograms add le to their buckets.
HASURA_LABELS = {
    "hasura_event_invocations_total": {"trigger_name", "source_name", "status"},
    "hasura_event_processed_total": {"trigger_name", "source_name", "status"},
    "hasura_event_processing_time_seconds": {"trigger_name", "source_name"},
    "hasura_event_queue_time_seconds": {"trigger_name", "source_name"},
    "hasura_event_webhook_processing_time_seconds": {"trigger_name", "source_name"},
    "hasura_event_trigger_http_workers": set(),
}


def check_hasura_labels(samples):
    """Every sample of Hasura's per-trigger families carries exactly Hasura's label names."""
    seen = set()
    for key in samples:
        name, _, rest = key.partition("{")
        family = next((f for f in HASURA_LABELS if name in (f, f + "_bucket", f + "_sum", f + "_count")), None)
        if family is None:
            continue
        labels = {kv.split("=")[0] for kv in rest.rstrip("}").split(",") if kv}
        want = HASURA_LABELS[family] | ({"le"} if name.endswith("_bucket") else set())
        assert labels == want, f"{key}: labels {sorted(labels)}, Hasura's are {sorted(want)}"
        seen.add(family)
    assert seen == set(HASURA_LABELS), f"families missing: {set(HASURA_LABELS) - seen}"


def promtool_check(text):
    assert PROMTOOL, "promtool not found (Debian package prometheus)"
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        f"promtool check metrics: rc {p.returncode}\n{p.stdout}\n{p.stderr}"


@test
def healthz_follows_worker_connections():
    with Env() as env:
        status, _, body = http_get(env.base + "/healthz")
        assert (status, body) == (503, "not connected to any worker\n"), (status, body)
        samples = parse_metrics(env.metrics())
        assert samples["hasura_events_connected_workers"] == 0, samples
        worker = env.start_worker(hold=30)
        wait_for(lambda: http_get(env.base + "/healthz")[0] == 200, timeout=10, what="healthz 200")
        assert http_get(env.base + "/healthz")[2] == "ok\n"
        assert parse_metrics(env.metrics())["hasura_events_connected_workers"] == 1
        worker.terminate()
        worker.wait(10)
        wait_for(lambda: http_get(env.base + "/healthz")[0] == 503, timeout=10, what="healthz 503 after close")
        assert parse_metrics(env.metrics())["hasura_events_connected_workers"] == 0


@test
def endpoint_answers_only_get_and_head():
    with Env() as env:
        status, headers, body = http_get(env.base + "/metrics", method="HEAD")
        assert status == 200 and body == "" and int(headers["Content-Length"]) > 0, (status, headers)
        status, headers, _ = http_get(env.base + "/metrics", method="POST")
        assert status == 405 and headers.get("Allow") == "GET, HEAD", (status, headers)
        assert http_get(env.base + "/nope")[0] == 404
        assert http_get(env.base + "/metrics?x=1")[0] == 200
        # an oversized request head is refused, and the sidecar keeps serving
        import socket
        s = socket.create_connection(("127.0.0.1", env.port), timeout=5)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000)
            reply = s.recv(100)
        except ConnectionResetError:
            reply = b"HTTP/1.1 431 (reset before read)"
        finally:
            s.close()
        assert reply.startswith(b"HTTP/1.1 431"), reply
        assert http_get(env.base + "/healthz")[0] == 503
        assert env.sidecar.poll() is None


@test
def metrics_off_opens_no_port():
    with Env(metrics=False) as env:
        assert '"metrics_address":"off"' in env.log(), env.log()
        try:
            http_get(env.base + "/metrics", timeout=2)
            raise AssertionError("something answered on the metrics port")
        except (ConnectionRefusedError, urllib.error.URLError):
            pass


@test
def metrics_after_known_deliveries():
    with Env() as env:
        now_ms = int(time.time() * 1000)
        created = now_ms - 2000  # every event was created 2 s before the sidecar saw it
        ok = {"trigger_name": "orders", "webhook": env.url("/ok"), "created_at_ms": created, "body": '{"n":1}'}
        fail = {"trigger_name": "refunds", "webhook": env.url("/fail"), "created_at_ms": created, "body": '{"n":22}'}
        retry = {"trigger_name": "refunds", "webhook": env.url("/retry-after/5"), "created_at_ms": created,
                 "body": '{"n":333}'}
        stats = [
            {"worker_restarts": 1, "inflight": 6, "fetches": [[0.002, 6], [0.03, 0]],
             "triggers": [{"name": "orders", "pending": 3, "oldest_pending_age_sec": 2.5},
                          {"name": "gone", "pending": 1, "oldest_pending_age_sec": float("nan")}]},
            {"worker_restarts": 1, "inflight": 0, "fetches": [[0.7, 2]],
             "triggers": [{"name": "orders", "pending": 0, "oldest_pending_age_sec": 0},
                          {"name": "refunds", "pending": 3, "oldest_pending_age_sec": float("inf"),
                           "retries_scheduled": 2, "errored": 1}]},
        ]
        env.start_worker([ok, ok, ok, fail, fail, retry], stats)
        inv_ok = 'hasura_event_invocations_total{source_name="obsdb",trigger_name="orders",status="success"}'
        inv_bad = 'hasura_event_invocations_total{source_name="obsdb",trigger_name="refunds",status="failed"}'
        fetch_count = 'hasura_event_fetch_time_per_batch_seconds_count{source_name="obsdb"}'

        def settled():
            s = parse_metrics(env.metrics())
            return s if s.get(inv_ok) == 3 and s.get(inv_bad) == 3 and s.get(fetch_count) == 3 else None
        s = wait_for(settled, timeout=20, what="3 successes, 3 failures and 3 fetch samples")
        text = env.metrics()
        s = parse_metrics(text)
        kinds = sorted(o["kind"] for o in env.worker_outcomes())
        assert kinds == ["delivered"] * 3 + ["http_error"] * 3, kinds

        def v(name, **labels):
            key = name + ("{" + ",".join(f'{k}="{val}"' for k, val in labels.items()) + "}" if labels else "")
            assert key in s, f"missing {key}\n{text}"
            return s[key]

        db = {"source_name": DATABASE}
        assert v("hasura_event_processed_total", **db, trigger_name="orders", status="success") == 3
        # as Hasura: the Retry-After answer leaves its event retrying, so it is not processed yet
        # (these bodies carry no delivery_info: every other failure counts as the last try)
        assert v("hasura_event_processed_total", **db, trigger_name="refunds", status="failed") == 2
        assert 'trigger_name="orders",status="failed"' not in text and 'trigger_name="refunds",status="success"' not in text
        assert v("hasura_event_trigger_request_bytes_total", **db, trigger_name="orders") == 3 * len(ok["body"])
        assert v("hasura_event_trigger_request_bytes_total", **db, trigger_name="refunds") == \
            2 * len(fail["body"]) + len(retry["body"])
        reply = len(json.dumps({"status": 200}))  # the receiver's body, same length for 500 and 503
        assert v("hasura_event_trigger_response_bytes_total", **db, trigger_name="orders") == 3 * reply
        assert v("hasura_event_trigger_response_bytes_total", **db, trigger_name="refunds") == 3 * reply
        for trig in ("orders", "refunds"):
            assert v("hasura_event_webhook_processing_time_seconds_count", **db, trigger_name=trig) == 3
            assert v("hasura_event_webhook_processing_time_seconds_bucket", **db, trigger_name=trig, le="+Inf") == 3
            # created 2 s before: no sample below 1 s, all of them below 60 s
            assert v("hasura_event_queue_time_seconds_count", **db, trigger_name=trig) == 3
            assert v("hasura_event_queue_time_seconds_bucket", **db, trigger_name=trig, le="1") == 0
            assert v("hasura_event_queue_time_seconds_bucket", **db, trigger_name=trig, le="60") == 3
            assert v("hasura_event_queue_time_seconds_sum", **db, trigger_name=trig) >= 6
            assert v("hasura_event_processing_time_seconds_count", **db, trigger_name=trig) == 3
            assert v("hasura_event_processing_time_seconds_sum", **db, trigger_name=trig) >= \
                v("hasura_event_queue_time_seconds_sum", **db, trigger_name=trig)
        assert v("hasura_event_trigger_http_workers") == 0
        assert v("hasura_events_sidecar_queue_length") == 0
        assert v("hasura_events_connected_workers") == 1
        # Stats: every fetch sample observed, the last batch size, triggers replaced by the last frame
        assert v("hasura_event_fetch_time_per_batch_seconds_bucket", **db, le="0.005") == 1
        assert v("hasura_event_fetch_time_per_batch_seconds_bucket", **db, le="0.05") == 2
        assert v("hasura_event_fetch_time_per_batch_seconds_bucket", **db, le="1") == 3
        assert abs(v("hasura_event_fetch_time_per_batch_seconds_sum", **db) - 0.732) < 1e-9
        assert v("hasura_events_fetched_per_batch", **db) == 2
        assert v("hasura_events_pending_events", **db, trigger_name="orders") == 0
        assert v("hasura_events_pending_events", **db, trigger_name="refunds") == 3
        assert v("hasura_events_oldest_pending_age_seconds", **db, trigger_name="refunds") == math.inf
        assert 'hasura_events_oldest_pending_age_seconds{source_name="obsdb",trigger_name="refunds"} +Inf' in text
        assert v("hasura_events_retries_scheduled", **db, trigger_name="refunds") == 2
        assert v("hasura_events_error_events", **db, trigger_name="refunds") == 1
        assert 'trigger_name="gone"' not in text, "a trigger absent from the latest Stats must disappear"
        assert v("hasura_events_inflight", **db) == 0
        assert v("hasura_events_worker_restarts_total", **db) == 1
        for family in ("counter", "gauge", "histogram"):
            assert f" {family}\n" in text
        check_hasura_labels(s)
        promtool_check(text)

        # the worker goes away: its gauges go, the counters stay
        for p, _ in env.workers:
            p.terminate()
            p.wait(10)
        wait_for(lambda: "hasura_events_pending_events" not in env.metrics(), timeout=10, what="gauges dropped")
        s = parse_metrics(env.metrics())
        assert s[inv_ok] == 3 and s["hasura_events_connected_workers"] == 0
        assert s['hasura_events_worker_restarts_total{source_name="obsdb"}'] == 1


@test
def logs_have_fields_and_no_secrets():
    secrets = {"OBS_API_KEY": "obs-api-key-s3cr3t", "OBS_PATH": "obs-path-s3cr3t"}

    def sidecar_env(receiver_base):
        secrets["OBS_HOOK_URL"] = receiver_base + "/ok?token=obs-url-s3cr3t"
        return secrets

    with Env(sidecar_env=sidecar_env) as env:
        closed = free_port()
        deliveries = [
            {"trigger_name": "from_env", "webhook": "OBS_HOOK_URL", "webhook_from_env": True,
             "headers": [["X-Api-Key", "OBS_API_KEY", True]]},
            {"trigger_name": "templated", "webhook": env.receiver.base + "/fail/{{OBS_PATH}}",
             "headers": [["X-Api-Key", "OBS_API_KEY", True]]},
            {"trigger_name": "refused", "webhook": f"http://127.0.0.1:{closed}/{{{{OBS_PATH}}}}"},
            {"trigger_name": "missing", "webhook": "OBS_NOT_SET", "webhook_from_env": True},
        ]
        env.start_worker(deliveries, hold=30)
        wait_for(lambda: len(env.worker_outcomes()) == 4, timeout=20, what="4 outcomes")
        reqs = env.receiver.requests()
        assert any(r["headers"].get("X-Api-Key") == secrets["OBS_API_KEY"] for r in reqs), "header not sent"
        assert any(r["path"] == "/fail/obs-path-s3cr3t" for r in reqs), "template not resolved"
        log = env.log()
        metrics = env.metrics()
        for name, value in secrets.items():
            for where, text in (("sidecar log", log), ("metrics", metrics)):
                assert value not in text, f"{name} appears in the {where}"
        assert "obs-url-s3cr3t" not in log and "obs-path-s3cr3t" not in log
        attempts = [json.loads(line) for line in log.splitlines() if '"msg":"attempt"' in line]
        assert len(attempts) == 4, attempts
        for a in attempts:
            for field in ("event_id", "trigger", "status", "kind", "duration_ms", "attempt", "error", "database"):
                assert field in a, (field, a)
        by_trigger = {a["trigger"]: a for a in attempts}
        assert by_trigger["from_env"]["kind"] == "delivered" and by_trigger["from_env"]["status"] == 200
        assert by_trigger["from_env"]["error"] == ""
        assert by_trigger["from_env"]["webhook"] == "OBS_HOOK_URL", "the variable name is logged, not its value"
        assert by_trigger["templated"]["webhook"].endswith("/fail/{{OBS_PATH}}"), "the template is logged as stored"
        assert by_trigger["templated"]["kind"] == "http_error" and by_trigger["templated"]["status"] == 500
        assert by_trigger["refused"]["kind"] == "client_error" and by_trigger["refused"]["error"]
        assert by_trigger["missing"]["kind"] == "client_error" and "OBS_NOT_SET" in by_trigger["missing"]["error"]
        s = parse_metrics(metrics)
        assert s['hasura_event_invocations_total{source_name="obsdb",trigger_name="missing",status="failed"}'] == 1
        assert 'hasura_event_trigger_request_bytes_total{source_name="obsdb",trigger_name="missing"}' not in s, \
            "no request was sent for a missing variable"
        promtool_check(metrics)


@test
def prometheus_scrapes_the_sidecar():
    assert PROMETHEUS, "prometheus not found (Debian package prometheus)"
    with Env() as env:
        env.start_worker([{"trigger_name": "scraped", "webhook": env.url("/ok")}],
                         [{"fetches": [[0.01, 1]], "triggers": [{"name": "scraped", "pending": 4}]}])
        wait_for(lambda: '"msg":"attempt"' in env.log(), timeout=10, what="one attempt")
        pdir = tempfile.mkdtemp(prefix="he_prom_")
        pport = free_port()
        config = os.path.join(pdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: hasura_events_sidecar\n"
                    f"    static_configs:\n      - targets: ['127.0.0.1:{env.port}']\n")
        plog = open(os.path.join(pdir, "prometheus.log"), "w")
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={pdir}/data",
                                 f"--web.listen-address=127.0.0.1:{pport}", "--storage.tsdb.retention.time=1h"],
                                stdout=plog, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{pport}/api/v1/"

        def query(expr):
            try:
                status, _, body = http_get(api + "query?query=" + urllib.parse.quote(expr), timeout=3)
            except OSError:
                return None
            if status != 200:
                return None
            result = json.loads(body)["data"]["result"]
            return result or None

        try:
            up = wait_for(lambda: (r := query('up{job="hasura_events_sidecar"}')) and r[0]["value"][1] == "1" and r,
                          timeout=45, interval=0.5, what="Prometheus to scrape the sidecar (up == 1)")
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{env.port}", up
            status, _, body = http_get(api + "targets", timeout=5)
            targets = json.loads(body)["data"]["activeTargets"]
            assert status == 200 and targets and targets[0]["health"] == "up" and not targets[0]["lastError"], targets
            r = wait_for(lambda: query('hasura_event_invocations_total{trigger_name="scraped",status="success"}'),
                         timeout=15, interval=0.5, what="an ingested sidecar counter")
            assert r[0]["value"][1] == "1" and r[0]["metric"]["source_name"] == DATABASE, r
            r = wait_for(lambda: query('hasura_events_pending_events{trigger_name="scraped"}'), timeout=15, interval=0.5,
                         what="an ingested Stats gauge")
            assert r[0]["value"][1] == "4", r
        except Exception:
            plog.flush()
            with open(os.path.join(pdir, "prometheus.log"), errors="replace") as f:
                print("---- prometheus log (tail) ----")
                print("\n".join(f.read().splitlines()[-20:]))
            raise
        finally:
            prom.terminate()
            try:
                prom.wait(20)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(5)
            plog.close()
            shutil.rmtree(pdir, ignore_errors=True)


@test
def real_worker_figures_reach_the_metrics():
    """The real dispatcher's Stats frames and the sidecar's own counters after known deliveries."""
    sys.path.insert(0, os.path.dirname(__file__))
    from harness import Cluster, Receiver, Sidecar, free_port, wait_for as hwait
    cluster = Cluster(["hasura_events.metrics_interval = '200ms'", "hasura_events.log_attempts = all"])
    receiver = Receiver()
    port = free_port()
    sidecar = Sidecar(cluster, args=["--metrics-address", f"127.0.0.1:{port}"])
    try:
        c = cluster
        c.psql("CREATE EXTENSION hasura_events; CREATE TABLE t (id int PRIMARY KEY, v text);")
        for name, path, retry in (("ok_hook", "/ok", {}), ("dead_hook", "/fail", {"num_retries": 1, "interval_sec": 0}),
                                  ("later_hook", "/fail", {"num_retries": 5, "interval_sec": 3600})):
            args = {"name": name, "table": "t", "webhook": receiver.base + path, "insert": {"columns": "*"},
                    "retry_conf": retry}
            c.psql("SELECT hasura_events.create_event_trigger($$" + json.dumps(args) + "$$::jsonb)")
        c.psql("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 3) g")
        # ok_hook: 3 delivered; dead_hook: 3 dead after 2 attempts each; later_hook: 3 waiting an hour
        hwait(lambda: c.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered OR error "
                               "OR next_retry_at IS NOT NULL") == "9", what="all events settled")
        db = "postgres"

        def v(samples, name, **labels):
            want = ",".join(f'{k}="{val}"' for k, val in sorted(labels.items()))
            for key, value in samples.items():
                if key.split("{")[0] != name:
                    continue
                got = key[len(name) + 1:-1] if "{" in key else ""
                if sorted(got.split(",")) == sorted(want.split(",")):
                    return value
            return None

        def settled():
            st, _, body = http_get(f"http://127.0.0.1:{port}/metrics")
            m = parse_metrics(body)
            ok = (v(m, "hasura_events_pending_events", source_name=db, trigger_name="later_hook") == 3
                  and v(m, "hasura_events_error_events", source_name=db, trigger_name="dead_hook") == 3)
            return (m, body) if ok else None

        m, body = hwait(settled, timeout=20, what="worker figures in the metrics")
        promtool_check(body)
        assert v(m, "hasura_events_pending_events", source_name=db, trigger_name="ok_hook") == 0
        assert v(m, "hasura_events_pending_events", source_name=db, trigger_name="dead_hook") == 0
        assert v(m, "hasura_events_retries_scheduled", source_name=db, trigger_name="later_hook") == 3
        assert v(m, "hasura_events_oldest_pending_age_seconds", source_name=db, trigger_name="later_hook") > 0
        assert v(m, "hasura_events_worker_restarts_total", source_name=db) == 0
        assert v(m, "hasura_events_connected_workers") == 1
        assert v(m, "hasura_events_inflight", source_name=db) == 0
        assert v(m, "hasura_event_invocations_total", source_name=db, trigger_name="ok_hook", status="success") == 3
        assert v(m, "hasura_event_invocations_total", source_name=db, trigger_name="dead_hook", status="failed") == 6
        assert v(m, "hasura_event_invocations_total", source_name=db, trigger_name="later_hook", status="failed") == 3
        assert v(m, "hasura_event_fetch_time_per_batch_seconds_count", source_name=db) >= 1
        assert v(m, "hasura_event_queue_time_seconds_count", source_name=db, trigger_name="ok_hook") == 3
        # hasura_event_processed_total counts as Hasura's: an event once, success when delivered,
        # failed when a failed try leaves no retry (retryOrSetError in Hasura/Eventing/EventTrigger.hs):
        # dead_hook's 3 events count 3 (not their 6 failed attempts), later_hook's, still retrying, none
        assert v(m, "hasura_event_processed_total", source_name=db, trigger_name="ok_hook", status="success") == 3
        assert v(m, "hasura_event_processed_total", source_name=db, trigger_name="dead_hook", status="failed") == 3
        assert v(m, "hasura_event_processed_total", source_name=db, trigger_name="later_hook", status="failed") is None
        check_hasura_labels(m)
        # the SQL views tell the same story
        rows = c.psql("SELECT trigger_name, pending, retrying, errored FROM hasura_events.trigger_status "
                      "ORDER BY trigger_name")
        assert rows == [["dead_hook", "0", "0", "3"], ["later_hook", "3", "3", "0"], ["ok_hook", "0", "0", "0"]], rows
        dead = c.psql("SELECT trigger_name, tries, last_status FROM hasura_events.dead_events")
        assert sorted(dead) == [["dead_hook", "2", "500"]] * 3, dead
        ws = c.psql("SELECT sidecars, restarts, inflight, delivered FROM hasura_events.worker_status "
                    "WHERE database = 'postgres'")
        assert ws == [["1", "0", "0", "3"]], ws
        # the worker logs each attempt with the sidecar's fields (log_attempts = all)
        log = c.server_log()
        assert '"msg": "attempt"' in log and '"trigger": "dead_hook"' in log and '"result": "dead"' in log, log[-2000:]
        # a worker restart is counted
        pid = c.scalar("SELECT dispatcher_pid FROM hasura_events.worker_status WHERE database = 'postgres'")
        c.psql(f"SELECT pg_terminate_backend({pid})")

        def restarted():
            st, _, body = http_get(f"http://127.0.0.1:{port}/metrics")
            return v(parse_metrics(body), "hasura_events_worker_restarts_total", source_name=db) == 1
        hwait(restarted, timeout=20, what="restart counted")
    finally:
        sidecar.stop()
        receiver.stop()
        cluster.destroy()


def main(argv):
    return run_suite("observability", TESTS, argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
