"""Finding 3: the guard's address rules, and the runner checking a proxy before it dials.

IPv6 forms that carry an IPv4 address are judged as that address, for webhooks and
proxies alike; a proxy host name is resolved and every address checked just before the
runner dials, and a refused proxy puts the session in `error` (`proxy_refused`) without
a single connection to it.
"""
from __future__ import annotations

import dataclasses
import json
import socket
import uuid

import pytest

from chalicelib.bootstrap import Container, reset_container
from chalicelib.netguard.addresses import address_problem
from chalicelib.netguard.proxies import dial_url
from chalicelib.netguard.resolve import NetPolicy, Refused
from tests.conftest import session_headers
from tests.support.runner_harness import sole_runner, wait_for
from tests.security.servers import RawServer

# (literal, refused when private is not allowed, refused even when private is allowed)
TABLE = [
    ("169.254.169.254", True, True),
    ("::a9fe:a9fe", True, True),                   # IPv4-compatible form of the metadata address
    ("64:ff9b::a9fe:a9fe", True, True),            # NAT64
    ("::ffff:169.254.169.254", True, True),        # IPv4-mapped
    ("::ffff:0:a9fe:a9fe", True, True),            # IPv4-translated
    ("2002:a9fe:a9fe::", True, True),              # 6to4
    ("fd00:ec2::254", True, True),
    ("100.100.100.200", True, True),
    ("64:ff9b::a00:1", True, False),               # 10.0.0.1 via NAT64
    ("::a00:1", True, False),                      # 10.0.0.1, IPv4-compatible
    ("::ffff:0:a00:1", True, False),               # 10.0.0.1, IPv4-translated
    ("::ffff:10.0.0.1", True, False),
    ("2002:7f00:1::", True, False),                # 127.0.0.1 via 6to4
    ("2002:c0a8:101::1", True, False),             # 192.168.1.1 via 6to4
    ("64:ff9b::7f00:1", True, False),              # 127.0.0.1 via NAT64
    ("127.0.0.1", True, False),
    ("::1", True, False),
    ("::", True, False),
    ("0.0.0.0", True, False),
    ("10.1.2.3", True, False),
    ("172.16.0.5", True, False),
    ("192.168.1.10", True, False),
    ("100.64.0.1", True, False),
    ("fe80::1", True, False),
    ("fc00::1", True, False),
    ("224.0.0.1", True, False),
    ("93.184.216.34", False, False),
    ("64:ff9b::5db8:d822", False, False),          # 93.184.216.34 via NAT64: public
    ("2002:5db8:d822::1", False, False),           # 93.184.216.34 via 6to4: public
    ("2606:2800:220:1:248:1893:25c8:1946", False, False),
]


@pytest.mark.parametrize("literal,refused,refused_always", TABLE)
def test_address_rules(literal, refused, refused_always):
    assert bool(address_problem(literal, allow_private=False)) is refused, literal
    assert bool(address_problem(literal, allow_private=True)) is refused_always, literal


@pytest.mark.parametrize("literal", ["::a9fe:a9fe", "64:ff9b::a9fe:a9fe", "64:ff9b::a00:1", "::a00:1",
                                     "::ffff:0:a00:1", "2002:a9fe:a9fe::"])
def test_embedded_ipv4_forms_are_refused_for_proxies_and_webhooks(literal):
    strict = NetPolicy(allow_private=False)
    with pytest.raises(Refused):
        dial_url(f"socks5://u:p@[{literal}]:1080", strict)
    with pytest.raises(Refused):
        strict.check_url(f"http://[{literal}]/hook")


@pytest.mark.parametrize("literal", ["::a9fe:a9fe", "64:ff9b::a9fe:a9fe"])
def test_metadata_in_ipv6_clothing_is_refused_at_configuration_even_when_private_is_allowed(
        api, admin_headers, literal):
    answer = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "meta6", "session_id": f"t-{uuid.uuid4().hex[:10]}", "webhook": {"url": f"http://[{literal}]/"}}))
    assert answer.status_code == 422 and answer.json_body["code"] == "webhook_url_refused", answer.body
    created = api.post("/sessions", headers=admin_headers, body=json.dumps({"name": "p"})).json_body
    answer = api.post(f"/sessions/{created['session_id']}/proxy", headers=admin_headers,
                      body=json.dumps({"type": "socks5", "host": literal, "port": 1080}))
    assert answer.status_code == 422 and answer.json_body["code"] == "proxy_address_not_allowed", answer.body


def test_a_proxy_name_resolving_to_loopback_is_refused_when_private_is_not_allowed():
    """`localhost` stands for any name (e.g. `vm` in /etc/hosts) that resolves to loopback."""
    with pytest.raises(Refused) as info:
        dial_url("http://zuser:zsecret@localhost:3128", NetPolicy(allow_private=False))
    assert "loopback" in info.value.message and "zsecret" not in info.value.message
    # allowed: the dialler gets the checked address, never the name to look up again
    assert dial_url("http://zuser:zsecret@localhost:3128", NetPolicy(allow_private=True)) in (
        "http://zuser:zsecret@127.0.0.1:3128", "http://zuser:zsecret@[::1]:3128")


def test_the_dialled_address_is_the_checked_one():
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 1080))],
                    [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 1080))]])
    policy = NetPolicy(allow_private=False, resolver=lambda host, port: next(answers))
    assert dial_url("socks5://proxy.example:1080", policy) == "socks5://93.184.216.34:1080"
    with pytest.raises(Refused):  # the same name, answering differently a moment later
        dial_url("socks5://proxy.example:1080", policy)


@pytest.fixture
def strict_proxy_runner(stack, db, clean_runners):
    """A runner with PROXY_ALLOW_PRIVATE=false (the API of the suite allows loopback)."""
    with sole_runner(stack.env, db, "strict-proxy", PROXY_ALLOW_PRIVATE="false") as process:
        yield process


def test_the_runner_refuses_a_loopback_proxy_before_dialing(api, make_session, strict_proxy_runner):
    listener = RawServer(lambda conn: conn.close())
    try:
        created = make_session(name="proxy via loopback name", proxy={
            "type": "http", "host": "localhost", "port": listener.port, "username": "zuser",
            "password": "zsecret-pw"})
        sid, headers = created["session_id"], session_headers(created)
        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        state = wait_for(lambda: (s := api.get(f"/sessions/{sid}/status", headers=headers).json_body)
                         ["status"] == "error" and s, timeout=30, message="status error")
        assert state["last_error"] == "proxy_refused"
        assert "loopback" in state["status_reason"] and "zsecret-pw" not in json.dumps(state)
        _, held = strict_proxy_runner.emulator("GET", f"/emulator/sessions/{sid}")
        assert not held.get("proxy")  # no client was built with the proxy
        assert listener.connections == 0
    finally:
        listener.close()


def test_save_time_uses_the_proxy_policy(settings, api, make_session):
    """PROXY_ALLOW_PRIVATE=false: a loopback proxy is a clear 422 when saved (kinder than a
    runner error later)."""
    container = Container(dataclasses.replace(settings, proxy_allow_private=False))
    reset_container(container)
    try:
        created = make_session()
        answer = api.post(f"/sessions/{created['session_id']}/proxy", headers=session_headers(created),
                          body=json.dumps({"type": "http", "host": "localhost", "port": 3128}))
        assert answer.status_code == 422 and answer.json_body["code"] == "proxy_address_not_allowed", answer.body
    finally:
        reset_container(None)
