"""The session state machine, as a pure function: `step(state, input) -> (state, effects)`.

    disconnected --connect--> connecting --QR scan / pair code--> authenticated
    connecting --stored device logs in--> authenticated
    connecting --dial failure--> error --backoff--> connecting
    authenticated --network drop--> disconnected --backoff--> connecting
    any --disconnect--> disconnected      any --logout / LoggedOut--> disconnected (device gone)
    connecting --QR_CODE_TIMEOUT without a scan--> disconnected (reason qr_timeout)

No clock, no randomness, no I/O here: an input carries what the actor read for it (the
session row, whether the device store has the device, the checked proxy, the time, a
jitter draw) and the answer is the new state plus a list of effects the actor performs
in order (`runner_container/session.py`). Every `Write` is one transaction of
`SessionStore.apply`. `tests/unit/test_session_machine.py` walks every transition.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable

from chalicelib.repositories.session_store import StateChange
from runner_container.machine_types import (
    Backoff, Connect, Count, Dial, DriverEvent, DropClient, Effect, Failed, FailDeferred, FlushDeferred, ForgetDevice,
    Input, OpenClient, ProxyPlan, Reconcile, Requested, SessionState, StartConnect, Step, Tick, Tuning, Write)

FIRST_QR_SECONDS = 60.0  # whatsmeow: the first code lives 60 s, the next ones 20 s
NEXT_QR_SECONDS = 20.0
LOGGED_OFF = {"logged_in": False, "connected_since": None, "qr_code": None}
NO_QR = {"qr_code": None, "qr_expires_at": None}
USER_CONNECTS = ("requested", "pair_phone")  # a connect someone asked for (not a restore or retry)
__all__ = ["Backoff", "Connect", "Count", "Dial", "DriverEvent", "DropClient", "Effect", "Failed", "FailDeferred",
           "FlushDeferred", "ForgetDevice", "Input", "OpenClient", "ProxyPlan", "Reconcile", "Requested",
           "SessionState", "StartConnect", "Step", "Tick", "Tuning", "Write", "dials", "message_change", "needs_row", "step"]


def dials(event_reason: str, row: dict[str, Any], device_present: bool) -> bool:
    """Whether a connect for `event_reason` goes on to dial (so its proxy is looked up):
    not when the stored device is gone and nobody asked to connect."""
    return device_present or not row["jid"] or event_reason in USER_CONNECTS


def needs_row(state: SessionState, event: Input) -> bool:
    """Whether the actor must read the session row before stepping `event`."""
    if isinstance(event, DriverEvent):
        return event.kind in ("disconnected", "retryable")
    if isinstance(event, Failed):
        return event.retry
    if isinstance(event, Tick):
        return state.retry_due(event.now)
    return False


def step(state: SessionState, event: Input, tuning: Tuning = Tuning()) -> Step:
    return _HANDLERS[type(event)](state, event, tuning)


# -- connecting ---------------------------------------------------------------------------
def _start_connect(state: SessionState, event: StartConnect, tuning: Tuning) -> Step:
    row = event.row
    state = replace(state.dropped(), retry_at=None)
    effects: list[Effect] = [DropClient()]
    jid = row["jid"]
    if jid and not event.device_present:  # the device store lost the device: logged out in effect
        user_asked = event.reason in USER_CONNECTS
        state = replace(state, status="disconnected")
        effects += [Write(StateChange(status="disconnected", event="session.logged_out",
                                      data={"reason": "device_missing", "jid": jid}, reason="device_missing",
                                      last_error="device_missing", jid=None,
                                      desired=None if user_asked else "disconnected", runtime=dict(LOGGED_OFF))),
                    FailDeferred("device_missing", "the stored WhatsApp device is gone; pair again")]
        if not user_asked:
            return state, effects
        jid = None  # a fresh pairing, as the user asked to connect
    state = replace(state, jid=jid)
    if event.proxy.problem is not None:
        code, message, retry = event.proxy.problem
        state, more = _error(state, code, message, retry, row, event.now, event.jitter, tuning)
        return state, effects + more
    state = replace(state, active=True, logged_in=False, qr_seen=False, proxy_url=event.proxy.url,
                    status="connecting")
    effects += [OpenClient(jid, event.proxy.dial),
                Write(StateChange(status="connecting", event="session.connecting",
                                  data={"reason": event.reason, "attempt": state.attempt, "restoring": bool(jid),
                                        "proxy": bool(event.proxy.url)},
                                  reason=event.reason, runtime={**NO_QR, "logged_in": False})),
                Dial()]
    return state, effects


def _schedule_retry(state: SessionState, row: dict[str, Any] | None, now: float, jitter: float,
                    tuning: Tuning) -> SessionState | None:
    if row is None or row["desired_state"] != "connected" or not row["auto_reconnect"]:
        return None
    attempt = state.attempt + 1
    return replace(state, attempt=attempt, retry_at=now + tuning.backoff.delay(attempt, jitter))


def _error(state: SessionState, code: str, message: str, retry: bool, row: dict[str, Any] | None,
           now: float, jitter: float, tuning: Tuning = Tuning()) -> Step:
    state = state.dropped()
    scheduled = _schedule_retry(state, row, now, jitter, tuning) if retry else None
    state = replace(scheduled or state, status="error")
    delay = round(state.retry_at - now, 3) if scheduled and state.retry_at is not None else None
    effects: list[Effect] = [
        DropClient(),
        Write(StateChange(status="error", event="session.error",
                          data={"code": code, "message": message, "retry_in_seconds": delay,
                                "attempt": state.attempt},
                          reason=message, last_error=code, runtime=dict(NO_QR),
                          desired=None if retry else "disconnected")),
        Count("errors", code)]
    if scheduled is None:
        effects.append(FailDeferred(code, message))
    return state, effects


def _failed(state: SessionState, event: Failed, tuning: Tuning) -> Step:
    return _error(state, event.code, event.message, event.retry, event.row, event.now, event.jitter, tuning)


# -- the clock ----------------------------------------------------------------------------
def _tick(state: SessionState, event: Tick, tuning: Tuning) -> Step:
    effects: list[Effect] = []
    if event.deferred_due:
        effects.append(FailDeferred("not_connected", f"the session did not log in within {event.waited:g}s"))
    if state.qr_deadline is not None and event.now >= state.qr_deadline and not state.logged_in:
        state = replace(state.dropped(), status="disconnected")
        effects += [DropClient(),
                    Write(StateChange(status="disconnected", event="session.disconnected",
                                      data={"reason": "qr_timeout",
                                            "message": f"no scan within {tuning.qr_code_timeout:g}s"},
                                      reason="qr_timeout", last_error="qr_timeout", desired="disconnected",
                                      runtime=dict(NO_QR))),
                    FailDeferred("qr_timeout", "nobody scanned the QR code")]
    if state.retry_due(event.now):
        state = replace(state, retry_at=None)
        row = event.row
        if row is not None and row["desired_state"] == "connected" and not state.active:
            effects += [Count("reconnects"), Write(StateChange(counters=("reconnects",))), Connect("reconnect")]
    return state, effects


# -- driver events ------------------------------------------------------------------------
def _driver_event(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    return _DRIVER_EVENTS[event.kind](state, event, tuning)


def _qr(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    data = event.data
    deadline = state.qr_deadline if state.qr_deadline is not None else event.now + tuning.qr_code_timeout
    lifetime = data.get("timeout") or (NEXT_QR_SECONDS if state.qr_seen else FIRST_QR_SECONDS)
    expires = event.wall + timedelta(seconds=min(lifetime, tuning.qr_code_timeout))
    state = replace(state, qr_deadline=deadline, qr_seen=True)
    return state, [Write(StateChange(event="session.qr", data={"qr_code": data["code"],
                                                               "expires_at": expires.isoformat()},
                                     runtime={"qr_code": data["code"], "qr_expires_at": expires}, qr_shown=True))]


def _paired(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    state = replace(state, jid=event.data.get("jid") or state.jid, qr_deadline=None)
    return state, [Write(StateChange(event="session.paired", data=event.data, jid=state.jid,
                                     runtime=dict(NO_QR)))]


def _pair_failed(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    return state, [Write(StateChange(event="session.error", data={**event.data, "retry_in_seconds": None}))]


def _connected(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    state = replace(state, jid=event.data.get("jid") or state.jid, logged_in=True, active=True, attempt=0,
                    qr_deadline=None, status="authenticated")
    return state, [Write(StateChange(status="authenticated", event="session.connected",
                                     data={"jid": state.jid, "status": "authenticated"}, reason="logged_in",
                                     last_error=None, jid=state.jid,
                                     runtime={**NO_QR, "logged_in": True, "connected_since": event.wall})),
                   FlushDeferred()]


def _disconnected(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    reason = event.data.get("reason", "network")
    scheduled = _schedule_retry(state.dropped(), event.row, event.now, event.jitter, tuning)
    state = replace(scheduled or state.dropped(), status="disconnected")
    effects: list[Effect] = [
        DropClient(),
        Write(StateChange(status="disconnected", event="session.disconnected",
                          data={"reason": reason, "will_reconnect": scheduled is not None}, reason=reason,
                          runtime={"logged_in": False, "connected_since": None}))]
    if scheduled is None:
        effects.append(FailDeferred("not_connected", "the connection dropped and auto_reconnect is off"))
    return state, effects


def _retryable(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    return _error(state, event.data.get("code", "connect_failure"), event.data.get("message", "connection failed"),
                  True, event.row, event.now, event.jitter, tuning)


def _fatal(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    return _error(state, event.data.get("code", "error"), event.data.get("message", "WhatsApp refused the session"),
                  False, None, event.now, event.jitter, tuning)


def _logged_out(state: SessionState, event: DriverEvent, tuning: Tuning) -> Step:
    reason = event.data.get("reason", "logged_out")
    jid = state.jid
    state = replace(state.dropped(), status="disconnected")
    return state, [DropClient(), ForgetDevice(jid),
                   Write(StateChange(status="disconnected", event="session.logged_out",
                                     data={"reason": reason, "jid": jid}, reason=reason, last_error=reason,
                                     jid=None, desired="disconnected", runtime=dict(LOGGED_OFF))),
                   FailDeferred("logged_out", "WhatsApp logged the device out")]


_DRIVER_EVENTS: dict[str, Callable[[SessionState, DriverEvent, Tuning], Step]] = {
    "qr": _qr, "paired": _paired, "pair_failed": _pair_failed, "connected": _connected,
    "disconnected": _disconnected, "retryable": _retryable, "fatal": _fatal, "logged_out": _logged_out}


# -- reconciliation and requests ------------------------------------------------------------
def _reconcile(state: SessionState, event: Reconcile, tuning: Tuning) -> Step:
    row = event.row
    if row["desired_state"] == "connected":
        if not state.active and state.retry_at is None:
            return state, [Connect("restore")]
        if state.active and (event.proxy_unreadable or event.proxy_url != state.proxy_url):
            # whatsmeow applies a proxy to new connections only: reconnect through the new one
            # (the stored device resumes the login, no QR)
            return replace(state.dropped(), attempt=0), [DropClient(), Connect("proxy_changed")]
        return state, []
    if state.active or row["status"] not in ("disconnected", "error"):
        # (an `error` left by a fatal failure stays visible; only live or stale
        # connected/connecting states are corrected)
        return _disconnect(state, "desired_state")
    return state, []


def _disconnect(state: SessionState, reason: str) -> Step:
    state = replace(state.dropped(), retry_at=None, status="disconnected")
    return state, [DropClient(), Write(StateChange(status="disconnected", event="session.disconnected",
                                                   data={"reason": reason}, reason=reason,
                                                   runtime=dict(LOGGED_OFF)))]


def _requested(state: SessionState, event: Requested, tuning: Tuning) -> Step:
    if event.command in ("connect", "pair_phone"):
        if state.logged_in or state.active:
            return state, []
        return replace(state, attempt=0), [Connect("requested" if event.command == "connect" else "pair_phone")]
    if event.command == "disconnect":
        return _disconnect(state, "requested")
    if event.command == "logout":
        state = replace(state.dropped(), retry_at=None, status="disconnected")
        return state, [DropClient(), ForgetDevice(event.jid),
                       Write(StateChange(status="disconnected", event="session.logged_out",
                                         data={"reason": "requested", "jid": event.jid}, reason="logged_out",
                                         last_error=None, jid=None, desired="disconnected",
                                         runtime={**LOGGED_OFF, "qr_expires_at": None}))]
    if event.command == "stop":
        was_active = state.active or state.retry_at is not None
        state = state.dropped()
        if not (event.graceful and was_active):
            return state, [DropClient()]
        return replace(state, status="disconnected"), [
            DropClient(), Write(StateChange(status="disconnected", event="session.disconnected",
                                            data={"reason": "runner_handover"}, reason="runner_handover",
                                            runtime=dict(LOGGED_OFF)))]
    raise ValueError(f"not a state command: {event.command!r}")


_HANDLERS: dict[type, Callable[[SessionState, Any, Tuning], Step]] = {
    StartConnect: _start_connect, Failed: _failed, DriverEvent: _driver_event, Tick: _tick,
    Reconcile: _reconcile, Requested: _requested}


def message_change(name: str, payload: dict[str, Any]) -> StateChange:
    """The write of a message event: the event, its counter and the activity (what it changes
    in the message store follows from the event: chalicelib/messaging/store_records.py)."""
    return StateChange(event=name, data=payload,
                       counters=("messages_received",) if name == "message.received" else (),
                       activity=name.startswith("message."))
