"""`SessionStore`: every write of a session's state, as one transaction.

The runner changes a session in one way only: `apply(change)` updates the `sessions` row,
`session_runtime` (values and counters), the message store (`messages`, `chats`, `contacts`:
what the event changes there, see chalicelib/messaging/store_records.py) and the
event in the outbox, together, and hands back the envelope to send after commit. The
session actor and the inbound media worker both write through it, so the two can never
disagree on what a received message touches.

The write is bound to the session's row id (`sessions.id`) when the caller knows it: a
session deleted and created again under the same `session_id` is another row, and
nothing of the old one's client lands in it. `apply` answers None when nothing was
written (the row is gone or replaced; with `release_held`, another writer already
released the held message): the caller decides whether that is an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib.db import Database
from chalicelib.events import EventPublisher
from chalicelib.repositories.inbound_media import PendingMediaRepository
from chalicelib.messaging.store_records import Op, expand, store_ops
from chalicelib.repositories.message_store import MessageStoreRepository
from chalicelib.repositories.runtime import RuntimeRepository

ADDRESS_BOOK_EVENTS = ("session.connected", "history.synced")
KEEP: Any = object()  # a column the change leaves as it is
CONNECTED = ("connected", "authenticated")
SESSION_COLUMNS = ("id, session_id, jid, status, desired_state, auto_reconnect, proxy_enabled, proxy_type, "
                   "proxy_host, proxy_port, proxy_username, proxy_password_enc, "
                   # behaviour settings (runner_container/behaviour.py)
                   "always_online, ignore_groups, ignore_status_broadcast, auto_read, reject_calls, reject_call_message, "
                   "send_rate, typing_simulation")


class SessionGone(Exception):
    """The session row a runner actor serves is gone."""


class SessionReplaced(SessionGone):
    """The session was deleted and a new one took its session_id: the new row (another
    `sessions.id`) gets a fresh actor; nothing of the old one's client may write to it."""


@dataclass(frozen=True)
class StateChange:
    """One state change of a session: what `apply` writes in one transaction."""

    status: str | None = None
    event: str | None = None
    data: dict[str, Any] | None = None
    reason: Any = KEEP
    last_error: Any = KEEP
    jid: Any = KEEP
    desired: str | None = None
    runtime: dict[str, Any] | None = None  # None: session_runtime's values are not touched
    counters: tuple[str, ...] = ()
    activity: bool = False
    store: tuple[Op, ...] = ()  # message store operations beyond those of the event (a chat read, history)
    qr_shown: bool = False  # one more QR code shown (`session_runtime.qr_count`)
    release_held: str | None = None  # the message id of an `inbound_media_pending` row to release
    metadata: dict[str, Any] = field(default_factory=dict)


class SessionStore:
    def __init__(self, db: Database, events: EventPublisher, message_store: str = "full"):
        self.db = db
        self.events = events
        self.message_store = message_store  # MESSAGE_STORE: full | metadata | off

    def load(self, session_id: str) -> dict[str, Any] | None:
        """What the runner needs of the session that has `session_id` now (None: none has)."""
        with self.db.connection() as conn:
            return conn.execute(f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = %s",
                                (session_id,)).fetchone()

    def uid_of(self, session_id: str) -> str | None:
        with self.db.connection() as conn:
            row = conn.execute("SELECT id FROM sessions WHERE session_id = %s", (session_id,)).fetchone()
        return str(row["id"]) if row else None

    def apply(self, session_id: str, change: StateChange, *, uid: str | None) -> dict[str, Any] | None:
        """Write the change; the event's envelope (or {} without an event), None when
        nothing was written. With `uid`, only into that session row."""
        sets, params = _session_sets(change)
        envelope: dict[str, Any] = {}
        with self.db.connection() as conn, conn.transaction():
            if change.release_held is not None and not PendingMediaRepository.release(
                    conn, session_id, change.release_held):
                return None
            row = conn.execute(f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = %s "
                               "AND (%s::uuid IS NULL OR id = %s::uuid) RETURNING id, jid",
                               [*params, session_id, uid, uid]).fetchone()
            if row is None:
                return None
            _runtime(conn, session_id, change)
            data = self._store(conn, row, change)
            if change.event:
                envelope = self.events.record(conn, session_id, change.event, data, metadata=change.metadata)
        return envelope

    def _store(self, conn: Any, row: dict[str, Any], change: StateChange) -> dict[str, Any]:
        """The message store's part of the change (issue 15); the event's data, with what a
        `history.synced` stored counted in."""
        data = change.data or {}
        ops = [*store_ops(change.event, data, self.message_store, row["jid"]),
               *expand(change.store, self.message_store, row["jid"])]
        if change.event in ADDRESS_BOOK_EVENTS and row["jid"]:  # whatsmeow's contact store, once it has it
            ops.append(("address_book", {"our_jid": row["jid"]}))
        if ops and self.message_store != "off":
            written = MessageStoreRepository.apply(conn, str(row["id"]), ops)
            if change.event == "history.synced":  # the event says what was stored
                data = {**data, "messages": written.get("message", 0), "chats": written.get("chat", 0),
                        "contacts": written.get("contact", 0)}
        return data


def _runtime(conn: Any, session_id: str, change: StateChange) -> None:
    if change.runtime is not None:
        RuntimeRepository.upsert(conn, session_id, change.runtime)
    for counter in change.counters:
        RuntimeRepository.bump(conn, session_id, counter)
    if change.qr_shown:
        RuntimeRepository.count_qr(conn, session_id)


def _session_sets(change: StateChange) -> tuple[list[str], list[Any]]:
    sets, params = ["updated_at = now()"], []
    if change.status is not None:
        sets.append("status_changed_at = CASE WHEN status = %s THEN status_changed_at ELSE now() END")
        sets.append("status = %s")
        params += [change.status, change.status]
        if change.status in CONNECTED:
            sets.append("connected_at = coalesce(connected_at, now()), last_connected_at = now()")
    desired = KEEP if change.desired is None else change.desired
    for column, value in (("status_reason", change.reason), ("last_error", change.last_error),
                          ("jid", change.jid), ("desired_state", desired)):
        if value is not KEEP:
            sets.append(f"{column} = %s")
            params.append(value)
    if change.activity:
        sets.append("last_activity = now()")
    return sets, params
