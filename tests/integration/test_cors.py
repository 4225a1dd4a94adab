"""CORS (CORS_ALLOW_ORIGINS): real preflights through a `chalice local` process, answers to
allowed origins carry Access-Control-Allow-Origin, other origins get nothing; none by default."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

from chalicelib.config import load_settings
from chalicelib.errors import ConfigError
from devstack import PROJECT_ROOT
from devstack.processes import free_port, start_child, wait_http
from tests.conftest import TEST_ADMIN_KEY

ALLOWED = "http://localhost:3000"


def _call(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def served(stack):
    """`chalice local` (the real HTTP server) with two allowed origins."""
    port = free_port()
    env = {**stack.env, "SERVER_PORT": str(port), "CORS_ALLOW_ORIGINS": f"{ALLOWED}, https://app.example.com"}
    child = start_child("api", [str(PROJECT_ROOT / ".venv" / "bin" / "chalice"), "local", "--stage", "local",
                                "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
                        env, str(PROJECT_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", timeout=60, child=child)
        status, _, body = _call(f"{base}/sessions", "POST",
                                {"Authorization": f"Bearer {TEST_ADMIN_KEY}", "Content-Type": "application/json"},
                                json.dumps({"name": "cors", "session_id": f"cors-{uuid.uuid4().hex[:8]}"}).encode())
        assert status == 201, body
        yield base, json.loads(body)
    finally:
        child.stop()


def test_a_preflight_from_an_allowed_origin_is_answered(served):
    base, created = served
    status, headers, body = _call(f"{base}/sessions/{created['session_id']}", "OPTIONS", {
        "Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert status == 204 and body == b""
    assert headers["Access-Control-Allow-Origin"] == ALLOWED and headers["Vary"] == "Origin"
    assert set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "PUT", "DELETE", "OPTIONS"}
    allowed_headers = {h.lower() for h in headers["Access-Control-Allow-Headers"].split(", ")}
    assert {"authorization", "content-type", "x-api-key"} <= allowed_headers
    assert int(headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Credentials" not in headers  # keys travel in headers, never cookies
    # a path with a literal segment, and the collection route
    status, headers, _ = _call(f"{base}/sessions", "OPTIONS", {"Origin": "https://app.example.com",
                                                              "Access-Control-Request-Method": "POST"})
    assert status == 204 and set(headers["Access-Control-Allow-Methods"].split(", ")) == {"GET", "POST", "OPTIONS"}


def test_a_preflight_from_another_origin_is_refused(served):
    base, created = served
    status, headers, body = _call(f"{base}/sessions/{created['session_id']}", "OPTIONS", {
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert status == 403 and json.loads(body)["code"] == "cors_origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in headers


def test_answers_to_an_allowed_origin_can_be_read_by_the_browser(served):
    base, created = served
    key = {"Authorization": f"Bearer {created['api_key']}"}
    status, headers, _ = _call(f"{base}/sessions/{created['session_id']}", headers={**key, "Origin": ALLOWED})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == ALLOWED
    exposed = headers["Access-Control-Expose-Headers"].split(", ")
    assert {"RateLimit-Remaining", "Retry-After", "X-Request-Id"} <= set(exposed)
    status, headers, _ = _call(f"{base}/sessions", headers={**key, "Origin": ALLOWED})  # errors too
    assert status == 403 and headers["Access-Control-Allow-Origin"] == ALLOWED
    status, headers, _ = _call(f"{base}/sessions/{created['session_id']}",
                               headers={**key, "Origin": "https://evil.example"})
    assert status == 200 and "Access-Control-Allow-Origin" not in headers
    assert headers["Vary"] == "Origin"  # a cache keeps the two answers apart


def test_no_origin_is_allowed_by_default(api, make_session):
    created = make_session()
    path = f"/sessions/{created['session_id']}"
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="local") as client:
        preflight = client.http.request("OPTIONS", path, headers={"Origin": ALLOWED,
                                                                 "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 403
        answer = client.http.get(path, headers={"X-API-Key": created["api_key"], "Origin": ALLOWED})
        assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers


def test_origins_are_checked_at_start_up(stack):
    settings = load_settings({**stack.env, "CORS_ALLOW_ORIGINS": "https://a.example, http://[::1]:8080"})
    assert settings.cors_allow_origins == ("https://a.example", "http://[::1]:8080")
    assert load_settings({k: v for k, v in stack.env.items() if k != "CORS_ALLOW_ORIGINS"}).cors_allow_origins == ()
    with pytest.raises(ConfigError) as error:
        load_settings({**stack.env, "CORS_ALLOW_ORIGINS": "https://a.example/app"})
    assert "CORS_ALLOW_ORIGINS" in str(error.value) and "no path" in str(error.value)
