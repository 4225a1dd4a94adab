"""A proxy change reaches a connected session: the runner reconnects it through the new
proxy. The emulator dials through the proxy as whatsmeow does (to its own listener, which
plays web.whatsapp.com), so these tests run against a live pproxy that logs the tunnel,
and a proxy that refuses or never answers ends the dial as neonize's does (dial_failed)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.support.pproxy_server import pproxy, silent_listener
from tests.support.runner_harness import outbox_events, sole_runner, wait_for

USER, PASSWORD = "zemeow", "secret-pass"


@pytest.fixture
def runner(stack, db, clean_runners):
    with sole_runner(stack.env, db, "proxy-apply") as process:
        yield process


@pytest.fixture
def paired(api, runner, make_session, admin_headers):
    """A paired session; deleted afterwards, so that no later runner keeps dialing its dead proxy."""
    created = make_session(name="proxied")
    sid, headers = created["session_id"], session_headers(created)
    api.post(f"/sessions/{sid}/connect", headers=headers)
    wait_for(lambda: runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {})[0] == 200, message="scan")
    wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated",
             message="authenticated")
    yield created, sid, headers
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204


def _set_proxy(api, sid, headers, port, password=PASSWORD):
    answer = api.post(f"/sessions/{sid}/proxy", headers=headers,
                      body=json.dumps({"type": "socks5", "host": "127.0.0.1", "port": port,
                                       "username": USER, "password": password}))
    assert answer.status_code == 200, answer.body


def test_a_new_proxy_reconnects_the_session_through_it_without_a_qr(api, db, runner, paired, tmp_path):
    created, sid, headers = paired
    qr_before = len([e for e in outbox_events(db, sid) if e["event"] == "session.qr"])
    with pproxy(tmp_path, "socks5", f"{USER}:{PASSWORD}") as proxy:
        assert proxy.tunnels() == []
        _set_proxy(api, sid, headers, proxy.port)

        connecting = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.connecting"
                                       and e["data"].get("reason") == "proxy_changed"],
                              message="reconnect for the proxy")
        assert connecting[-1]["data"]["proxy"] is True and connecting[-1]["data"]["restoring"] is True
        wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated",
                 message="authenticated again")
        # the dial really went through the proxy, to the emulator's "web.whatsapp.com"
        assert proxy.tunnels() == [f"127.0.0.1:{runner.emulator_port}"], proxy.log_path.read_text()
    assert len([e for e in outbox_events(db, sid) if e["event"] == "session.qr"]) == qr_before  # no new QR
    _, held = runner.emulator("GET", f"/emulator/sessions/{sid}")
    assert held["proxy"] == f"socks5://127.0.0.1:{proxy.port}" and held["dialed_through"] == [held["proxy"]]
    assert PASSWORD not in json.dumps(held)


def _dial_failed(api, db, sid, headers):
    errors = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.error"
                               and e["data"].get("code") == "dial_failed"], timeout=40,
                      message="session.error dial_failed")
    status = api.get(f"/sessions/{sid}/status", headers=headers).json_body
    return errors[-1]["data"], status


def test_a_proxy_that_rejects_the_credentials_fails_the_dial(api, db, runner, paired, tmp_path):
    created, sid, headers = paired
    with pproxy(tmp_path, "socks5", f"{USER}:{PASSWORD}") as proxy:
        _set_proxy(api, sid, headers, proxy.port, password="not-the-password")
        error, status = _dial_failed(api, db, sid, headers)
        assert proxy.tunnels() == []  # refused before any tunnel
    assert error["message"].startswith("failed to dial whatsapp web websocket")
    assert "not-the-password" not in json.dumps(error)
    assert status["status"] in ("error", "connecting") and status["status"] != "authenticated"


def test_a_proxy_that_never_answers_fails_the_dial(api, db, runner, paired):
    created, sid, headers = paired
    with silent_listener() as port:
        _set_proxy(api, sid, headers, port)
        error, status = _dial_failed(api, db, sid, headers)
    assert error["message"].startswith("failed to dial whatsapp web websocket")
    assert error["retry_in_seconds"] is not None  # retried with backoff, as a failed neonize dial is
    assert status["status"] != "authenticated"
