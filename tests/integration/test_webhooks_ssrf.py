"""SSRF guard: refused at configuration (422) and at delivery, always before any connection."""
from __future__ import annotations

import dataclasses
import json
import socket
import uuid

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.netguard.resolve import NetPolicy, Refused as UrlRefused
from tests.support.sockets import localstack_address
from tests.support.webhook_receiver import Receiver

REFUSED = ["http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
           "http://192.168.1.10:8080/hook", "http://172.16.0.5/", "http://[::1]/", "http://0.0.0.0/",
           "http://100.64.0.1/", "http://[fd00:ec2::254]/", "http://[::ffff:10.0.0.1]/"]


@pytest.fixture
def container(settings):
    """WEBHOOK_ALLOW_PRIVATE=false for this module (the rest of the suite allows loopback receivers)."""
    instance = Container(dataclasses.replace(settings, webhook_allow_private=False))
    reset_container(instance)
    yield instance
    reset_container(None)


@pytest.fixture
def connections(monkeypatch):
    """Every socket connect in this process, recorded; anything but LocalStack is refused."""
    seen: list[tuple] = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        seen.append(address)
        if tuple(address[:2]) != localstack_address():
            raise AssertionError(f"a connection to {address} was attempted")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def _fake_dns(monkeypatch, names: dict[str, str]):
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("url", REFUSED)
def test_private_loopback_and_metadata_refused_at_configuration(api, admin_headers, connections, url):
    answer = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "ssrf", "session_id": f"t-{uuid.uuid4().hex[:10]}", "webhook": {"url": url}}))
    assert answer.status_code == 422, answer.body
    assert answer.json_body["code"] == "webhook_url_refused"
    assert answer.json_body["details"][0]["field"] == "webhook.url"
    assert [c for c in connections if tuple(c[:2]) != localstack_address()] == []


def test_refused_on_update_and_for_hostnames_resolving_privately(api, admin_headers, make_session, connections,
                                                                  monkeypatch):
    _fake_dns(monkeypatch, {"hooks.internal.test": "10.1.2.3", "meta.test": "169.254.169.254",
                            "public.test": "93.184.216.34"})
    created = make_session()
    path = f"/sessions/{created['session_id']}"
    for url in ("http://hooks.internal.test/x", "https://meta.test/"):
        answer = api.put(path, headers=admin_headers, body=json.dumps({"webhook": {"url": url}}))
        assert answer.status_code == 422 and answer.json_body["code"] == "webhook_url_refused", answer.body
    # a public address passes the check; nothing is sent to it here (configuration only)
    answer = api.put(path, headers=admin_headers, body=json.dumps({"webhook": {"url": "https://public.test/hook"}}))
    assert answer.status_code == 200, answer.body
    assert [c for c in connections if tuple(c[:2]) != localstack_address()] == []


def test_scheme_credentials_and_metadata_even_when_private_allowed(monkeypatch):
    for url in ("ftp://example.com/", "file:///etc/passwd", "gopher://127.0.0.1/"):
        with pytest.raises(UrlRefused):
            NetPolicy(allow_private=True).check_url(url)
    with pytest.raises(UrlRefused):
        NetPolicy(allow_private=True).check_url("http://user:pw@127.0.0.1/")
    with pytest.raises(UrlRefused):
        NetPolicy(allow_private=True).check_url("http://169.254.169.254/")  # metadata: always refused
    NetPolicy(allow_private=True).check_url("http://127.0.0.1:9/")
    NetPolicy(allow_private=False).check_url("http://93.184.216.34/")  # a public IP literal: no DNS, no connection


def test_refused_again_at_delivery_time_before_any_connection(container, settings, db, connections, monkeypatch):
    """DNS can change after configuration: the dispatcher re-checks the address it connects to."""
    receiver = Receiver()
    try:
        # configured while a private address was allowed (as `make run` does) ...
        allowing = Container(settings)
        sessions = {}
        for name, url in (("loop", receiver.url("/never")), ("meta", "http://169.254.169.254/latest"),
                          ("ten", "http://10.0.0.1/"), ("rebind", "http://rebind.test/hook")):
            sid = f"t-{uuid.uuid4().hex[:10]}"
            from chalicelib.schemas.sessions import CreateSessionRequest

            if name in ("loop", "rebind"):
                _fake_dns(monkeypatch, {"rebind.test": "127.0.0.1"})
                allowing.sessions.create(CreateSessionRequest(name=name, session_id=sid, webhook={"url": url}))
            else:  # addresses the configuration check refuses even then: write the row directly
                allowing.sessions.create(CreateSessionRequest(name=name, session_id=sid))
                with db.connection() as conn:
                    conn.execute("UPDATE sessions SET webhook_url = %s, webhook_secret_enc = %s WHERE session_id = %s",
                                 (url, allowing.secret_box().encrypt("whsec_" + "A" * 44, context=f"webhook:{sid}"),
                                  sid))
            sessions[name] = sid
        allowing.close()
        # ... then DNS changes: rebind.test now answers a private address
        _fake_dns(monkeypatch, {"rebind.test": "10.9.8.7"})
        from chalicelib.events import make_envelope

        envelopes = {name: make_envelope(sid, "message.received", {"n": 1}) for name, sid in sessions.items()}
        records = [{"messageId": str(uuid.uuid4()), "body": json.dumps(e), "attributes": {}}
                   for e in envelopes.values()]
        answer = container.webhook_dispatcher.handle(records)
        assert answer == {"batchItemFailures": []}
        with db.connection() as conn:
            rows = {r["session_id"]: r for r in conn.execute(
                "SELECT session_id, status, error, attempt FROM webhook_deliveries WHERE session_id = ANY(%s)",
                (list(sessions.values()),)).fetchall()}
        for name, sid in sessions.items():
            row = rows[sid]
            assert row["status"] == "failed", (name, row)
            assert "refused by the SSRF guard" in row["error"], (name, row)
        assert "10.9.8.7" in rows[sessions["rebind"]]["error"]
        assert receiver.total == 0
        assert [c for c in connections if tuple(c[:2]) != localstack_address()] == []
    finally:
        receiver.close()
