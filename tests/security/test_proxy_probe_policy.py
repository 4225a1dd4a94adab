"""Finding 4: the proxy probe is no port scanner and no banner oracle.

Same private-address policy as webhooks (PROXY_ALLOW_PRIVATE, default off, refused in
production), metadata always refused, answers in our own words (never the peer's
bytes), and a per-session rate limit.
"""
from __future__ import annotations

import dataclasses
import json
import socket

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.config import ConfigError, load_settings
from chalicelib.netguard.resolve import NetPolicy
from chalicelib.services.proxy import ProxyConfig, ProxyProber
from devstack.processes import free_port
from tests.conftest import session_headers
from tests.security.servers import RawServer

BANNER = "secret-build-42"


def _container(settings, **changes):
    container = Container(dataclasses.replace(settings, **changes))
    reset_container(container)
    return container


@pytest.fixture
def strict(settings, api):
    """PROXY_ALLOW_PRIVATE left at its default (false)."""
    yield _container(settings, proxy_allow_private=False)
    reset_container(None)


def _probe(api, created, proxy, **extra):
    return api.post(f"/sessions/{created['session_id']}/proxy/test", headers=session_headers(created),
                    body=json.dumps({"proxy": proxy, "target_host": "127.0.0.1", "target_port": 443,
                                     "timeout": 2, **extra}))


def test_private_proxies_are_refused_by_default(strict, api, make_session):
    listener = RawServer(lambda conn: conn.close())
    try:
        created = make_session()
        answer = _probe(api, created, {"type": "http", "host": "127.0.0.1", "port": listener.port})
        assert answer.status_code == 200, answer.body
        assert answer.json_body["error"]["code"] == "proxy_address_not_allowed", answer.json_body
        assert listener.connections == 0  # refused before any packet
    finally:
        listener.close()


def test_proxy_allow_private_is_refused_in_production():
    with pytest.raises(ConfigError) as info:
        load_settings({"ENVIRONMENT": "production", "PROXY_ALLOW_PRIVATE": "true"})
    assert "PROXY_ALLOW_PRIVATE" in str(info.value)
    assert load_settings({}).proxy_allow_private is False


@pytest.mark.parametrize("host", ["169.254.169.254", "::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "fd00:ec2::254"])
def test_metadata_is_refused_even_when_private_proxies_are_allowed(monkeypatch, host):
    def no_connect(self, address):
        raise AssertionError(f"connected to {address}")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    prober = ProxyProber(policy=NetPolicy(allow_private=True))
    result = prober.probe(ProxyConfig("http", host, 3128), "web.whatsapp.com", 443, 2)
    assert result["error"]["code"] == "proxy_address_not_allowed", result


def _banner(data: bytes):
    def serve(conn):
        conn.recv(4096)
        conn.sendall(data)
        conn.close()
    return serve


@pytest.mark.parametrize("kind,data", [
    ("http", f"HTTP/1.1 {BANNER}\r\n\r\n".encode()),
    ("http", f"{BANNER}\r\n\r\n".encode()),
    ("http", f"HTTP/1.1 418 {BANNER}\r\nServer: {BANNER}\r\n\r\n".encode()),
    ("http", f"HTTP/1.1 502 {BANNER}\r\n\r\n".encode()),
    ("http", f"SSH-2.0-OpenSSH_{BANNER}\r\n".encode()),
    ("socks5", f"SSH-2.0-OpenSSH_{BANNER}\r\n".encode()),
    ("socks5", b"\x05\x00\x05\x07\x00" + BANNER.encode()),
])
def test_answers_never_carry_the_peers_bytes(api, make_session, kind, data):
    server = RawServer(_banner(data))
    try:
        created = make_session()
        answer = _probe(api, created, {"type": kind, "host": "127.0.0.1", "port": server.port})
        assert answer.status_code == 200, answer.body
        result = answer.json_body
        assert result["ok"] is False and result["error"]["code"], result
        assert BANNER not in json.dumps(result), result
        assert "OpenSSH" not in json.dumps(result), result
    finally:
        server.close()


def test_the_probe_is_rate_limited_per_session(settings, api, make_session):
    _container(settings, proxy_test_rate_limit=(2, 60.0))
    try:
        first, second = make_session(), make_session()
        closed = {"type": "http", "host": "127.0.0.1", "port": free_port()}
        for _ in range(2):
            assert _probe(api, first, closed).status_code == 200
        limited = _probe(api, first, closed)
        assert limited.status_code == 429, limited.body
        assert limited.json_body["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert "PROXY_TEST_RATE_LIMIT" in limited.json_body["message"]
        assert _probe(api, second, closed).status_code == 200  # another session has its own bucket
    finally:
        reset_container(None)


def test_the_rate_limit_setting_names_itself():
    with pytest.raises(ConfigError) as info:
        load_settings({"PROXY_TEST_RATE_LIMIT": "lots"})
    assert "PROXY_TEST_RATE_LIMIT" in str(info.value)
    assert load_settings({}).proxy_test_rate_limit == (20, 60.0)


def test_saving_a_metadata_proxy_is_refused_even_when_private_is_allowed(api, make_session):
    created = make_session()
    for host in ("169.254.169.254", "::a9fe:a9fe"):
        answer = api.post(f"/sessions/{created['session_id']}/proxy", headers=session_headers(created),
                          body=json.dumps({"type": "http", "host": host, "port": 3128}))
        assert answer.status_code == 422 and answer.json_body["code"] == "proxy_address_not_allowed", answer.body
        assert answer.json_body["details"][0]["field"] == "host"
