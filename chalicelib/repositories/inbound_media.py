"""`inbound_media_pending`: received media messages a runner holds while it stores the file.

A row is written before the work leaves the session actor and released (deleted) in the
transaction that writes the message's event (`SessionStore.apply(release_held=...)`):
whichever writer releases it writes the event, so it is written exactly once, by the
media worker or by the sweeper when the runner died (runner_container/inbound_media.py).
"""
from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from chalicelib.db import Database


class PendingMediaRepository:
    def __init__(self, db: Database):
        self.db = db

    def hold(self, session_id: str, name: str, data: dict[str, Any], *, runner_id: str,
             session_uid: str | None = None) -> None:
        with self.db.connection() as conn:
            conn.execute("INSERT INTO inbound_media_pending (session_id, session_uid, message_id, event, data, "
                         "runner_id) SELECT s.session_id, s.id, %s, %s, %s, %s FROM sessions s "
                         "WHERE s.session_id = %s AND (%s::uuid IS NULL OR s.id = %s::uuid) "
                         "ON CONFLICT DO NOTHING",
                         (data.get("message_id") or "", name, Jsonb(data), runner_id, session_id,
                          session_uid, session_uid))

    def abandoned(self, older_than: float, limit: int) -> list[dict[str, Any]]:
        with self.db.connection() as conn:
            return conn.execute("SELECT session_id, session_uid::text, event, data FROM inbound_media_pending "
                                "WHERE created_at < now() - make_interval(secs => %s) ORDER BY created_at LIMIT %s",
                                (older_than, limit)).fetchall()

    @staticmethod
    def release(conn: psycopg.Connection, session_id: str, message_id: str) -> bool:
        """Delete the held row inside the caller's transaction; whether this call did."""
        return conn.execute("DELETE FROM inbound_media_pending WHERE session_id = %s AND message_id = %s "
                            "RETURNING 1", (session_id, message_id)).fetchone() is not None
