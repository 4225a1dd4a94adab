"""End to end with the emulator driver: API -> SQS -> runner process -> PostgreSQL -> events queue.

connect -> QR (json, and a PNG that draws the same string) -> scan -> authenticated ->
disconnect -> connect again without a QR (restored from the stored device) -> logout ->
connect needs a QR again; plus pair-phone, commands, stats and session delete with a
live runner.
"""
from __future__ import annotations

import json

import png
import pytest

from chalicelib import qr as qr_render
from tests.conftest import session_headers
from tests.support.runner_harness import (outbox_events, pair_with_emulator, session_row, sole_runner, start_runner,
                                  wait_for)


@pytest.fixture
def runner(stack, db, clean_runners):
    with sole_runner(stack.env, db, "emu-e2e") as process:
        yield process


def _status(api, sid, headers):
    response = api.get(f"/sessions/{sid}/status", headers=headers)
    assert response.status_code == 200, response.body
    return response.json_body


def _wait_status(api, sid, headers, status, timeout=20):
    return wait_for(lambda: (s := _status(api, sid, headers))["status"] == status and s, timeout=timeout,
                    message=f"status {status}")


def _png_modules(data: bytes) -> list[list[bool]]:
    """Decode the PNG and sample one pixel per QR module (box 8 px, border 4 modules)."""
    width, height, rows, info = png.Reader(bytes=data).asRGBA8()
    pixels = [list(row) for row in rows]
    box, border = 8, 4
    size = width // box - 2 * border
    return [[pixels[(border + y) * box + box // 2][((border + x) * box + box // 2) * 4] < 128
             for x in range(size)] for y in range(size)]


def test_connect_scan_disconnect_restore_logout_through_the_whole_stack(api, db, runner, make_session):
    created = make_session(name="e2e")
    sid, headers = created["session_id"], session_headers(created)

    response = api.post(f"/sessions/{sid}/connect", headers=headers)
    assert response.status_code == 202, response.body
    assert response.json_body["status"] == "connecting"
    connect_command = response.json_body["command_id"]

    qr_answer = api.get(f"/sessions/{sid}/qr?wait=15", headers=headers)
    assert qr_answer.status_code == 200, qr_answer.body
    code = qr_answer.json_body["qr_code"]
    assert code.startswith("2@") and len(code.split(",")) == 4  # whatsmeow's ref,noise,identity,adv
    assert qr_answer.json_body["image"].startswith("data:image/png;base64,")
    png_answer = api.get(f"/sessions/{sid}/qr?format=png", headers={**headers, "Accept": "image/png"})
    assert png_answer.status_code == 200
    assert png_answer.headers["Content-Type"] == "image/png"
    assert _png_modules(png_answer.body) == qr_render.module_matrix(code)
    assert _png_modules(png_answer.body) != qr_render.module_matrix(code + "x")
    terminal = api.get(f"/sessions/{sid}/qr?format=terminal", headers=headers)
    assert terminal.status_code == 200 and "█" in terminal.body.decode()

    command = api.get(f"/sessions/{sid}/commands/{connect_command}", headers=headers).json_body
    assert command["status"] == "succeeded" and command["type"] == "connect"

    # the phone scans the code
    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {"phone": "5511999990001"})
    assert status == 200, body
    state = _wait_status(api, sid, headers, "authenticated")
    assert state["connected"] and state["logged_in"]
    assert state["jid"].startswith("5511999990001") and state["runner_id"] == "emu-e2e"
    assert api.get(f"/sessions/{sid}/qr", headers=headers).json_body["code"] == "already_paired"
    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 200  # already connected

    # disconnect keeps the device
    response = api.post(f"/sessions/{sid}/disconnect", headers=headers)
    assert response.status_code == 202
    state = _wait_status(api, sid, headers, "disconnected")
    assert state["jid"].startswith("5511999990001") and not state["logged_in"]
    not_connecting = api.get(f"/sessions/{sid}/qr", headers=headers)
    assert not_connecting.status_code == 409 and not_connecting.json_body["code"] == "not_connecting"

    # connect again: restored from the stored device, no new QR
    qr_events_before = [e for e in outbox_events(db, sid) if e["event"] == "session.qr"]
    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
    _wait_status(api, sid, headers, "authenticated")
    assert [e for e in outbox_events(db, sid) if e["event"] == "session.qr"] == qr_events_before

    # logout unlinks the device
    response = api.post(f"/sessions/{sid}/logout", headers=headers)
    assert response.status_code == 200, response.body
    state = _status(api, sid, headers)
    assert state["status"] == "disconnected" and state["jid"] is None and state["desired_state"] == "disconnected"
    assert api.post(f"/sessions/{sid}/logout", headers=headers).json_body["code"] == "not_paired"

    # and the next connect needs a QR again
    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
    second = api.get(f"/sessions/{sid}/qr?wait=15", headers=headers)
    assert second.status_code == 200 and second.json_body["qr_code"] != code

    events = outbox_events(db, sid)
    names = [e["event"] for e in events]
    expected = ["session.created", "session.connecting", "session.qr", "session.paired", "session.connected",
                "session.disconnected", "session.connecting", "session.connected", "session.logged_out",
                "session.connecting", "session.qr"]
    position = 0
    for name in names:
        if position < len(expected) and name == expected[position]:
            position += 1
    assert position == len(expected), names
    sequences = [e["metadata"]["sequence"] for e in events]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    # every event reached the events queue (SQS took it)
    wait_for(lambda: _all_sent(db, sid), message="events sent to the events queue")


def _all_sent(db, sid):
    with db.connection() as conn:
        return conn.execute("SELECT count(*) AS n FROM event_outbox WHERE session_id = %s AND sent_at IS NULL",
                            (sid,)).fetchone()["n"] == 0


def test_pair_phone_inbound_send_stats_and_drop_reconnect(api, db, runner, make_session, container):
    created = make_session(name="pair")
    sid, headers = created["session_id"], session_headers(created)

    bad = api.post(f"/sessions/{sid}/pairphone", headers=headers, body=json.dumps({"phone": "12ab"}))
    assert bad.status_code == 422 and bad.json_body["details"][0]["field"] == "phone"

    response = api.post(f"/sessions/{sid}/pairphone", headers=headers,
                        body=json.dumps({"phone": "+55 11 99999-0002", "show_push_notification": False}))
    assert response.status_code == 200, response.body
    code = response.json_body["pairing_code"]
    assert len(code) == 9 and code[4] == "-"
    assert _status(api, sid, headers)["status"] == "connecting"

    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {})
    assert status == 200 and body["jid"].startswith("5511999990002"), body
    _wait_status(api, sid, headers, "authenticated")

    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/inbound",
                                   {"from": "5511888880000", "text": "hello zemeow"})
    assert status == 200
    received = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "message.received"])
    assert received[0]["data"]["text"] == "hello zemeow"
    assert received[0]["data"]["from"]["phone"] == "5511888880000"

    row = container.commands.enqueue(sid, "send_message", {"to": "5511777770000", "type": "text", "text": "hi"})
    done = container.commands.await_result(str(row["id"]), 15)
    assert done["status"] == "succeeded", done
    _, outbox = runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")
    assert [m["text"] for m in outbox["messages"]] == ["hi"]
    assert outbox["messages"][0]["message_id"] == done["result"]["message_id"]
    # no receipt arrives by itself (the emulator invents none); the other phone reads it
    assert not [e for e in outbox_events(db, sid) if e["event"] == "message.receipt"]
    status, _ = runner.emulator("POST", f"/emulator/sessions/{sid}/receipt",
                                {"message_ids": [done["result"]["message_id"]], "type": "read"})
    assert status == 200
    receipt = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "message.receipt"])
    assert receipt[0]["data"]["message_ids"] == [done["result"]["message_id"]]
    assert receipt[0]["data"]["type"] == "read" and receipt[0]["data"]["chat"]["phone"] == "5511777770000"

    stats = api.get(f"/sessions/{sid}/stats", headers=headers).json_body
    assert stats["messages_sent"] == 1 and stats["messages_received"] == 1 and stats["reconnects"] == 0
    assert stats["uptime_seconds"] is not None and stats["last_activity"] is not None

    # a network drop: the runner reconnects by itself (backoff) from the stored device
    status, _ = runner.emulator("POST", f"/emulator/sessions/{sid}/drop")
    assert status == 200
    wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.disconnected"])
    _wait_status(api, sid, headers, "authenticated")
    assert api.get(f"/sessions/{sid}/stats", headers=headers).json_body["reconnects"] == 1

    # the metrics endpoint counts what happened
    from tests.support.runner_harness import http_json  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    text = urllib.request.urlopen(f"http://127.0.0.1:{runner.metrics_port}/metrics", timeout=5).read().decode()
    assert 'zemeow_runner_commands_total{outcome="succeeded",type="send_message"} 1.0' in text
    assert "zemeow_runner_reconnects_total 1.0" in text
    assert 'zemeow_runner_sessions{status="authenticated"}' in text
    assert http_json("GET", f"http://127.0.0.1:{runner.metrics_port}/healthz")[0] == 200


def test_delete_logs_the_device_out_through_the_runner(api, db, runner, make_session, admin_headers):
    created = make_session(name="delete me")
    sid = created["session_id"]
    pair_with_emulator(api, runner, created, "5511999990003")

    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    with db.connection() as conn:  # (the session's commands are deleted with it: its events tell)
        device = conn.execute("SELECT 1 FROM emulator_devices WHERE session_id = %s", (sid,)).fetchone()
    events = [(e["event"], e["data"].get("reason")) for e in outbox_events(db, sid)]
    assert events.index(("session.logged_out", "requested")) < events.index(("session.deleted", None))
    assert device is None
    assert session_row(db, sid) is None
    # the runner drops the client of a session that no longer exists
    wait_for(lambda: runner.emulator("GET", f"/emulator/sessions/{sid}")[0] == 404)


def test_qr_timeout_disconnects_with_reason(api, db, stack, clean_runners, make_session):
    with db.connection() as conn:
        conn.execute("UPDATE slot_placements SET runner_id = NULL, next_runner_id = NULL")
    process = start_runner({**stack.env, "QR_CODE_TIMEOUT": "2s"}, "emu-qr-timeout", EMULATOR_QR_ROTATE="500ms")
    try:
        created = make_session(name="qr timeout")
        sid, headers = created["session_id"], session_headers(created)
        assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
        first = api.get(f"/sessions/{sid}/qr?wait=15", headers=headers).json_body["qr_code"]
        # codes rotate as the (emulated) whatsmeow emits them
        wait_for(lambda: (api.get(f"/sessions/{sid}/qr", headers=headers).json_body.get("qr_code")
                          not in (None, first)))
        state = _wait_status(api, sid, headers, "disconnected", timeout=15)
        assert state["last_error"] == "qr_timeout" and state["desired_state"] == "disconnected"
        assert "session.disconnected" in [e["event"] for e in outbox_events(db, sid)]
    finally:
        process.stop()


def test_a_device_gone_from_the_store_means_a_new_pairing_not_a_crash(api, db, runner, make_session):
    created = make_session(name="device gone")
    sid, headers = created["session_id"], session_headers(created)
    pair_with_emulator(api, runner, created, "5511999990004")
    assert api.post(f"/sessions/{sid}/disconnect", headers=headers).status_code == 202
    _wait_status(api, sid, headers, "disconnected")
    with db.connection() as conn:
        conn.execute("DELETE FROM emulator_devices WHERE session_id = %s", (sid,))

    assert api.post(f"/sessions/{sid}/connect", headers=headers).status_code == 202
    gone = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.logged_out"])
    assert gone[0]["data"]["reason"] == "device_missing"
    # the user asked to connect: a fresh pairing starts
    answer = api.get(f"/sessions/{sid}/qr?wait=15", headers=headers)
    assert answer.status_code == 200, answer.body
    assert _status(api, sid, headers)["jid"] is None


@pytest.mark.parametrize("code", ["client_outdated", "temporary_ban", "stream_replaced"])
def test_fatal_refusals_get_distinct_codes_and_stop_retrying(code, api, db, runner, make_session):
    created = make_session(name=f"fatal {code}")
    sid, headers = created["session_id"], session_headers(created)
    pair_with_emulator(api, runner, created, "5511999990005")

    status, body = runner.emulator("POST", f"/emulator/sessions/{sid}/fail", {"code": code})
    assert status == 200, body
    state = _wait_status(api, sid, headers, "error")
    assert state["last_error"] == code and state["desired_state"] == "disconnected"
    error = [e for e in outbox_events(db, sid) if e["event"] == "session.error"][-1]
    assert error["data"]["code"] == code and error["data"]["retry_in_seconds"] is None
    assert state["jid"] is not None  # the device is kept: a later connect may work again


def test_whatsapp_logging_the_device_out_unlinks_it(api, db, runner, make_session):
    created = make_session(name="remote logout")
    sid, headers = created["session_id"], session_headers(created)
    pair_with_emulator(api, runner, created, "5511999990006")

    assert runner.emulator("POST", f"/emulator/sessions/{sid}/fail", {"code": "logged_out"})[0] == 200
    state = _wait_status(api, sid, headers, "disconnected")
    assert state["last_error"] == "logged_out" and state["jid"] is None and state["desired_state"] == "disconnected"
    assert [e for e in outbox_events(db, sid) if e["event"] == "session.logged_out"][-1]["data"]["reason"] == \
        "logged_out"
    # a retryable refusal, by contrast, reconnects by itself
    pair_with_emulator(api, runner, created, "5511999990006")
    assert runner.emulator("POST", f"/emulator/sessions/{sid}/fail", {"code": "service_unavailable"})[0] == 200
    error = wait_for(lambda: [e for e in outbox_events(db, sid) if e["event"] == "session.error"])
    assert error[-1]["data"]["code"] == "service_unavailable" and error[-1]["data"]["retry_in_seconds"] is not None
    wait_for(lambda: len([e for e in outbox_events(db, sid) if e["event"] == "session.connected"]) == 3)
    _wait_status(api, sid, headers, "authenticated")  # backoff, then restored from the device
