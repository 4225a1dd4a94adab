"""Finding 5 (webhook part): URLs and proxies pointing at the stack's own ports are refused,
even when private addresses are allowed (as `make run` and this suite allow them):
the API (SERVER_PORT), the emulator control API (EMULATOR_PORT), the runner's metrics
(METRICS_PORT) and the AWS/LocalStack endpoint (AWS_ENDPOINT_URL's port), on loopback or
any local address. Refused at save time (422) and again at send time by the guard.
"""
from __future__ import annotations

import json
import socket
import uuid
from urllib.parse import urlsplit

import pytest

from chalicelib.events import make_envelope
from chalicelib.netguard.resolve import NetPolicy, Refused
from chalicelib.schemas.sessions import CreateSessionRequest
from tests.conftest import session_headers
from tests.support.sockets import localstack_address


def _ports(settings) -> dict[str, int]:
    return {"SERVER_PORT": settings.server_port, "EMULATOR_PORT": settings.emulator_port,
            "METRICS_PORT": settings.metrics_port, "AWS_ENDPOINT_URL": urlsplit(settings.aws_endpoint_url).port}


@pytest.fixture
def connections(monkeypatch):
    """Connections this process opens to anything but LocalStack (the dispatcher's SQS)."""
    localstack = localstack_address()
    seen: list = []
    real = socket.socket.connect

    def connect(sock, address):
        if tuple(address[:2]) != localstack:
            seen.append(address)
        return real(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


@pytest.mark.parametrize("name", ["SERVER_PORT", "EMULATOR_PORT", "METRICS_PORT", "AWS_ENDPOINT_URL"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "0.0.0.0", "127.0.0.2"])
def test_webhook_urls_to_the_stacks_ports_are_refused_at_save_time(api, admin_headers, settings, name, host):
    assert settings.webhook_allow_private  # the suite allows loopback receivers: this is not why
    port = _ports(settings)[name]
    url = f"http://{host}:{port}/emulator/sessions/beta/scan"
    answer = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "ports", "session_id": f"t-{uuid.uuid4().hex[:10]}", "webhook": {"url": url}}))
    assert answer.status_code == 422, answer.body
    assert answer.json_body["code"] == "webhook_url_refused"
    assert "own services" in answer.json_body["details"][0]["message"]


def test_a_local_interface_address_counts_as_local(settings):
    from chalicelib.netguard.addresses import own_addresses

    policy = NetPolicy.from_settings(settings, allow_private=True)
    for address in own_addresses():
        with pytest.raises(Refused):
            policy.check_address(str(address), settings.server_port)
    policy.check_address("127.0.0.1", settings.server_port + 1 if settings.server_port < 65535 else 1)


def test_proxies_on_the_stacks_ports_are_refused_at_save_time(api, make_session, settings):
    created = make_session()
    for port in _ports(settings).values():
        answer = api.post(f"/sessions/{created['session_id']}/proxy", headers=session_headers(created),
                          body=json.dumps({"type": "http", "host": "127.0.0.1", "port": port}))
        assert answer.status_code == 422 and answer.json_body["code"] == "proxy_address_not_allowed", answer.body


def test_refused_again_at_send_time_before_any_connection(container, settings, db, connections):
    """A URL written before the rule existed (or behind the API's back) is refused by the guard."""
    sid = f"t-{uuid.uuid4().hex[:10]}"
    container.sessions.create(CreateSessionRequest(name="old", session_id=sid))
    url = f"http://localhost:{settings.emulator_port}/emulator/sessions/beta/scan"
    with db.connection() as conn:
        conn.execute("UPDATE sessions SET webhook_url = %s, webhook_secret_enc = %s WHERE session_id = %s",
                     (url, container.secret_box().encrypt("whsec_" + "A" * 44, context=f"webhook:{sid}"), sid))
    envelope = make_envelope(sid, "message.received", {"n": 1})
    record = {"messageId": str(uuid.uuid4()), "body": json.dumps(envelope), "attributes": {}}
    assert container.webhook_dispatcher.handle([record]) == {"batchItemFailures": []}
    with db.connection() as conn:
        row = conn.execute("SELECT status, error FROM webhook_deliveries WHERE event_id = %s",
                           (envelope["id"],)).fetchone()
    assert row["status"] == "failed" and "refused by the SSRF guard" in row["error"], row
    assert str(settings.emulator_port) in row["error"]
    assert connections == []
