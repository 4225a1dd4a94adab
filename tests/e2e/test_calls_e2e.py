"""Calls end to end: PUT /sessions/{id} {reject_calls, reject_call_message} -> runner ->
emulator. The emulator plays the caller (`POST /emulator/sessions/{id}/call`) and records
the rejection in its activity log; the events are read back from the session's outbox."""
from __future__ import annotations

import json

import pytest

from tests.conftest import session_headers
from tests.support.runner_harness import (module_runner, outbox_events, pair_with_emulator, wait_for, wait_settings_applied)

ME = "5511999990004"
CALLER = "5511912345672"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "calls-e2e", RUNNER_RECONCILE_INTERVAL="5m") as process:
        yield process


@pytest.fixture
def paired(api, runner, make_session):
    created = make_session()
    pair_with_emulator(api, runner, created, ME, push_name="Calls")
    return created


def _put(api, created, body, headers=None):
    return api.put(f"/sessions/{created['session_id']}", headers=headers or session_headers(created),
                   body=json.dumps(body))


def _call(runner, sid, call_id):
    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/call", {"from": CALLER, "call_id": call_id})
    assert status == 200 and body["call_id"] == call_id, body
    return call_id


def _rejections(runner, sid):
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/activity")
    assert status == 200, body
    return [(a["caller"], a["call_id"]) for a in body["activity"] if a["kind"] == "reject_call"]


def _events(db, sid, *names):
    return [e for e in outbox_events(db, sid) if e["event"] in names]


def test_a_call_is_rejected_and_the_caller_gets_the_text(api, db, runner, paired):
    sid = paired["session_id"]
    answer = _put(api, paired, {"reject_calls": True, "reject_call_message": "  Calls are not answered here.  "})
    assert answer.status_code == 200, answer.body
    assert (answer.json_body["reject_calls"], answer.json_body["reject_call_message"]) == (
        True, "Calls are not answered here.")
    wait_settings_applied(db, sid)
    _call(runner, sid, "CALLAAA1")
    events = wait_for(lambda: (lambda e: e if len(e) == 3 else None)(
        _events(db, sid, "call.offer", "call.rejected", "message.sent")), message="offer, text, rejection")
    assert [e["event"] for e in events] == ["call.offer", "message.sent", "call.rejected"]
    offer, text, rejected = (e["data"] for e in events)
    assert offer["call_id"] == "CALLAAA1" and offer["from"]["phone"] == CALLER
    assert (text["to"], text["text"]) == (f"{CALLER}@s.whatsapp.net", "Calls are not answered here.")
    assert rejected == {**rejected, "call_id": "CALLAAA1", "message_sent": True, "message_id": text["message_id"]}
    assert rejected["from"]["phone"] == CALLER
    assert _rejections(runner, sid) == [(f"{CALLER}@s.whatsapp.net", "CALLAAA1")]
    status, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    assert [(m["to"], m["text"]) for m in outbox["messages"]] == [
        (f"{CALLER}@s.whatsapp.net", "Calls are not answered here.")]

    # the text cleared (null): the next call is rejected silently
    assert _put(api, paired, {"reject_call_message": None}).json_body["reject_call_message"] is None
    wait_settings_applied(db, sid, 2)
    _call(runner, sid, "CALLAAA2")
    wait_for(lambda: len(_events(db, sid, "call.rejected")) == 2, message="second rejection")
    assert _events(db, sid, "call.rejected")[-1]["data"]["message_sent"] is False
    assert len(_events(db, sid, "message.sent")) == 1
    assert _rejections(runner, sid)[-1] == (f"{CALLER}@s.whatsapp.net", "CALLAAA2")


def test_without_reject_calls_a_call_is_only_reported(api, db, runner, paired):
    sid = paired["session_id"]
    _call(runner, sid, "CALLBBB1")
    status, marker = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound", {"from": CALLER, "text": "after"})
    # the actor handles a session's events in order: once the message is written, the call was handled
    wait_for(lambda: _events(db, sid, "message.received"), message="the message after the call")
    assert [e["event"] for e in _events(db, sid, "call.offer", "call.rejected")] == ["call.offer"]
    assert _rejections(runner, sid) == []


def test_the_emulator_refuses_a_bad_caller(runner, paired):
    status, body = runner.emulator("POST", f"/emulator/sessions/{paired['session_id']}/call", {"from": "x"})
    assert status == 422 and body["code"] == "validation_failed"


@pytest.mark.parametrize("body, field", [
    ({"reject_calls": "sometimes"}, "reject_calls"),
    ({"reject_call_message": ""}, "reject_call_message"),
    ({"reject_call_message": "   "}, "reject_call_message"),
    ({"reject_call_message": "x" * 4097}, "reject_call_message"),
    ({"reject_call_message": 12}, "reject_call_message"),
    ({"reject_call_message": "a\u0000b"}, "reject_call_message"),
])
def test_bad_values_are_422_naming_the_field(api, make_session, body, field):
    answer = _put(api, make_session(), body)
    assert answer.status_code == 422, answer.body
    assert answer.json_body["code"] == "validation_failed" and answer.json_body["request_id"]
    assert field in json.dumps(answer.json_body["details"]), answer.json_body


def test_another_sessions_key_cannot_turn_call_rejection_on(api, make_session):
    mine, other = make_session(), make_session()
    answer = _put(api, mine, {"reject_calls": True}, headers=session_headers(other))
    assert answer.status_code == 403 and answer.json_body["code"]
    assert api.get(f"/sessions/{mine['session_id']}", headers=session_headers(mine)).json_body["reject_calls"] is False
