"""`session_runtime` (the runner's view of a session) and the session state columns the
runner writes. Both the API (reads) and the runner (writes) use these queries."""
from __future__ import annotations

from typing import Any

import psycopg

from chalicelib.db import Database

RUNTIME_COLUMNS = {"runner_id", "qr_code", "qr_expires_at", "qr_count", "logged_in", "connected_since"}
COUNTERS = {"messages_sent", "messages_received", "reconnects"}


class RuntimeRepository:
    def __init__(self, db: Database):
        self.db = db

    def status(self, session_id: str) -> dict[str, Any] | None:
        with self.db.connection() as conn:
            return conn.execute(
                """
                SELECT s.session_id, s.status, s.desired_state, s.jid, s.last_error, s.status_reason,
                       s.status_changed_at, s.connected_at, s.last_connected_at, s.last_activity,
                       s.auto_reconnect, s.created_at,
                       r.runner_id, r.qr_code, r.qr_expires_at, r.qr_count, coalesce(r.logged_in, false) AS logged_in,
                       r.connected_since, coalesce(r.messages_sent, 0) AS messages_sent,
                       coalesce(r.messages_received, 0) AS messages_received,
                       coalesce(r.reconnects, 0) AS reconnects, now() AS now
                FROM sessions s LEFT JOIN session_runtime r ON r.session_id = s.session_id
                WHERE s.session_id = %s
                """, (session_id,)).fetchone()

    def webhook_counts(self, session_id: str) -> dict[str, int]:
        with self.db.connection() as conn:
            rows = conn.execute("SELECT d.status, count(*) AS n FROM webhook_deliveries d "
                                "JOIN sessions s ON s.id = d.session_uid WHERE s.session_id = %s "
                                "GROUP BY d.status", (session_id,)).fetchall()
        return {row["status"]: row["n"] for row in rows}

    # -- writes (runner) ----------------------------------------------------------------
    @staticmethod
    def upsert(conn: psycopg.Connection, session_id: str, values: dict[str, Any]) -> None:
        unknown = set(values) - RUNTIME_COLUMNS
        if unknown:
            raise ValueError(f"not runtime columns: {sorted(unknown)}")
        columns = ["session_id", *values]
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in values) or "session_id = EXCLUDED.session_id"
        conn.execute(
            f"""
            INSERT INTO session_runtime ({', '.join(columns)})
            SELECT {', '.join(['%s'] * len(columns))} WHERE EXISTS (SELECT 1 FROM sessions WHERE session_id = %s)
            ON CONFLICT (session_id) DO UPDATE SET {updates}, updated_at = now()
            """, [session_id, *values.values(), session_id])

    @staticmethod
    def bump(conn: psycopg.Connection, session_id: str, counter: str, by: int = 1) -> None:
        if counter not in COUNTERS:
            raise ValueError(counter)
        conn.execute(
            f"""
            INSERT INTO session_runtime (session_id, {counter})
            SELECT %s, %s WHERE EXISTS (SELECT 1 FROM sessions WHERE session_id = %s)
            ON CONFLICT (session_id) DO UPDATE SET {counter} = session_runtime.{counter} + EXCLUDED.{counter},
                updated_at = now()
            """, (session_id, by, session_id))

    @staticmethod
    def count_qr(conn: psycopg.Connection, session_id: str) -> None:
        conn.execute("UPDATE session_runtime SET qr_count = qr_count + 1 WHERE session_id = %s", (session_id,))
