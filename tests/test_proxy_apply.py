"""A proxy change reaches a connected session: the runner reconnects it through the new proxy."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.runner_harness import outbox_events, sole_runner, wait_for


@pytest.fixture
def runner(stack, db, clean_runners):
    with sole_runner(stack.env, db, "proxy-apply") as process:
        yield process


def test_a_new_proxy_reconnects_the_session_through_it_without_a_qr(api, db, runner, make_session):
    created = make_session(name="proxied")
    sid, headers = created["session_id"], session_headers(created)
    api.post(f"/sessions/{sid}/connect", headers=headers)
    wait_for(lambda: runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {})[0] == 200, message="scan")
    wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated",
             message="authenticated")
    qr_before = len([e for e in outbox_events(db, sid) if e["event"] == "session.qr"])

    answer = api.post(f"/sessions/{sid}/proxy", headers=headers,
                      body=json.dumps({"type": "socks5", "host": "127.0.0.1", "port": 1080,
                                       "username": "u", "password": "secret-pass"}))
    assert answer.status_code == 200, answer.body

    connecting = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.connecting"
                                   and e["data"].get("reason") == "proxy_changed"], message="reconnect for the proxy")
    assert connecting[-1]["data"]["proxy"] is True and connecting[-1]["data"]["restoring"] is True
    wait_for(lambda: api.get(f"/sessions/{sid}/status", headers=headers).json_body["status"] == "authenticated",
             message="authenticated again")
    assert len([e for e in outbox_events(db, sid) if e["event"] == "session.qr"]) == qr_before  # no new QR
    _, held = runner.emulator("GET", f"/emulator/sessions/{sid}")
    assert held["proxy"] == "socks5://127.0.0.1:1080"  # the client now dials through it
    assert "secret-pass" not in json.dumps(held)
