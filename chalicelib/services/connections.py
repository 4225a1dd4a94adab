"""Connecting sessions to WhatsApp: the API's side of the runner.

The API never touches a socket. It records the wish (`sessions.desired_state`) and a
command in one transaction, hands the command to the queue of the runner holding the
session (routing follows placement), and reads
back what the runner writes (`sessions.status`, `session_runtime`). The runner
reconciles towards `desired_state` even if a command is lost, so the two always agree
in the end.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from chalicelib.commands.outbox import CommandOutbox, command_view
from chalicelib.commands.outcome import Outcome
from chalicelib.db import Database
from chalicelib.errors import Conflict, NotFound, RunnerFailed, SessionNotFound, UpstreamTimeout
from chalicelib.repositories.runners import RunnerRepository
from chalicelib.repositories.runtime import RuntimeRepository
from chalicelib.repositories.sessions import SessionRepository

CONNECTED = ("connected", "authenticated")


class ConnectionService:
    def __init__(self, db: Database, sessions: SessionRepository, runtime: RuntimeRepository,
                 bus: CommandOutbox, runners: RunnerRepository, *, lease_ttl: float,
                 pair_phone_timeout: float = 20.0, logout_timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.sessions = sessions
        self.runtime = runtime
        self.bus = bus
        self.runners = runners
        self.lease_ttl = lease_ttl
        self.pair_phone_timeout = pair_phone_timeout
        self.logout_timeout = logout_timeout
        self.clock = clock

    # -- helpers ------------------------------------------------------------------------
    def _state(self, session_id: str) -> dict[str, Any]:
        row = self.runtime.status(session_id)
        if row is None:
            raise SessionNotFound(session_id)
        return row

    def _command(self, session_id: str, type: str, payload: dict[str, Any] | None = None, *,
                 desired: str | None = None, idempotency_key: str | None = None) -> dict[str, Any]:
        """Set the desired state and record the command in one transaction, then send it."""
        with self.db.connection() as conn, conn.transaction():
            if self.sessions.lock(conn, session_id) is None:
                raise SessionNotFound(session_id)
            if desired:
                self.sessions.set_desired_state(conn, session_id, desired)
            row, created = self.bus.record(conn, session_id, type, payload, idempotency_key=idempotency_key)
        if created:
            self.bus.send([row])
        return row

    # -- routes -------------------------------------------------------------------------
    def connect(self, session_id: str) -> Outcome:
        state = self._state(session_id)
        if state["status"] in CONNECTED and state["desired_state"] == "connected":
            return Outcome.finished({"session_id": session_id, "status": state["status"],
                                     "message": "already connected"})
        row = self._command(session_id, "connect", desired="connected")
        return Outcome.accepted({"session_id": session_id, "status": "connecting", "command_id": str(row["id"]),
                                 "message": "the runner is connecting the session; follow GET /status or GET /qr"})

    def disconnect(self, session_id: str) -> Outcome:
        state = self._state(session_id)
        if state["status"] == "disconnected" and state["desired_state"] == "disconnected":
            return Outcome.finished({"session_id": session_id, "status": "disconnected",
                                     "message": "already disconnected"})
        row = self._command(session_id, "disconnect", desired="disconnected")
        return Outcome.accepted({"session_id": session_id, "status": "disconnecting", "command_id": str(row["id"]),
                                 "message": "the runner is closing the socket; the device stays paired"})

    def logout(self, session_id: str) -> Outcome:
        state = self._state(session_id)
        if not state["jid"] and not state["logged_in"]:
            raise Conflict(f"session '{session_id}' has no paired device", code="not_paired")
        row = self._command(session_id, "logout", desired="disconnected")
        done = self.bus.await_result(str(row["id"]), self.logout_timeout)
        if done is not None and done["status"] == "succeeded":
            return Outcome.finished({"session_id": session_id, "status": "disconnected", "command_id": str(row["id"]),
                                     "message": "logged out; the device is unlinked and the next connect needs a "
                                                "new QR"})
        if done is not None and done["status"] == "failed":
            raise RunnerFailed(_error_text(done, "logout failed"), code="logout_failed")
        return Outcome.accepted({"session_id": session_id, "status": "logging_out", "command_id": str(row["id"]),
                                 "message": "the runner is logging out; follow GET /commands/{command_id}"})

    def status(self, session_id: str) -> dict[str, Any]:
        s = self._state(session_id)
        qr_ok = bool(s["qr_code"]) and s["qr_expires_at"] is not None and s["qr_expires_at"] > s["now"]
        return {
            "session_id": session_id, "status": s["status"], "desired_state": s["desired_state"],
            "connected": s["status"] in CONNECTED, "logged_in": bool(s["logged_in"]) and s["status"] in CONNECTED,
            "jid": s["jid"], "last_error": s["last_error"], "status_reason": s["status_reason"],
            "runner_id": s["runner_id"], "since": s["status_changed_at"], "connected_since": s["connected_since"],
            "qr_available": qr_ok and s["status"] == "connecting",
        }

    def stats(self, session_id: str) -> dict[str, Any]:
        s = self._state(session_id)
        uptime = None
        if s["status"] in CONNECTED and s["connected_since"] is not None:
            uptime = round((s["now"] - s["connected_since"]).total_seconds(), 3)
        return {
            "session_id": session_id, "status": s["status"], "messages_sent": s["messages_sent"],
            "messages_received": s["messages_received"], "reconnects": s["reconnects"],
            "uptime_seconds": uptime, "last_activity": s["last_activity"],
            "last_connected_at": s["last_connected_at"], "webhook": self.runtime.webhook_counts(session_id),
        }

    def qr(self, session_id: str, wait: float) -> dict[str, Any]:
        """The current QR code, waiting up to `wait` seconds for one to appear."""
        deadline = self.clock() + wait
        interval = 0.05
        while True:
            s = self._state(session_id)
            if s["logged_in"] and s["status"] in CONNECTED:
                raise Conflict(f"session '{session_id}' is already paired ({s['jid']})", code="already_paired")
            if s["status"] != "connecting":
                if s["desired_state"] != "connected" or s["status"] != "disconnected" or self.clock() >= deadline:
                    raise Conflict(f"session '{session_id}' is {s['status']}, not connecting: "
                                   "POST /sessions/{id}/connect first", code="not_connecting")
            elif s["qr_code"] and s["qr_expires_at"] and s["qr_expires_at"] > s["now"]:
                return {"session_id": session_id, "qr_code": s["qr_code"], "expires_at": s["qr_expires_at"],
                        "status": s["status"]}
            if self.clock() >= deadline:
                raise NotFound(f"no QR code for session '{session_id}' yet; retry or pass ?wait=seconds",
                               code="qr_not_ready")
            time.sleep(min(interval, max(0.0, deadline - self.clock())))
            interval = min(interval * 1.5, 0.25)

    def pair_phone(self, session_id: str, phone: str, show_push_notification: bool) -> dict[str, Any]:
        state = self._state(session_id)
        if state["logged_in"] and state["status"] in CONNECTED:
            raise Conflict(f"session '{session_id}' is already paired ({state['jid']})", code="already_paired")
        row = self._command(session_id, "pair_phone", {"phone": phone,
                                                       "show_push_notification": show_push_notification},
                            desired="connected")
        done = self.bus.await_result(str(row["id"]), self.pair_phone_timeout)
        if done is None or done["status"] not in ("succeeded", "failed"):
            raise UpstreamTimeout(
                f"the runner did not produce a pairing code within {self.pair_phone_timeout:g}s; "
                f"the command {row['id']} is still {done['status'] if done else 'unknown'} "
                "(is a runner up? see GET /health)", code="runner_timeout")
        if done["status"] == "failed":
            raise RunnerFailed(_error_text(done, "pairing failed"), code="pair_phone_failed")
        return {"session_id": session_id, "pairing_code": done["result"]["pairing_code"],
                "command_id": str(row["id"])}

    def command(self, session_id: str, command_id: str) -> dict[str, Any]:
        return command_view(self.bus.get(session_id, command_id))

    # -- session delete -----------------------------------------------------------------
    def logout_before_delete(self, session_id: str, existing: dict[str, Any]) -> None:
        """Ask a live runner to unlink the device before the row goes (bounded; best effort)."""
        if not existing.get("jid"):
            return
        try:
            if not self.runners.live(self.lease_ttl):
                return
            row = self._command(session_id, "logout", desired="disconnected")
            self.bus.await_result(str(row["id"]), self.logout_timeout)
        except NotFound:
            return


def _error_text(row: dict[str, Any], default: str) -> str:
    error = row.get("error") or {}
    return str(error.get("message") or error.get("code") or default)

