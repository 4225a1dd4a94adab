"""Finding 2: one outbound HTTP client, guarded, that never follows HTTP(S)_PROXY.

The recording proxy below is a loopback server that counts every connection made to it;
HTTP_PROXY/HTTPS_PROXY/ALL_PROXY point at it. A media fetch and a webhook delivery must
reach their (loopback) targets directly and never it. And the metadata address behind an
environment proxy, the original report, is refused before anything is sent.
"""
from __future__ import annotations

import ast
import json
import uuid
from pathlib import Path

import pytest

from chalicelib.events import make_envelope
from chalicelib.netguard.resolve import NetPolicy
from runner_container.media_fetch import fetch_media
from runner_container.wa_messages import MessageBuildError
from tests.conftest import PROJECT_ROOT
from tests.security.servers import HttpServer, RawServer, body
from tests.support.webhook_receiver import Receiver

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture
def recording_proxy(monkeypatch):
    """A 'proxy' on loopback that answers 502 to anything and records each request line.
    (boto3 honours these variables too, for its calls to LocalStack: those are not ours
    to judge, so the tests look for requests to *their* targets.)"""
    def serve(conn):
        proxy.lines.append(conn.recv(65536).split(b"\r\n", 1)[0].decode(errors="replace"))
        conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        conn.close()

    proxy = RawServer(serve)
    proxy.lines = []
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield proxy
    proxy.close()


def test_a_media_fetch_never_goes_through_an_environment_proxy(recording_proxy):
    server = HttpServer({"/file.png": body(b"\x89PNG-direct")})
    try:
        data = fetch_media(server.url("/file.png"), 10_000, policy=NetPolicy(allow_private=True))
        assert data == b"\x89PNG-direct"
        assert server.hits == ["/file.png"]
        assert recording_proxy.connections == 0 and recording_proxy.lines == []
    finally:
        server.close()


def test_the_metadata_address_behind_an_environment_proxy_is_refused_before_sending(recording_proxy):
    with pytest.raises(MessageBuildError) as info:
        fetch_media("http://169.254.169.254/latest/meta-data/iam/security-credentials/", 10_000,
                    policy=NetPolicy(allow_private=True))
    assert info.value.code == "media_url_refused"
    assert recording_proxy.connections == 0


def test_a_webhook_post_never_goes_through_an_environment_proxy(recording_proxy, container, make_session, db):
    receiver = Receiver()
    try:
        created = make_session(webhook={"url": receiver.url("/hook"), "events": ["message.*"]})
        envelope = make_envelope(created["session_id"], "message.received", {"text": "hi"})
        record = {"messageId": str(uuid.uuid4()), "body": json.dumps(envelope), "attributes": {}}
        assert container.webhook_dispatcher.handle([record]) == {"batchItemFailures": []}
        with db.connection() as conn:
            row = conn.execute("SELECT status, error FROM webhook_deliveries WHERE event_id = %s",
                               (envelope["id"],)).fetchone()
        assert row["status"] == "succeeded", row
        assert receiver.counts.get("/hook") == 1
        assert [line for line in recording_proxy.lines if f":{receiver.port}" in line] == []
    finally:
        receiver.close()


# -- no module makes its own HTTP client -------------------------------------------------
ALLOWED = {Path("chalicelib/netguard/http.py")}
REQUESTS_CALLS = {"get", "post", "put", "patch", "delete", "head", "options", "request", "Session", "session"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = ast.unparse(func)
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                    func.value.id in ("requests", "httpx", "urllib3") and func.attr in REQUESTS_CALLS | {
                        "PoolManager", "Client", "AsyncClient", "request", "stream"}:
                found.append(f"{path}:{node.lineno}: {name}(...)")
            elif name in ("urllib.request.urlopen", "urlopen", "http.client.HTTPConnection",
                          "http.client.HTTPSConnection", "HTTPConnection", "HTTPSConnection",
                          "requests.sessions.Session", "Session"):
                found.append(f"{path}:{node.lineno}: {name}(...)")
        elif isinstance(node, ast.ImportFrom) and node.module in ("requests", "httpx", "urllib.request",
                                                                   "http.client", "requests.sessions", "urllib3",
                                                                   "urllib3.poolmanager"):
            names = {a.name for a in node.names}
            bad = names & (REQUESTS_CALLS | {"urlopen", "HTTPConnection", "HTTPSConnection", "Client"})
            if node.module in ("urllib3", "urllib3.poolmanager"):
                bad = names & {"PoolManager", "ProxyManager", "request", "proxy_from_url"}
            if bad:
                found.append(f"{path}:{node.lineno}: from {node.module} import {', '.join(sorted(bad))}")
    return found


def test_no_module_builds_its_own_http_client():
    """Every outbound request goes through chalicelib/netguard/http.py (guard, no env
    proxy, deadlines). A new `requests.Session()` or `requests.get(...)` elsewhere fails here."""
    violations = []
    for folder in ("chalicelib", "runner_container"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            relative = path.relative_to(PROJECT_ROOT)
            if relative not in ALLOWED:
                violations += _violations(path)
    assert violations == []


def test_the_scan_would_see_a_violation(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import requests\nfrom requests import Session\n"
                      "s = requests.Session()\nrequests.get('http://x')\nrequests.request('GET', 'u')\n"
                      "from urllib3 import PoolManager\nurllib3.PoolManager()\n")
    assert len(_violations(sample)) == 6
