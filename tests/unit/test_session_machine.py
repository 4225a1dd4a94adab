"""Every transition of the session state diagram, on the pure machine (no I/O)."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from runner_container import machine as m
from runner_container.machine import Backoff, SessionState, Tuning

from tests.unit.fakes import session_row

TUNING = Tuning(qr_code_timeout=60.0, backoff=Backoff(1.0, 60.0))
WALL = datetime(2026, 11, 30, tzinfo=timezone.utc)


def run(state: SessionState, event: m.Input) -> tuple[SessionState, list[m.Effect]]:
    return m.step(state, event, TUNING)


def writes(effects: list[m.Effect]) -> list:
    return [effect.change for effect in effects if isinstance(effect, m.Write)]


def kinds(effects: list[m.Effect]) -> list[str]:
    return [type(effect).__name__ for effect in effects]


def connecting(**fields) -> SessionState:
    return SessionState(status="connecting", active=True, **fields)


def test_disconnected_connects_and_dials():
    state, effects = run(SessionState(), m.StartConnect("requested", session_row(), True, m.ProxyPlan()))
    assert kinds(effects) == ["DropClient", "OpenClient", "Write", "Dial"]
    assert state.status == "connecting" and state.active and not state.logged_in
    change = writes(effects)[0]
    assert change.event == "session.connecting"
    assert change.data == {"reason": "requested", "attempt": 0, "restoring": False, "proxy": False}


def test_a_stored_device_restores_and_logs_in():
    row = session_row(jid="5511@s.whatsapp.net")
    state, effects = run(SessionState(), m.StartConnect("restore", row, True, m.ProxyPlan()))
    assert effects[1] == m.OpenClient("5511@s.whatsapp.net", None)
    assert writes(effects)[0].data["restoring"] is True
    state, effects = run(state, m.DriverEvent("connected", {"jid": "5511@s.whatsapp.net"}, 1.0, WALL))
    assert state.status == "authenticated" and state.logged_in and state.attempt == 0
    assert writes(effects)[0].event == "session.connected" and isinstance(effects[-1], m.FlushDeferred)


def test_qr_codes_arm_the_timeout_once_and_pairing_clears_it():
    state, effects = run(connecting(), m.DriverEvent("qr", {"code": "2@abc"}, 100.0, WALL))
    assert state.qr_deadline == 160.0 and state.qr_seen
    change = writes(effects)[0]
    assert change.event == "session.qr" and change.qr_shown
    assert change.runtime["qr_expires_at"] == WALL.replace(minute=1)  # the first code lives 60 s
    state, effects = run(state, m.DriverEvent("qr", {"code": "2@def"}, 130.0, WALL))
    assert state.qr_deadline == 160.0  # not pushed back by the next code
    assert (writes(effects)[0].runtime["qr_expires_at"] - WALL).total_seconds() == 20.0
    state, effects = run(state, m.DriverEvent("paired", {"jid": "5511@s.whatsapp.net"}, 140.0, WALL))
    assert state.qr_deadline is None and state.jid == "5511@s.whatsapp.net"
    assert writes(effects)[0].event == "session.paired"


def test_qr_timeout_without_a_scan_disconnects():
    state = connecting(qr_deadline=160.0, qr_seen=True)
    same, effects = run(state, m.Tick(159.0))
    assert same == state and effects == []
    state, effects = run(state, m.Tick(160.0))
    assert state.status == "disconnected" and not state.active and state.qr_deadline is None
    change = writes(effects)[0]
    assert (change.event, change.reason, change.desired) == ("session.disconnected", "qr_timeout", "disconnected")
    assert m.FailDeferred("qr_timeout", "nobody scanned the QR code") in effects


def test_a_dial_failure_is_an_error_retried_with_backoff():
    row = session_row()
    state, effects = run(connecting(), m.Failed("dial_failed", "no route", True, 10.0, 0.5, row))
    assert state.status == "error" and state.attempt == 1 and state.retry_at == 10.0 + 0.75
    change = writes(effects)[0]
    assert change.data == {"code": "dial_failed", "message": "no route", "retry_in_seconds": 0.75, "attempt": 1}
    assert change.desired is None and m.Count("errors", "dial_failed") in effects
    assert not any(isinstance(effect, m.FailDeferred) for effect in effects)  # they wait for the retry
    # error --backoff--> connecting
    assert m.needs_row(state, m.Tick(10.75)) and not m.needs_row(state, m.Tick(10.7))
    state, effects = run(state, m.Tick(10.75, row=row))
    assert state.retry_at is None
    assert effects[-3:] == [m.Count("reconnects"), effects[-2], m.Connect("reconnect")]
    assert writes(effects)[0].counters == ("reconnects",)


def test_no_retry_without_auto_reconnect_or_when_disconnect_is_wanted():
    for row in (session_row(auto_reconnect=False), session_row(desired_state="disconnected")):
        state, effects = run(connecting(), m.Failed("dial_failed", "no route", True, 10.0, 0.5, row))
        assert state.retry_at is None and state.status == "error"
        assert isinstance(effects[-1], m.FailDeferred)
    state, effects = run(SessionState(status="error", retry_at=5.0), m.Tick(5.0, row=session_row(
        desired_state="disconnected")))
    assert state.retry_at is None and effects == []


@pytest.mark.parametrize("code", ["client_outdated", "stream_replaced", "temporary_ban", "bad_user_agent"])
def test_fatal_codes_stop_without_retry(code):
    state, effects = run(connecting(), m.DriverEvent("fatal", {"code": code, "message": "no"}, 1.0, WALL))
    assert state.status == "error" and state.retry_at is None and not state.active
    change = writes(effects)[0]
    assert change.last_error == code and change.desired == "disconnected"
    assert change.data["retry_in_seconds"] is None
    assert effects[-1] == m.FailDeferred(code, "no")


def test_a_network_drop_reconnects_when_wanted():
    state = SessionState(status="authenticated", active=True, logged_in=True, jid="j")
    dropped, effects = run(state, m.DriverEvent("disconnected", {}, 50.0, WALL, 0.0, session_row()))
    assert dropped.status == "disconnected" and dropped.attempt == 1 and dropped.retry_at == 50.5
    assert writes(effects)[0].data == {"reason": "network", "will_reconnect": True}
    dropped, effects = run(state, m.DriverEvent("disconnected", {"reason": "stream_error"}, 50.0, WALL, 0.0,
                                                session_row(auto_reconnect=False)))
    assert dropped.retry_at is None and writes(effects)[0].data == {"reason": "stream_error",
                                                                   "will_reconnect": False}
    assert effects[-1] == m.FailDeferred("not_connected", "the connection dropped and auto_reconnect is off")


def test_disconnect_from_any_state():
    for state in (connecting(), SessionState(status="authenticated", active=True, logged_in=True),
                  SessionState(status="error", retry_at=3.0)):
        after, effects = run(state, m.Requested("disconnect"))
        assert after.status == "disconnected" and after.retry_at is None and not after.active
        assert kinds(effects) == ["DropClient", "Write"] and writes(effects)[0].reason == "requested"


def test_logout_by_the_user_and_by_whatsapp_forget_the_device():
    state = SessionState(status="authenticated", active=True, logged_in=True, jid="j")
    after, effects = run(state, m.Requested("logout", jid="j"))
    assert effects[1] == m.ForgetDevice("j")
    change = writes(effects)[0]
    assert (change.event, change.jid, change.desired) == ("session.logged_out", None, "disconnected")
    after, effects = run(state, m.DriverEvent("logged_out", {"reason": "unlinked"}, 1.0, WALL))
    assert after.status == "disconnected" and effects[1] == m.ForgetDevice("j")
    assert writes(effects)[0].last_error == "unlinked"
    assert effects[-1] == m.FailDeferred("logged_out", "WhatsApp logged the device out")


def test_a_missing_device_logs_out_and_a_requested_connect_pairs_anew():
    row = session_row(jid="gone@s.whatsapp.net")
    state, effects = run(SessionState(), m.StartConnect("restore", row, False, m.ProxyPlan()))
    assert kinds(effects) == ["DropClient", "Write", "FailDeferred"]
    assert writes(effects)[0].desired == "disconnected" and state.status == "disconnected"
    assert not m.dials("restore", row, False)  # so its proxy is not even looked up
    assert m.dials("requested", row, False) and m.dials("restore", row, True)
    state, effects = run(SessionState(), m.StartConnect("requested", row, False, m.ProxyPlan()))
    assert writes(effects)[0].desired is None
    assert m.OpenClient(None, None) in effects and state.status == "connecting"


def test_proxy_problems_at_connect():
    row = session_row()
    for problem, retried in ((("proxy_refused", "not allowed", False), False),
                             (("proxy_invalid", "cannot decrypt", False), False),
                             (("proxy_dns_failed", "no such host", True), True)):
        state, effects = run(SessionState(), m.StartConnect("restore", row, True, m.ProxyPlan(problem=problem),
                                                             now=5.0))
        assert state.status == "error" and (state.retry_at is not None) == retried
        assert not any(isinstance(effect, m.OpenClient) for effect in effects)
        assert writes(effects)[0].last_error == problem[0]


def test_a_changed_proxy_reconnects_through_the_new_one():
    state = SessionState(status="authenticated", active=True, logged_in=True, proxy_url="http://a:1", attempt=2)
    row = session_row()
    same, effects = run(state, m.Reconcile(row, "http://a:1"))
    assert same == state and effects == []
    after, effects = run(state, m.Reconcile(row, "socks5://b:2"))
    assert effects == [m.DropClient(), m.Connect("proxy_changed")] and after.attempt == 0
    _, effects = run(state, m.Reconcile(row, None, proxy_unreadable=True))
    assert effects[-1] == m.Connect("proxy_changed")
    state, effects = run(SessionState(), m.StartConnect("proxy_changed", row, True,
                                                        m.ProxyPlan("socks5://b:2", "socks5://10.0.0.9:2")))
    assert effects[1] == m.OpenClient(None, "socks5://10.0.0.9:2") and state.proxy_url == "socks5://b:2"
    assert writes(effects)[0].data["proxy"] is True


def test_reconcile_restores_or_corrects_the_state():
    _, effects = run(SessionState(), m.Reconcile(session_row()))
    assert effects == [m.Connect("restore")]
    _, effects = run(SessionState(status="error", retry_at=9.0), m.Reconcile(session_row()))
    assert effects == []  # the backoff runs its course
    state, effects = run(connecting(), m.Reconcile(session_row(desired_state="disconnected")))
    assert writes(effects)[0].reason == "desired_state" and state.status == "disconnected"
    _, effects = run(SessionState(), m.Reconcile(session_row(desired_state="disconnected", status="error")))
    assert effects == []  # a fatal error stays visible


def test_connect_and_pair_requests_start_only_when_idle():
    assert run(connecting(), m.Requested("connect")) == (connecting(), [])
    state, effects = run(SessionState(attempt=4), m.Requested("pair_phone"))
    assert state.attempt == 0 and effects == [m.Connect("pair_phone")]


def test_a_graceful_stop_records_the_handover_only_when_active():
    _, effects = run(SessionState(status="authenticated", active=True, logged_in=True),
                     m.Requested("stop", graceful=True))
    assert writes(effects)[0].reason == "runner_handover"
    assert run(SessionState(), m.Requested("stop", graceful=True))[1] == [m.DropClient()]
    assert run(connecting(), m.Requested("stop", graceful=False))[1] == [m.DropClient()]


def test_backoff_is_exponential_with_equal_jitter_and_capped():
    backoff = Backoff(1.0, 60.0)
    assert [backoff.delay(n, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff.delay(n, 1.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert backoff.delay(20, 0.0) == 30.0 and backoff.delay(20, 0.999) < 60.0


def test_the_machine_never_mutates_its_input_state():
    state = connecting()
    frozen = replace(state)
    run(state, m.DriverEvent("connected", {"jid": "j"}, 1.0, WALL))
    assert state == frozen
