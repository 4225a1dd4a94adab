"""In-memory stand-ins for the runner's ports: the session actor runs on them with no
PostgreSQL, no SQS and no WhatsApp (tests/unit)."""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from runner_container.drivers.base import Driver, DriverError, SessionClient
from runner_container.machine import Backoff, Tuning
from runner_container.ports import ActorRegistry, ActorSettings, SessionPorts
from runner_container.session import SessionActor


def session_row(session_id: str = "s-1", **fields: Any) -> dict[str, Any]:
    row = {"id": str(uuid.uuid4()), "session_id": session_id, "jid": None, "status": "disconnected",
           "desired_state": "connected", "auto_reconnect": True, "proxy_enabled": False, "proxy_type": None,
           "proxy_host": None, "proxy_port": None, "proxy_username": None, "proxy_password_enc": None}
    return {**row, **fields}


class MemoryStore:
    """`SessionStore` in memory: rows by session_id, every applied change kept in order."""

    def __init__(self, *rows: dict[str, Any]):
        self.rows = {row["session_id"]: dict(row) for row in rows}
        self.changes: list[tuple[str, Any]] = []

    def load(self, session_id: str) -> dict[str, Any] | None:
        row = self.rows.get(session_id)
        return dict(row) if row else None

    def uid_of(self, session_id: str) -> str | None:
        row = self.rows.get(session_id)
        return row["id"] if row else None

    def apply(self, session_id: str, change: Any, *, uid: str | None) -> dict[str, Any] | None:
        row = self.rows.get(session_id)
        if row is None or (uid is not None and row["id"] != uid):
            return None
        if change.status is not None:
            row["status"] = change.status
        if change.desired is not None:
            row["desired_state"] = change.desired
        self.changes.append((session_id, change))
        return {"event": change.event} if change.event else {}

    def events(self) -> list[str]:
        return [change.event for _, change in self.changes if change.event]


class FakeClient(SessionClient):
    def __init__(self, config: Any, sink: Any, fail_connect: DriverError | None = None):
        self.config, self.sink, self.fail_connect = config, sink, fail_connect
        self.calls: list[tuple] = []

    def connect(self) -> None:
        self.calls.append(("connect",))
        if self.fail_connect:
            raise self.fail_connect

    def disconnect(self) -> None:
        self.calls.append(("disconnect",))

    def logout(self) -> None:
        self.calls.append(("logout",))

    def pair_phone(self, phone: str, show_push_notification: bool, timeout: float) -> str:
        return "ABCD-EFGH"

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("send", payload["to"]))
        return {"message_id": f"3EB0{len(self.calls)}", "timestamp": 1700000000}

    def check_contacts(self, phones: list[str]) -> list[dict[str, Any]]:
        return [{"phone": p, "on_whatsapp": True} for p in phones]

    def mark_read(self, chat: str, message_ids: list[str], sender: str | None) -> None:
        self.calls.append(("read", chat, tuple(message_ids), sender))

    def send_presence(self, state: str, chat: str | None) -> None:
        self.calls.append(("presence", state, chat))

    def reject_call(self, caller: str, call_id: str) -> None:
        self.calls.append(("reject_call", caller, call_id))


class FakeDriver(Driver):
    name = "fake"

    def __init__(self) -> None:
        self.clients: list[FakeClient] = []
        self.devices: set[str] = set()
        self.forgotten: list[str | None] = []
        self.fail_connect: DriverError | None = None

    def client(self, config: Any, sink: Any) -> FakeClient:
        client = FakeClient(config, sink, self.fail_connect)
        self.clients.append(client)
        return client

    def has_device(self, session_id: str, jid: str) -> bool:
        return jid in self.devices

    def forget_device(self, session_id: str, jid: str | None) -> None:
        self.forgotten.append(jid)


class FakeLedger:
    """`CommandLedger` in memory: command rows by id."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add(self, type: str, payload: dict[str, Any] | None = None, *, session_uid: str | None = None) -> str:
        command_id = str(uuid.uuid4())
        self.rows[command_id] = {"id": command_id, "type": type, "payload": payload or {}, "status": "queued",
                                 "session_uid": session_uid}
        return command_id

    def claim(self, command_id: str, session_uid: str | None = None, *, in_order: bool = False) -> dict[str, Any] | None:
        row = self.rows.get(command_id)
        if row is None or row["status"] != "queued" or (session_uid and row["session_uid"] not in (None, session_uid)):
            return None
        if in_order and self.older_queued(command_id):
            return None
        row["status"] = "running"
        return dict(row)

    def older_queued(self, command_id: str) -> list[dict[str, Any]]:
        """Queued rows added before this one (insertion order stands for created_at)."""
        older = []
        for other_id, other in self.rows.items():
            if other_id == command_id:
                return older
            if other["status"] == "queued" and other["session_uid"] == self.rows[command_id]["session_uid"]:
                older.append({"id": other_id, "type": other["type"]})
        return older

    def get(self, command_id: str) -> dict[str, Any] | None:
        return self.rows.get(command_id)

    def release(self, rows: list[dict[str, Any]]) -> int:
        for row in rows:
            self.rows[row["id"]]["status"] = "queued"
        return len(rows)

    def finish(self, row: dict[str, Any], *, ok: bool, result: Any = None, error: Any = None) -> None:
        self.rows[row["id"]].update(status="succeeded" if ok else "failed", result=result, error=error)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime(2026, 11, 30, tzinfo=timezone.utc)

    def jitter(self) -> float:
        return 0.5


class _Counter:
    def __init__(self) -> None:
        self.counts: dict[Any, int] = {}

    def labels(self, **labels: Any) -> SimpleNamespace:
        key = tuple(sorted(labels.items()))
        return SimpleNamespace(inc=lambda: self.counts.__setitem__(key, self.counts.get(key, 0) + 1),
                               observe=lambda value: None)

    def inc(self) -> None:
        self.counts[()] = self.counts.get((), 0) + 1


class FakeMetrics:
    def __init__(self) -> None:
        self.events, self.errors, self.commands, self.reconnects = _Counter(), _Counter(), _Counter(), _Counter()
        self.command_latency, self.inbound_media = _Counter(), _Counter()


class NoProxy:
    def url_for(self, session_id: str, row: dict[str, Any]) -> str | None:
        return row.get("proxy_url")

    def plan(self, session_id: str, row: dict[str, Any]) -> Any:
        from runner_container.machine import ProxyPlan

        url = row.get("proxy_url")
        return ProxyPlan(url=url, dial=url)


def make_ports(store: MemoryStore, **overrides: Any) -> SessionPorts:
    ports = SessionPorts(store=store, commands=FakeLedger(), driver=FakeDriver(), metrics=FakeMetrics(),
                         events=SimpleNamespace(sent=[], send=lambda envelopes: ports.events.sent.extend(envelopes)),
                         clock=FakeClock(), settings=ActorSettings(runner_id="r-unit",
                                                                   tuning=Tuning(60.0, Backoff(1.0, 60.0))),
                         log=SimpleNamespace(info=_quiet, warning=_quiet, debug=_quiet, exception=_quiet, error=_quiet),
                         proxies=NoProxy(), message_store=SimpleNamespace(find=lambda *a: None,
                                                                        find_many=lambda *a: {}))
    for name, value in overrides.items():
        setattr(ports, name, value)
    ports.actors = ActorRegistry(lambda session_id: _Unstarted(SessionActor(ports, session_id)))
    return ports


def _quiet(*args: Any, **kwargs: Any) -> None:
    pass


class _Unstarted:
    """An actor the registry 'starts' without a thread: the test drives its inbox."""

    def __new__(cls, actor: SessionActor) -> SessionActor:  # type: ignore[misc]
        actor.start = lambda: actor  # type: ignore[method-assign]
        return actor


def drain(actor: SessionActor) -> None:
    """Handle everything in the actor's inbox on this thread."""
    while not actor.inbox.empty():
        item = actor.inbox.get_nowait()
        if not actor._handle_safely(item):
            return


__all__ = ["FakeClient", "FakeDriver", "FakeLedger", "MemoryStore", "drain", "make_ports", "replace",
           "session_row"]
