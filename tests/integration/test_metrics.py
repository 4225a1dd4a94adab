"""CloudWatch EMF metrics of the API and webhook Lambdas (chalicelib/metrics.py).

The EMF lines are read from stdout, where Lambda (and `chalice local`) print them, and
checked for their shape and for what they must never carry: a key, URL, phone number or
session id as a dimension.
"""
from __future__ import annotations

import contextlib
import io
import json
import uuid

import pytest

from chalicelib.events import make_envelope
from chalicelib.metrics import ALLOWED_DIMENSIONS, InvocationMetrics
from tests.conftest import session_headers


def total(line: dict, name: str) -> float:
    value = line[name]
    return sum(value) if isinstance(value, list) else value


@contextlib.contextmanager
def stdout_of(container):
    """What is printed inside the block (EMF lines go to stdout). The container's logger is
    built first, so its handler keeps the stream pytest holds for the session, not this one."""
    container.logger  # noqa: B018 - built (and its stream bound) before the redirect
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def emf_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            lines.append(json.loads(line))
    return lines


def dimensions_of(line: dict) -> dict[str, str]:
    [directive] = line["_aws"]["CloudWatchMetrics"]
    names = {name for dimension_set in directive["Dimensions"] for name in dimension_set}
    return {name: line[name] for name in names}


def assert_private(lines: list[dict], forbidden: list[str]) -> None:
    for line in lines:
        dims = dimensions_of(line)
        assert set(dims) <= ALLOWED_DIMENSIONS, dims
        for value in dims.values():
            for secret in forbidden:
                assert secret not in value, f"dimension value {value!r} carries {secret!r}"


def test_every_api_request_flushes_one_emf_line_by_route_template(api, container, settings, make_session,
                                                                   admin_headers):
    phone = "5511987654321"
    hook = "http://127.0.0.1:9/private-hook-path"
    created = make_session(webhook={"url": hook, "events": ["message.*"]})
    sid, key = created["session_id"], created["api_key"]
    with stdout_of(container) as out:
        assert api.get(f"/sessions/{sid}", headers=session_headers(created)).status_code == 200
        assert api.get(f"/sessions/{sid}-missing", headers=admin_headers).status_code == 404
        sent = api.post(f"/sessions/{sid}/messages", headers=session_headers(created),
                        body=json.dumps({"to": phone, "type": "text", "text": "hi"}))
        assert api.get("/sessions", headers={"Authorization": "Bearer wrong-key"}).status_code == 401
    lines = emf_lines(out.getvalue())
    assert len(lines) == 4, lines  # one per request: flushed once per invocation

    first = lines[0]
    [directive] = first["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "zemeow"
    assert directive["Dimensions"] == [["service"], ["service", "route", "method", "status_class"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]}.items() >= {
        "Requests": "Count", "Latency": "Milliseconds", "Errors": "Count"}.items()
    assert (first["service"], first["route"], first["method"], first["status_class"]) == (
        f"{settings.queue_prefix}-api", "/sessions/{session_id}", "GET", "2xx")
    assert total(first, "Requests") == 1 and total(first, "Errors") == 0 and total(first, "Latency") > 0
    assert [(line["route"], line["status_class"]) for line in lines[1:]] == [
        ("/sessions/{session_id}", "4xx"), ("/sessions/{session_id}/messages", f"{sent.status_code // 100}xx"), ("/sessions", "4xx")]
    assert_private(lines, [sid, key, phone, hook, "127.0.0.1", "wrong-key", created["id"]])
    print("EXAMPLE", json.dumps(first))


def test_cold_start_is_counted_once_per_process(api, container):
    with stdout_of(container) as out:
        api.get("/health")
        api.get("/health")
    first, second = emf_lines(out.getvalue())
    assert total(first, "ColdStart") == 1 and "ColdStart" not in second


def test_a_dimension_outside_the_allowed_set_is_refused():
    metrics = InvocationMetrics("zemeow-api")
    for name in ("session_id", "url", "api_key", "phone"):
        with pytest.raises(ValueError):
            metrics.dimension(name, "x")


def _record(created: dict) -> dict:
    envelope = make_envelope(created["session_id"], "message.received", {"from": "5511912345678"})
    return {"messageId": str(uuid.uuid4()), "receiptHandle": "r", "body": json.dumps(envelope),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:x-events", "awsRegion": "us-east-1"}


def _invoke_dispatcher(records: list[dict], container, *, expect_error: bool = False) -> list[dict]:
    from chalice.test import Client

    import app as app_module

    settings = container.settings
    with stdout_of(container) as out, Client(app_module.app) as client:
        if expect_error:
            with pytest.raises(Exception):
                client.lambda_.invoke("dispatch_webhooks", {"Records": records})
        else:
            client.lambda_.invoke("dispatch_webhooks", {"Records": records})
    return [line for line in emf_lines(out.getvalue())
            if line.get("service") == f"{settings.queue_prefix}-webhooks"]


def test_the_webhook_lambda_flushes_deliveries_by_outcome(container, make_session, receiver):
    receiver.set_behaviour("/ok", lambda n: (200, {}, 0.0))
    receiver.set_behaviour("/busy", lambda n: (503, {}, 0.0))
    receiver.set_behaviour("/gone-wrong", lambda n: (400, {}, 0.0))
    sessions = {path: make_session(webhook={"url": receiver.url(path), "events": ["message.*"]})
                for path in ("/ok", "/busy", "/gone-wrong")}
    records = [_record(created) for created in sessions.values()]
    lines = _invoke_dispatcher(records, container)
    assert len(lines) == 1, lines
    [line] = lines
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "zemeow" and directive["Dimensions"] == [["service"]]
    outcomes = ("WebhookDelivered", "WebhookRetried", "WebhookFailed", "WebhookSkipped")
    assert [total(line, name) for name in outcomes] == [1, 1, 1, 0]
    assert total(line, "WebhookBreakerOpens") == 0
    assert len(line["WebhookDeliveryLatency"]) == 3
    assert total(line, "ColdStart") == 1
    forbidden = [receiver.url("/ok"), "127.0.0.1", "5511912345678"]
    for created in sessions.values():
        forbidden += [created["session_id"], created["api_key"], created["id"]]
    assert_private(lines, forbidden)
    print("EXAMPLE", json.dumps(line))


def test_a_breaker_that_opens_is_counted(container, make_session, receiver):
    receiver.set_behaviour("/down", lambda n: (503, {}, 0.0))
    created = make_session(webhook={"url": receiver.url("/down"), "events": ["message.*"]})
    threshold = container.webhook_dispatcher.breaker.threshold
    [line] = _invoke_dispatcher([_record(created) for _ in range(threshold)], container)
    assert total(line, "WebhookRetried") == threshold and total(line, "WebhookBreakerOpens") == 1


def test_a_batch_that_fails_whole_counts_an_error_and_still_flushes(container, make_session, monkeypatch):
    def database_down(records):
        raise RuntimeError("database down")

    monkeypatch.setattr(container.webhook_dispatcher, "handle", database_down)
    [line] = _invoke_dispatcher([_record(make_session())], container, expect_error=True)
    assert total(line, "Errors") == 1
