"""Send pacing end to end: PUT /sessions/{id} {send_rate, typing_simulation} -> runner ->
emulator. The API answers 202 at once; the emulator's timestamps (`received_at` of each
message, `at` of each activity) show the pace the sends reached WhatsApp at. Bounds are
tolerant: this checks a rate, not a timing race."""
from __future__ import annotations

import json
import time

import pytest

from runner_container.pacing import typing_seconds
from tests.conftest import session_headers
from tests.support.runner_harness import module_runner, pair_with_emulator, wait_for, wait_settings_applied

ME = "5511999990005"
PEER = "5511912345673"


@pytest.fixture(scope="module")
def runner(stack):
    with module_runner(stack.env, "pacing-e2e") as process:
        yield process


@pytest.fixture
def paired(api, runner, make_session):
    created = make_session()
    pair_with_emulator(api, runner, created, ME, push_name="Pacing")
    return created


def _put(api, created, body, headers=None):
    return api.put(f"/sessions/{created['session_id']}", headers=headers or session_headers(created),
                   body=json.dumps(body))


def _send(api, created, text):
    answer = api.post(f"/sessions/{created['session_id']}/messages", headers=session_headers(created),
                      body=json.dumps({"to": PEER, "type": "text", "text": text}))
    assert answer.status_code == 202, answer.body
    return answer.json_body["command_id"]


def _outbox(runner, sid):
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    assert status == 200, body
    return body["messages"]


def _statuses(db, command_ids):
    with db.connection() as conn:
        rows = conn.execute("SELECT id::text, status FROM commands WHERE id = ANY(%s::uuid[])",
                            (command_ids,)).fetchall()
    return {r["id"]: r["status"] for r in rows}


def test_thirty_sends_at_sixty_a_minute_take_about_thirty_seconds_in_order_none_lost(api, db, runner, paired):
    sid = paired["session_id"]
    assert _put(api, paired, {"send_rate": 60}).json_body["send_rate"] == 60
    wait_settings_applied(db, sid)
    texts = [f"bulk {i:02d}" for i in range(30)]
    posted = time.monotonic()
    ids = [_send(api, paired, text) for text in texts]
    posting = time.monotonic() - posted  # every POST answered 202 without waiting for its slot
    messages = wait_for(lambda: (lambda m: m if len(m) >= 30 else None)(_outbox(runner, sid)), timeout=90,
                        interval=0.5, message="30 messages at the emulator")
    assert [m["text"] for m in messages] == texts  # in order, none lost, none twice
    stamps = [m["received_at"] for m in messages]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    span = stamps[-1] - stamps[0]
    print(f"posted 30 in {posting:.2f}s; span {span:.2f}s; gaps min {min(gaps):.3f}s max {max(gaps):.3f}s")
    # the pace counts from each hand-over to the driver: a gap is short of the interval only by the
    # jitter between hand-over and the emulator's clock read (milliseconds), never by a burst
    assert min(gaps) >= 0.9, gaps
    assert 29 * 0.98 <= span <= 29 * 1.0 + 15, span  # about 30 s: the rate, not a stall
    assert posting < span / 2  # the API did not wait for the pace
    wait_for(lambda: set(_statuses(db, ids).values()) == {"succeeded"}, message="every command succeeded")


def test_typing_shows_composing_before_each_text_for_a_time_proportional_to_its_length(api, db, runner, paired):
    sid = paired["session_id"]
    assert _put(api, paired, {"typing_simulation": True}).json_body["typing_simulation"] is True
    wait_settings_applied(db, sid)
    texts = ["hi", "x" * 40, "y" * 300]
    for text in texts:
        _send(api, paired, text)
    wait_for(lambda: len(_outbox(runner, sid)) == 3, timeout=30, message="three messages")
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/activity")
    activity = [a for a in body["activity"] if a["kind"] in ("presence", "message")]
    assert [(a["kind"], a.get("state"), a.get("chat") or a.get("to")) for a in activity] == [
        ("presence", "composing", f"{PEER}@s.whatsapp.net"), ("message", None, f"{PEER}@s.whatsapp.net")] * 3
    for index, text in enumerate(texts):
        typed = activity[2 * index + 1]["at"] - activity[2 * index]["at"]
        assert typed >= typing_seconds(text) * 0.9, (text[:5], typed)
        assert typed <= typing_seconds(text) + 3.0, (text[:5], typed)


def test_a_rate_change_reaches_the_waiting_sends_without_a_reconnect(api, db, runner, paired):
    sid = paired["session_id"]
    assert _put(api, paired, {"send_rate": 1}).status_code == 200  # one a minute
    wait_settings_applied(db, sid)
    ids = [_send(api, paired, f"slow {i}") for i in range(4)]
    wait_for(lambda: len(_outbox(runner, sid)) == 1, message="the first send")
    # claimed and waiting for their slot (the row carries them, their queue messages are gone)
    wait_for(lambda: set(_statuses(db, ids[1:]).values()) == {"running"}, message="three sends waiting")
    time.sleep(1.0)  # not a synchronisation: a second in which a one-a-minute pace must send nothing more
    assert len(_outbox(runner, sid)) == 1
    answer = _put(api, paired, {"send_rate": None})
    assert answer.status_code == 200 and answer.json_body["send_rate"] is None
    wait_for(lambda: len(_outbox(runner, sid)) == 4, timeout=15, message="the rest at once")
    assert [m["text"] for m in _outbox(runner, sid)] == [f"slow {i}" for i in range(4)]
    status, body = runner.emulator("GET", f"/emulator/sessions/{sid}/connections")
    assert body["opened"] == 1


@pytest.mark.parametrize("body, field", [
    ({"send_rate": 0}, "send_rate"),
    ({"send_rate": 601}, "send_rate"),
    ({"send_rate": -5}, "send_rate"),
    ({"send_rate": "60"}, "send_rate"),
    ({"send_rate": 1.5}, "send_rate"),
    ({"send_rate": True}, "send_rate"),
    ({"typing_simulation": "fast"}, "typing_simulation"),
])
def test_bad_values_are_422_naming_the_field(api, make_session, body, field):
    answer = _put(api, make_session(), body)
    assert answer.status_code == 422, answer.body
    assert answer.json_body["code"] == "validation_failed" and answer.json_body["request_id"]
    assert field in json.dumps(answer.json_body["details"]), answer.json_body


def test_another_sessions_key_cannot_change_the_pace(api, make_session):
    mine, other = make_session(), make_session()
    answer = _put(api, mine, {"send_rate": 600}, headers=session_headers(other))
    assert answer.status_code == 403 and answer.json_body["code"]
    assert api.get(f"/sessions/{mine['session_id']}", headers=session_headers(mine)).json_body["send_rate"] is None
