#!/usr/bin/env python3
"""tests/integration/test_invocation_logs.py

The invocation logs as delivery writes them, through the real sidecar: one row per attempt shaped
as Hasura's for every outcome kind, and rows that stay readable (as jsonb, through the views and
the API) whatever bytes a webhook answers with.
Each test prints PASS/FAIL; the last line is "invocation_logs: N passed, N failed".
Run one test: test_invocation_logs.py NAME [NAME...].
"""
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import free_port, wait_for, run_suite  # noqa: E402
from test_delivery import Env, create_trigger, setup_db  # noqa: E402

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def answer(status, body, header=None):
    """The receiver path answering status with exactly these body bytes (and an X-Odd header)."""
    path = f"/answer/{status}/{body.hex()}"
    return path + (f"/{header.hex()}" if header is not None else "")


def settled(cluster, n):
    """Whether n events are delivered or dead (each with its invocation log)."""
    return cluster.scalar("SELECT count(*) FROM hdb_catalog.event_log WHERE delivered OR error") == str(n)


def json_rows(cluster, sql):
    """The rows of sql as Python values (sql selects one json value per row)."""
    return [json.loads(r[0]) for r in cluster.psql(sql)]


# The invocation-log rows Hasura writes, per outcome kind. From Hasura's source (graphql-engine,
# server/src-lib): mkInvocation and processError in Hasura/Eventing/EventTrigger.hs choose the
# response: a 2xx status gives mkResp (webhook_response with body, headers, status), any other
# status mkClientErr of the body, an HTTP client exception (timeout, refused connection) mkClientErr
# of the exception as JSON text ({"type": "http_exception", "message": ...}, Hasura/HTTP.hs) with
# status NULL. The JSON keys are those of the Response, WebhookResponse, ClientError and
# WebhookRequest instances in Hasura/RQL/Types/Eventing.hs (version "2" for event triggers); a body
# that is not UTF-8 is ["Base64", ...] (Data/TByteString.hs); the request headers are the defaults
# Content-Type and User-Agent, then the configured ones as configured (prepareHeaders in
# Hasura/Eventing/HTTP.hs, addDefaultHeaders in Hasura/HTTP.hs).
HASURA_ROW_KEYS = {"id", "trigger_name", "event_id", "status", "request", "response", "created_at"}
HASURA_REQUEST_KEYS = ["payload", "headers", "version"]
HASURA_RESPONSE_KEYS = ["type", "data", "version"]
HASURA_DATA_KEYS = {"webhook_response": ["body", "headers", "status"], "client_error": ["message"]}
HASURA_EXCEPTION_KEYS = {"type", "message"}  # Hasura adds "request" (host, path...): left out here


def check_hasura_shape(row, kind, http_status, body, ua, configured_headers, payload):
    """Compares one invocation-log row key by key with the shape Hasura writes for kind."""
    assert set(row) == HASURA_ROW_KEYS, sorted(row)
    assert row["status"] == http_status, (kind, row["status"])
    req = row["request"]
    assert list(req) == HASURA_REQUEST_KEYS, list(req)
    assert req["version"] == "2"
    assert req["payload"] == payload, (req["payload"], payload)
    assert req["headers"] == [{"name": "Content-Type", "value": "application/json"},
                              {"name": "User-Agent", "value": ua}] + configured_headers, req["headers"]
    resp = row["response"]
    assert list(resp) == HASURA_RESPONSE_KEYS, list(resp)
    assert resp["version"] == "2"
    rtype = "webhook_response" if kind in ("2xx", "2xx-not-utf8") else "client_error"
    assert resp["type"] == rtype, (kind, resp)
    assert list(resp["data"]) == HASURA_DATA_KEYS[rtype], (kind, resp["data"])
    data = resp["data"]
    if kind == "2xx":
        assert data["body"] == body.decode() and data["status"] == http_status, data
        assert all(list(h) == ["name", "value"] for h in data["headers"]), data["headers"]
        assert {"name": "Content-Type", "value": "text/plain"} in data["headers"], data["headers"]
    elif kind == "2xx-not-utf8":
        assert data["body"] == ["Base64", base64.b64encode(body).decode()], data
    elif kind == "non-2xx":
        assert data["message"] == body.decode(), data
    else:  # timeout, refused: an HTTP client exception
        exc = json.loads(data["message"])
        assert set(exc) == HASURA_EXCEPTION_KEYS and exc["type"] == "http_exception", exc
        word = "time" if kind == "timeout" else "connect"
        assert word in exc["message"].lower(), exc


@test
def invocation_rows_match_hasura_for_every_outcome():
    refused = free_port()  # nothing listens there
    with Env(sidecar_env={"OBS_SECRET": "s3cr3t-value"}) as env:
        c = env.cluster
        setup_db(c)
        headers = [{"name": "X-Plain", "value": "plain"}, {"name": "X-Secret", "value_from_env": "OBS_SECRET"}]
        cases = {  # trigger: (kind, webhook, body the receiver answers, status in the row)
            "ok": ("2xx", env.url(answer(200, b"fine")), b"fine", 200),
            "err": ("non-2xx", env.url(answer(500, b"broken")), b"broken", 500),
            "slow": ("timeout", env.url("/slow/3"), None, None),
            "refused": ("refused", f"http://127.0.0.1:{refused}/", None, None),
            "binary": ("2xx-not-utf8", env.url(answer(200, b"\xff\xfe\x00bin")), b"\xff\xfe\x00bin", 200),
        }
        for name, (kind, url, _, _) in cases.items():
            create_trigger(c, name, url, headers=headers,
                           retry_conf={"num_retries": 0, "timeout_sec": 1 if kind == "timeout" else 10})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: settled(c, len(cases)), timeout=30, what="every outcome recorded")
        ua = next(r["headers"]["User-Agent"] for r in env.receiver.requests())
        sent = {r["body"]["trigger"]["name"]: r["body"] for r in env.receiver.requests()}
        rows = json_rows(c, "SELECT row_to_json(i) FROM hdb_catalog.event_invocation_logs i")
        assert sorted(r["trigger_name"] for r in rows) == sorted(cases), rows
        for row in rows:
            kind, _, body, status = cases[row["trigger_name"]]
            payload = sent.get(row["trigger_name"])
            if payload is None:  # no request reached a receiver: the payload is the event's
                payload = row["request"]["payload"]
                assert payload["id"] == row["event_id"] and payload["trigger"] == {"name": row["trigger_name"]}
            check_hasura_shape(row, kind, status, body, ua, headers, payload)
        assert "s3cr3t-value" not in json.dumps(rows), "a header value from the environment was logged"


@test
def odd_response_bytes_keep_every_read_working():
    # Bytes a webhook may answer with that JSON and jsonb cannot hold as they are: a NUL byte
    # (once stored as \u0000, after which every read of dead_events failed with 22P05), invalid
    # UTF-8, the text of a lone surrogate escape, header values with odd bytes.
    with Env() as env:
        c = env.cluster
        setup_db(c)
        cases = {  # trigger: path
            "nul_ok": answer(200, b"a\x00b", b"v\x01\xff"),
            "nul_fail": answer(500, b"a\x00b"),
            "not_utf8": answer(500, b"ok \xed\xa0\x80 \xff"),
            "surrogate_text": answer(500, b"\\ud800 lone \\udc00"),
            "surrogate_ok": answer(200, b"\\ud800"),
            "nul_header": answer(200, b"ok", b"x\x00y"),
        }
        for name, path in cases.items():
            create_trigger(c, name, env.url(path), retry_conf={"num_retries": 0})
        c.psql("INSERT INTO t VALUES (1, 'a')")
        wait_for(lambda: settled(c, len(cases)), timeout=30, what="every odd answer recorded")

        # every row reads back as jsonb, through the view and through the API
        c.psql("SELECT request::jsonb, response::jsonb, response->'data'->>'body', response->'data'->>'message' "
               "FROM hdb_catalog.event_invocation_logs")
        dead = {r[0]: r[1:] for r in c.psql("SELECT trigger_name, last_status, last_error "
                                            "FROM hasura_events.dead_events")}
        assert set(dead) == {"nul_fail", "not_utf8", "surrogate_text"} | (
            {"nul_header"} if "nul_header" in dead else set()), dead
        c.psql("SELECT * FROM hasura_events.dead_events")
        assert dead["nul_fail"] == ["500", "a\ufffdb"], dead["nul_fail"]
        assert dead["surrogate_text"] == ["500", "\\ud800 lone \\udc00"], dead["surrogate_text"]
        assert json.loads(dead["not_utf8"][1]) == ["Base64", base64.b64encode(b"ok \xed\xa0\x80 \xff").decode()]
        for name in cases:
            logs = json.loads(c.scalar(f"SELECT hasura_events.metadata('{{\"type\": \"pg_get_event_invocation_logs\", "
                                       f"\"args\": {{\"name\": \"{name}\"}}}}')"))
            assert len(logs) == 1, (name, logs)
            event_id = logs[0]["event_id"]
            by_id = json.loads(c.scalar(f"SELECT hasura_events.metadata('{{\"type\": \"pg_get_event_by_id\", "
                                        f"\"args\": {{\"event_id\": \"{event_id}\"}}}}')"))
            assert by_id["event"]["id"] == event_id and len(by_id["invocations"]) == 1, by_id
        ok = json.loads(c.scalar("SELECT response FROM hdb_catalog.event_invocation_logs WHERE trigger_name = 'nul_ok'"))
        assert ok["data"]["body"] == "a\ufffdb", ok
        assert {"name": "X-Odd", "value": "v\x01\ufffd"} in ok["data"]["headers"], ok["data"]["headers"]
        raw = json.loads(c.scalar("SELECT response FROM hdb_catalog.event_invocation_logs "
                                  "WHERE trigger_name = 'surrogate_ok'"))
        assert raw["data"]["body"] == "\\ud800", raw


def main(argv):
    return run_suite("invocation_logs", TESTS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
