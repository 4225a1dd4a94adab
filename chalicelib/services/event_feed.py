"""The events a session produced, read back from `event_outbox` (the console's timeline,
and any client that would rather poll than run a webhook receiver).

Scope: the session *row* (`sessions.id`, the envelope's `metadata.session_uid`), never the
text session_id, which an admin may reuse after a delete: a new session with an old name
sees none of the old one's events.

Order and cursor: events come in their per-session `metadata.sequence` order, which is
also commit order (the sequence is taken under the session row's lock, see
`EventOutboxRepository.next_sequence`), so a reader paging with `after` never skips an
event that commits later with a smaller number. Without `after` the answer is the newest
`limit` events; with it, the next `limit` after the cursor. The cursor is opaque
(base64url of `<session_uid>:<sequence>`); one minted for an earlier session of the same
session_id counts as "from the beginning" of the current one.

Retention: events older than `EVENT_RETENTION` (default 7 days) are not returned, and the
hourly retention job deletes sent ones older than that (chalicelib/services/retention.py).
"""
from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any, Callable

from chalicelib.db import Database
from chalicelib.errors import SessionNotFound, ValidationFailed
from chalicelib.repositories.events import EventOutboxRepository


def encode_cursor(session_uid: str, sequence: int) -> str:
    return base64.urlsafe_b64encode(f"{session_uid}:{sequence}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, int]:
    """(session_uid, sequence); a malformed cursor is a 422 naming `after`."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        uid, _, seq = raw.partition(":")
        sequence = int(seq)
        uuid.UUID(uid)
        if sequence < 0:
            raise ValueError(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("'after' is not a cursor this API gave out",
                               details=[{"field": "after", "message": "not a cursor from an earlier answer"}]) from None
    return uid, sequence


class EventFeed:
    def __init__(self, db: Database, session_of: Callable[[str], dict[str, Any] | None], retention_seconds: float):
        self.db = db
        self.session_of = session_of  # SessionRepository.status_of: {"id", "session_id", "status"}
        self.retention = retention_seconds
        self.outbox = EventOutboxRepository()

    def list(self, session_id: str, after: str | None, limit: int) -> dict[str, Any]:
        session = self.session_of(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        uid = str(session["id"])
        since: int | None = None
        if after:
            cursor_uid, sequence = decode_cursor(after)
            since = sequence if cursor_uid == uid else 0
        with self.db.connection() as conn:
            events = self.outbox.page(conn, uid, after=since, limit=limit + 1, retention_seconds=self.retention)
        if since is None:
            has_more, events = False, events[-limit:]
        else:
            has_more, events = len(events) > limit, events[:limit]
        last = events[-1]["metadata"]["sequence"] if events else (since or 0)
        return {"events": events, "cursor": encode_cursor(uid, last), "has_more": has_more}
