"""Session behaviour settings end to end: PUT /sessions/{id} -> the sessions row and an
`apply_settings` command -> SQS -> runner -> emulator. The emulator records presences and
read receipts (its activity log) and how many clients it opened for the session, so each
test proves the setting took effect on the live connection without a reconnect."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import (module_runner, outbox_events, pair_with_emulator, wait_for, wait_settings_applied)

ME = "5511999990003"
PEER = "5511912345671"
GROUP = "120363041234567890@g.us"


@pytest.fixture(scope="module")
def runner(stack):
    # a long reconcile interval: the change must arrive through the apply_settings command
    with module_runner(stack.env, "behaviour-e2e", RUNNER_RECONCILE_INTERVAL="5m") as process:
        yield process


@pytest.fixture
def paired(api, runner, make_session):
    created = make_session()
    pair_with_emulator(api, runner, created, ME, push_name="Behaviour")
    return created


def _put(api, created, body, headers=None):
    return api.put(f"/sessions/{created['session_id']}", headers=headers or session_headers(created),
                   body=json.dumps(body))


def _activity(runner, sid, kind):
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/activity")
    assert status == 200, body
    return [a for a in body["activity"] if a["kind"] == kind]


def _opened(runner, sid):
    """Clients the emulator opened for the session (None while it holds none: between a drop and the reconnect)."""
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/connections")
    assert status in (200, 404), body
    return body["opened"] if status == 200 else None


def _received_ids(db, sid):
    return [e["data"]["message_id"] for e in outbox_events(db, sid) if e["event"] == "message.received"]


def test_always_online_reaches_the_live_session_without_a_reconnect(api, db, runner, paired):
    sid = paired["session_id"]
    opened = _opened(runner, sid)
    assert opened == 1
    answer = _put(api, paired, {"always_online": True})
    assert answer.status_code == 200, answer.body
    assert answer.json_body["always_online"] is True and answer.json_body["auto_read"] is False
    assert api.get(f"/sessions/{sid}", headers=session_headers(paired)).json_body["always_online"] is True
    wait_for(lambda: [a["state"] for a in _activity(runner, sid, "presence")] == ["available"],
             message="presence available at the emulator")
    assert _put(api, paired, {"always_online": False}).status_code == 200
    wait_for(lambda: [a["state"] for a in _activity(runner, sid, "presence")] == ["available", "unavailable"],
             message="presence unavailable at the emulator")
    assert _opened(runner, sid) == opened  # the same connection all along
    assert api.get(f"/sessions/{sid}/status", headers=session_headers(paired)).json_body["status"] == "authenticated"


def test_always_online_is_sent_again_after_a_reconnect(api, db, runner, paired):
    sid = paired["session_id"]
    assert _put(api, paired, {"always_online": True}).status_code == 200
    wait_for(lambda: len(_activity(runner, sid, "presence")) == 1, message="presence available")
    assert runner.emulator("POST", f"/emulator/sessions/{sid}/drop")[0] == 200
    wait_for(lambda: _opened(runner, sid) == 2, message="the runner reconnected")
    wait_for(lambda: [a["state"] for a in _activity(runner, sid, "presence")] == ["available", "available"],
             message="presence available again after the reconnect")


def test_ignored_groups_and_statuses_are_neither_stored_nor_emitted(api, db, runner, paired):
    sid = paired["session_id"]
    assert _put(api, paired, {"ignore_groups": True, "ignore_status_broadcast": True}).status_code == 200
    wait_settings_applied(db, sid)
    sent = {}
    for name, body in (("group", {"from": PEER, "text": "in a group", "chat": GROUP}),
                       ("status", {"from": PEER, "text": "my status", "chat": "status@broadcast"}),
                       ("direct", {"from": PEER, "text": "direct"})):
        status, answer = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", body)
        assert status == 200, answer
        sent[name] = answer["message_id"]
    wait_for(lambda: _received_ids(db, sid) == [sent["direct"]], message="only the direct message")
    with db.connection() as conn:
        logged = {r["message_id"] for r in conn.execute(
            "SELECT m.message_id FROM messages m JOIN sessions s ON s.id = m.session_uid "
            "WHERE s.session_id = %s", (sid,)).fetchall()}  # the message store (issue 15)
    assert sent["group"] not in logged and sent["status"] not in logged and sent["direct"] in logged

    # turned off again: group messages are events again, with no reconnect
    assert _put(api, paired, {"ignore_groups": False}).status_code == 200
    wait_settings_applied(db, sid, 2)
    status, answer = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                     {"from": PEER, "text": "again", "chat": GROUP})
    wait_for(lambda: _received_ids(db, sid) == [sent["direct"], answer["message_id"]], message="group message")
    assert _opened(runner, sid) == 1


def test_auto_read_sends_read_receipts_for_received_messages(api, db, runner, paired):
    sid = paired["session_id"]
    status, before = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {"from": PEER, "text": "one"})
    wait_for(lambda: _received_ids(db, sid) == [before["message_id"]], message="first message")
    assert _activity(runner, sid, "read") == []  # auto_read is off by default
    assert _put(api, paired, {"auto_read": True}).status_code == 200
    wait_settings_applied(db, sid)
    status, direct = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {"from": PEER, "text": "two"})
    status, group = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                    {"from": PEER, "text": "three", "chat": GROUP})
    reads = wait_for(lambda: (lambda r: r if len(r) == 2 else None)(_activity(runner, sid, "read")),
                     message="two read receipts")
    assert [(r["chat"], r["message_ids"], r["sender"]) for r in reads] == [
        (f"{PEER}@s.whatsapp.net", [direct["message_id"]], None),
        (GROUP, [group["message_id"]], f"{PEER}@s.whatsapp.net")]
    assert _opened(runner, sid) == 1


@pytest.mark.parametrize("body, field", [
    ({"always_online": "maybe"}, "always_online"),
    ({"ignore_groups": 3}, "ignore_groups"),
    ({"auto_read": [True]}, "auto_read"),
    ({"ignore_status_broadcast": {"on": True}}, "ignore_status_broadcast"),
    ({"always_onlin": True}, "always_onlin"),
])
def test_bad_values_are_422_naming_the_field(api, make_session, body, field):
    created = make_session()
    answer = _put(api, created, body)
    assert answer.status_code == 422, answer.body
    assert answer.json_body["code"] == "validation_failed" and answer.json_body["request_id"]
    assert any(field in json.dumps(detail) for detail in answer.json_body["details"]), answer.json_body


def test_another_sessions_key_cannot_change_the_settings(api, make_session):
    mine, other = make_session(), make_session()
    answer = _put(api, mine, {"always_online": True}, headers=session_headers(other))
    assert answer.status_code == 403 and answer.json_body["code"]
    assert api.get(f"/sessions/{mine['session_id']}", headers=session_headers(mine)).json_body["always_online"] is False


def test_a_session_without_a_runner_keeps_the_settings_for_its_next_login(api, db, make_session):
    created = make_session()
    answer = _put(api, created, {"auto_read": True, "ignore_groups": True})
    assert answer.status_code == 200
    body = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body
    assert (body["auto_read"], body["ignore_groups"], body["always_online"]) == (True, True, False)
    assert [e["data"]["changed"] for e in outbox_events(db, created["session_id"])
            if e["event"] == "session.updated"] == [["auto_read", "ignore_groups"]]
