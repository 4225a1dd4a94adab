"""The access log: one JSON line per request with method, route template, status, duration,
key kind, session id and request id; never a key."""
from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from chalicelib.services.auth import key_digest
from tests.conftest import TEST_ADMIN_KEY


@pytest.fixture
def log_lines(container):
    """What the API's Powertools logger writes, formatted as it is on stdout."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(container.logger.registered_formatter)
    std = logging.getLogger(container.logger.name)
    std.addHandler(handler)

    def read() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    read.text = stream.getvalue  # type: ignore[attr-defined]
    yield read
    std.removeHandler(handler)


def _access(lines: list[dict], request_id: str) -> list[dict]:
    return [line for line in lines if line.get("message") == "request" and line.get("request_id") == request_id]


def test_one_line_per_request_with_every_field(api, make_session, admin_headers, log_lines):
    created = make_session()
    sid = created["session_id"]
    calls = {
        "session": ("GET", f"/sessions/{sid}", {"X-API-Key": created["api_key"]}, 200),
        "admin": ("PUT", f"/sessions/{sid}", admin_headers, 200),
        "none": ("GET", "/sessions", {}, 401),
        "public": ("GET", "/health", {}, None),
        "forbidden": ("GET", "/sessions", {"Authorization": f"Bearer {created['api_key']}"}, 403),
    }
    ids = {}
    for name, (method, path, headers, _) in calls.items():
        ids[name] = f"acc-{name}-{uuid.uuid4().hex[:8]}"
        body = json.dumps({"name": "renamed"}) if method == "PUT" else None
        response = getattr(api, method.lower())(path, headers={**headers, "X-Request-Id": ids[name]}, body=body)
        calls[name] = (method, path, headers, calls[name][3] or response.status_code)
        assert calls[name][3] == response.status_code
    lines = log_lines()
    expected = {
        "session": ("GET", "/sessions/{session_id}", "session", sid),
        "admin": ("PUT", "/sessions/{session_id}", "admin", sid),
        "none": ("GET", "/sessions", "none", None),
        "public": ("GET", "/health", "none", None),
        "forbidden": ("GET", "/sessions", "session", sid),  # a session key's own session
    }
    for name, (method, route, kind, session_id) in expected.items():
        found = _access(lines, ids[name])
        assert len(found) == 1, (name, found)
        line = found[0]
        assert (line["method"], line["route"], line["key_kind"], line.get("session_id")) == (method, route, kind,
                                                                                         session_id), name
        assert line["status"] == calls[name][3]
        assert isinstance(line["duration_ms"], (int, float)) and 0 < line["duration_ms"] < 30_000
        assert line["level"] == "INFO" and line["service"] == "zemeow-api"
        assert ("session_id" in line) == (session_id is not None)  # Powertools leaves out empty fields


def test_no_key_ever_reaches_the_access_log(api, make_session, admin_headers, log_lines):
    created = make_session()
    sid = created["session_id"]
    wrong = "zses_wrong-" + uuid.uuid4().hex
    api.get(f"/sessions/{sid}", headers={"X-API-Key": created["api_key"]})
    api.get(f"/sessions/{sid}", headers={"Authorization": f"Bearer {created['api_key']}"})
    api.get(f"/sessions/{sid}", headers=admin_headers)
    api.get(f"/sessions/{sid}", headers={"X-API-Key": wrong})
    text = log_lines.text()
    assert len([line for line in log_lines() if line.get("message") == "request"]) == 5  # with the create
    for secret in (created["api_key"], TEST_ADMIN_KEY, wrong, key_digest(created["api_key"]),
                   key_digest(TEST_ADMIN_KEY)):
        assert secret not in text
